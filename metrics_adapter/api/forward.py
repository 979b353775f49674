"""One hop to the owner: a replica that does not own a ScaledObject asks the replica that does.

Only the owner of an object (by the shard set, :mod:`metrics_adapter.control.shards`) polls its
triggers, so only its MetricStore holds the values; the aggregator sends each read to any
replica. A non-owner sends the same path and query to the owner, marked with
:data:`FORWARDED` (the owner answers those from its own store: never a second hop).

What comes back:

* the owner's answer, 200 or a Kubernetes ``Status`` error with its code, as it is;
* when the owner cannot be reached (timeout, refused, TLS, a 5xx that is no ``Status``, our
  credentials refused): the last 200 forwarded for the same metric while it is younger than
  ``stale_for``, its ``timestamp`` the owner's, so visibly old;
* otherwise :class:`~metrics_adapter.errors.ServiceUnavailable` naming the object, the metric,
  the owner and why. Never a made-up value.

One aiohttp session serves every peer: its per-host pool keeps connections alive (a new TLS
handshake costs more than the read it carries), and per request it costs less CPU than httpx's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import aiohttp

from metrics_adapter.api import paths
from metrics_adapter.errors import (
    APIError,
    NothingHeld,
    NoValueYet,
    ServiceUnavailable,
    UnknownObject,
)
from metrics_adapter.kube import wire
from metrics_adapter.metrics.store import MetricStore

log = logging.getLogger(__name__)

FORWARDED = "X-Metrics-Adapter-Forwarded"
"""Marks a read one replica forwarded to another; its value is the sender's identity."""
HOLDS_NOTHING = "X-Metrics-Adapter-Holds-Nothing"
"""On an owner's error answer to a forwarded read: it holds no value for it yet (a hand-over
has just given it the object), so the sender serves the value it last had, if young enough."""
_OURS_TO_FIX = frozenset({401, 403})
"""The owner refused our credentials, not the HPA's: a failure to reach it, not an answer."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Another replica: its shard identity and base URL (``https://10.1.2.3:6443``)."""

    identity: str
    url: str


async def _anonymous() -> str | None:
    return None


class Route(Protocol):
    """Who answers an object's reads: a :class:`Peer`, or ``None`` for this replica."""

    def owner(self, namespace: str, name: str) -> Peer | None: ...

    def watched(self, namespace: str, name: str) -> bool:
        """Whether the object may exist, as this replica's watch knows (False only when it
        has listed every object and not seen this one): one it owns but holds nothing for is
        being taken over, not missing."""


class ForwardObserver(Protocol):
    """Where forwarded reads are counted (:class:`~metrics_adapter.metrics.telemetry.Telemetry`)."""

    def forwarded(self, result: str, seconds: float) -> None:
        """One forwarded read: ``answered``, ``stale`` or ``failed``, and its time."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer to pass on: the owner's status code and body bytes."""

    status: int
    body: bytes
    holds_nothing: bool = False
    """The owner's error says only that it holds no value yet (:data:`HOLDS_NOTHING`)."""


class _Unobserved:
    def forwarded(self, result: str, seconds: float) -> None:
        pass


class _Unreachable(Exception):
    """The owner gave no answer we can pass on; the message says why."""


Key = tuple[str, str, str]


class LastAnswers:
    """The last 200 forwarded per (namespace, ScaledObject, metric), when it came, at most
    ``maxsize`` of them (least recently stored dropped first)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Key, at: float, body: bytes) -> None:
        self._entries[key] = (at, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)

    def get(self, key: Key, younger_than: float) -> tuple[float, bytes] | None:
        """The entry stored after ``younger_than``; an older one is dropped."""
        entry = self._entries.get(key)
        if entry is None or entry[0] > younger_than:
            return entry
        del self._entries[key]
        return None


def peer_context(ca_pem: bytes) -> ssl.SSLContext:
    """TLS that verifies a peer's chain against ``ca_pem`` without checking its name: peers
    are dialled by Pod IP and every replica's certificate names the Service. ``ca_pem`` may
    be the serving certificate itself, which every replica shares: it is then the anchor,
    whoever issued it."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


ANCHORS_KEPT = 3
"""Serving certificates trusted at once: the one served now and the two before it, so that
through a rotation a hop to a peer that has not loaded the new Secret yet still verifies."""


class Forwarder:
    """Forwards reads to their owners over one pooled session; see the module docstring."""

    def __init__(
        self,
        identity: str,
        anchor: Callable[[], bytes],
        *,
        authorization: Callable[[], Awaitable[str | None]] = _anonymous,
        timeout: float = 1.0,
        stale_for: float = 60.0,
        maxsize: int = 100_000,
        connections_per_peer: int = 32,
        keepalive: float = 30.0,
        observer: ForwardObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``anchor``: the PEM peers' certificates are verified against (:func:`peer_context`),
        asked per request: when it changes (a rotated serving certificate), the next hop
        trusts it too. ``authorization``: the Authorization header to send (``Bearer`` and
        the ServiceAccount's token, as the Kubernetes client sends it), asked per request;
        ``keepalive`` stays below our servers' 90 s, so the client closes an
        idle connection first and never reuses one the server is closing."""
        self.identity = identity
        self.timeout = timeout
        self.stale_for = stale_for
        self.authorization = authorization
        self.observer: ForwardObserver = observer or _Unobserved()
        self.last = LastAnswers(maxsize)
        self._anchor = anchor
        self._anchors: tuple[bytes, ...] = ()
        self._retired: dict[asyncio.Task[None], aiohttp.ClientSession] = {}
        self._limit = connections_per_peer
        self._keepalive = keepalive
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._failing: set[str] = set()
        """Peers in a streak of failures, each warned about once."""

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (aiohttp binds it to the running loop) and again
        when the anchor changes: its TLS context trusts the last :data:`ANCHORS_KEPT`."""
        anchor = self._anchor()
        if anchor not in self._anchors:
            self._anchors = (*self._anchors, anchor)[-ANCHORS_KEPT:]
            self._retire()
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=peer_context(b"".join(self._anchors)),
                limit=0,
                limit_per_host=self._limit,
                keepalive_timeout=self._keepalive,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={FORWARDED: self.identity, "Accept": "application/json"},
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _retire(self) -> None:
        """Close the session (its connections verified against the old anchors) once the
        requests it carries now have had their timeout; the next request makes a new one."""
        if self._session is not None:
            session, self._session = self._session, None
            closing = asyncio.get_running_loop().create_task(self._close_after(session))
            self._retired[closing] = session
            closing.add_done_callback(self._retired.pop)

    async def _close_after(self, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(self.timeout)
        await session.close()

    async def aclose(self) -> None:
        sessions = [*self._retired.values(), *([self._session] if self._session else [])]
        for closing in self._retired:
            closing.cancel()
        self._session = None
        for session in sessions:
            await session.close()

    async def answer(
        self, peer: Peer, namespace: str, scaled_object: str, metric: str, query: str
    ) -> Answer:
        """``peer``'s answer to the read, or the stale fallback; ServiceUnavailable when
        neither exists."""
        key = (namespace, scaled_object, metric)
        began = self._clock()
        try:
            answer = await self._ask(peer, namespace, metric, query)
        except _Unreachable as exc:
            return self._fallback(peer, key, began, str(exc))
        now = self._clock()
        if answer.holds_nothing:  # a hand-over: the new owner has not polled it yet
            if (stale := self._stale(key, began)) is not None:
                return stale
        elif answer.status == 200:
            self.last.put(key, now, answer.body)
        else:
            # The owner's own refusal supersedes its older value: serving that one when the
            # owner next cannot be reached would undo its decision.
            self.last.drop(key)
        if peer.identity in self._failing:
            self._failing.discard(peer.identity)
            log.info("owner replica %s (%s) answers again", peer.identity, peer.url)
        self.observer.forwarded("answered", now - began)
        return answer

    def remember(self, key: Key, body: bytes) -> None:
        """An answer this replica gave from its own store: served in its place while a
        hand-over leaves this replica holding nothing for the read."""
        self.last.put(key, self._clock(), body)

    def last_answer(self, key: Key) -> Answer | None:
        """The last answer given for ``key`` (ours or forwarded) while younger than the
        bound, counted as ``stale``; ``None`` without one."""
        return self._stale(key, self._clock())

    def _stale(self, key: Key, began: float) -> Answer | None:
        now = self._clock()
        entry = self.last.get(key, now - self.stale_for)
        if entry is None:
            return None
        self.observer.forwarded("stale", now - began)
        return Answer(200, entry[1])

    async def _ask(self, peer: Peer, namespace: str, metric: str, query: str) -> Answer:
        url = f"{peer.url}{paths.NAMESPACES}{quote(namespace, safe='')}/{quote(metric, safe='')}"
        if query:
            url = f"{url}?{query}"
        authorization = await self.authorization()
        headers = {"Authorization": authorization} if authorization else None
        try:
            async with self._client().get(url, headers=headers, allow_redirects=False) as got:
                body = await got.read()
                status = got.status
                holds_nothing = got.headers.get(HOLDS_NOTHING) == "true"
        except TimeoutError:
            raise _Unreachable(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _Unreachable(
                f"its certificate is not one we trust: {exc.certificate_error}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
        return _checked(status, body, holds_nothing)

    def _fallback(self, peer: Peer, key: Key, began: float, reason: str) -> Answer:
        now = self._clock()
        namespace, scaled_object, metric = key
        if peer.identity not in self._failing:
            self._failing.add(peer.identity)
            log.warning(
                "owner replica %s (%s) cannot be reached: %s; serving the answers it last "
                "gave, up to %g s old, until it answers again",
                peer.identity,
                peer.url,
                reason,
                self.stale_for,
                extra={"peer": peer.identity, "namespace": namespace},
            )
        if (stale := self._stale(key, began)) is not None:
            return stale
        self.observer.forwarded("failed", now - began)
        raise ServiceUnavailable(
            f"ScaledObject {namespace}/{scaled_object}: metric {metric}: its owner replica "
            f"{peer.identity} ({peer.url}) cannot be reached: {reason}; and it gave no answer "
            f"in the last {self.stale_for:g} s to serve instead"
        )


def _checked(status: int, body: bytes, holds_nothing: bool) -> Answer:
    """The owner's answer if it is one to pass on: a 200 ``ExternalMetricValueList``, or a
    ``Status`` whose code is the HTTP status; anything else is a failure to reach the owner
    (a proxy's error page, a server in trouble)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    kind = parsed.get("kind") if isinstance(parsed, dict) else None
    if status == 200 and kind == "ExternalMetricValueList":
        return Answer(status, body)
    if kind == "Status" and parsed["code"] == status and status not in _OURS_TO_FIX:
        return Answer(status, body, holds_nothing)
    if kind == "Status":
        raise _Unreachable(f"it answered {status}: {parsed.get('message', '')}")
    raise _Unreachable(f"it answered {status} with no Kubernetes Status: {body[:200]!r}")


class Reads:
    """Who answers one metric read, and with what: the one place that decides.

    - A read another replica forwarded to us: our store's answer; when we hold nothing for
      it yet, that answer marked :data:`HOLDS_NOTHING`, so the sender may serve better.
    - A read of an object another replica owns: the owner's answer (:class:`Forwarder`).
    - Our own object: our store's answer, remembered; while we hold nothing for it yet
      (just handed it), the last answer given for it, if young enough, else a 503 (not a
      404: the object exists, our watch says so).
    """

    def __init__(self, store: MetricStore, forward: tuple[Route, Forwarder] | None) -> None:
        self.store, self.forward = store, forward

    async def answer(
        self, namespace: str, scaled_object: str, metric: str, query: str, *, forwarded: bool
    ) -> Answer:
        route, forwarder = self.forward or (None, None)
        peer = route.owner(namespace, scaled_object) if route and not forwarded else None
        if forwarder is not None and peer is not None:
            return await forwarder.answer(peer, namespace, scaled_object, metric, query)
        key = (namespace, scaled_object, metric)
        try:
            body = self.store.answer(namespace, scaled_object, metric)
        except APIError as exc:
            if not isinstance(exc, NothingHeld):
                raise
            error = exc
            if isinstance(exc, UnknownObject) and route and route.watched(namespace, scaled_object):
                error = NoValueYet(
                    f"metric:{metric} has no value yet: ScaledObject {namespace}/"
                    f"{scaled_object} was just handed to this replica, which has not read it"
                )
            if forwarded:
                return Answer(error.code, wire.status(error), holds_nothing=True)
            if forwarder is not None and (last := forwarder.last_answer(key)) is not None:
                return last
            raise error from None
        if forwarder is not None and not forwarded:
            forwarder.remember(key, body)
        return Answer(200, body)
