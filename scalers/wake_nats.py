"""Wake hints for ``nats-jetstream``: a core subscription to the stream's subjects.

JetStream is only another subscriber of a stream's subjects, so a plain subscription sees
each message as it is published, without a consumer, an ack or any change to the stream
(push-activation-and-sharding.md A.1). The trigger knows only the monitoring endpoint;
``/varz`` gives the client port (a ``0.0.0.0`` host means the monitoring host), ``/jsz``
the stream's subjects, and ``/connz`` which account our connection landed in: subjects are
per account, and we have no credentials, so a stream of another account cannot be watched.

A flood costs nothing: each subscription asks for one message (``UNSUB <sid> 1``, so the
server stops sending after it) and is renewed :data:`MUTE_SECONDS` later with a hint of its
own, which also covers a poll that raced the stream's write of the first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from scalers.errors import quote
from scalers.wake import HintCallback, Topic, WakeUnavailable, Watcher, WatchOptions, finish

CLIENT_NAME = "metrics-adapter-wake"
"""How our connection shows in ``/connz``."""
MUTE_SECONDS = 1.0
"""After a subject's message, how long until its subscription is renewed: the poller polls
a query at most once a second for hints anyway."""
_PERMISSION = re.compile(r'Permissions Violation for Subscription to "?([^"\s]+)"?', re.I)


@dataclass(frozen=True, slots=True)
class StreamTopic:
    account: str
    stream: str


@dataclass(frozen=True, slots=True)
class NatsWatch:
    """One NATS server (cluster), known by its monitoring endpoint."""

    endpoint: str
    use_https: bool = False
    source_type: ClassVar[str] = "nats-jetstream"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return NatsWatcher(self, on_hint, options)

    def describe(self) -> str:
        return f"nats (monitoring {self.endpoint})"

    @property
    def monitoring_url(self) -> str:
        return f"{'https' if self.use_https else 'http'}://{self.endpoint}"


def client_url(varz: Mapping[str, Any], endpoint: str) -> str:
    """The client URL of the server behind ``endpoint``, from its ``/varz``."""
    host, port = varz.get("host"), varz.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        raise ValueError(f"/varz at {endpoint}: port is {quote(port)}, not a port number")
    if not isinstance(host, str) or host in ("", "0.0.0.0", "::", "[::]"):
        host = endpoint.rpartition(":")[0].removeprefix("[").removesuffix("]")
    return f"nats://[{host}]:{port}" if ":" in host else f"nats://{host}:{port}"


def stream_subjects(jsz: Mapping[str, Any], topic: StreamTopic) -> tuple[str, ...] | None:
    """The subjects of ``topic``'s stream in ``/jsz?acc=..&config=true``; None if absent."""
    for account in jsz.get("account_details") or ():
        if topic.account not in (account.get("id"), account.get("name")):
            continue
        for stream in account.get("stream_detail") or ():
            if stream.get("name") == topic.stream:
                subjects = (stream.get("config") or {}).get("subjects") or ()
                return tuple(s for s in subjects if isinstance(s, str))
    return None


class NatsWatcher(Watcher):
    key: NatsWatch

    def __init__(self, key: NatsWatch, on_hint: HintCallback, options: WatchOptions) -> None:
        super().__init__(key, on_hint, options)
        self._subjects: dict[Topic, tuple[str, ...]] = {}
        self._subs: dict[tuple[Topic, str], Subscription] = {}
        self._fired: dict[tuple[Topic, str], float] = {}
        """Subscriptions whose one message came, and when: renewed MUTE_SECONDS later."""

    async def session(self) -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()
        self._subs.clear()
        self._fired.clear()
        self._subjects.clear()
        async with httpx.AsyncClient(timeout=self.options.timeout) as http:
            varz = await self._get(http, "/varz")
            if varz.get("auth_required"):
                raise WakeUnavailable(
                    "the server requires clients to authenticate and the trigger has only the "
                    "monitoring endpoint: no wake hints"
                )
            if varz.get("tls_required"):
                raise WakeUnavailable("the server requires TLS of clients: no wake hints")
            url = client_url(varz, self.key.endpoint)
            nc = await self._connect(url, lost)
            try:
                account = await self._account(http, nc)
                checked = -float("inf")
                while True:
                    now = time.monotonic()
                    if now - checked >= self.options.recheck or set(self.topics) - set(
                        self._subjects
                    ):
                        await self._read_subjects(http, account)
                        checked = now
                    fresh = await self._subscribe(nc)
                    async with asyncio.timeout(self.options.timeout):
                        await nc.flush()  # a permission error arrives before the PONG
                    self.caught_up(fresh)
                    await self.changed_or(lost, within=self._next_renewal())
            finally:
                await finish(nc.close(), self.options.timeout)

    async def _connect(self, url: str, lost: asyncio.Future[None]) -> Client:
        async def closed() -> None:
            if not lost.done():
                lost.set_result(None)

        async def error(exc: Exception) -> None:
            found = _PERMISSION.search(str(exc))
            if found is None:
                return
            for (topic, subject), _ in list(self._subs.items()):
                if subject == found.group(1):
                    self.refuse(topic, f"may not subscribe to {quote(subject)}")

        try:
            return await nats.connect(
                servers=[url],
                name=CLIENT_NAME,
                connect_timeout=self.options.timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                closed_cb=closed,
                disconnected_cb=closed,
                error_cb=error,
            )
        except nats.errors.NoServersError as exc:
            raise ConnectionError(f"{url}: cannot connect") from exc
        except nats.errors.AuthorizationError as exc:
            raise WakeUnavailable(f"{url} refuses us without credentials: no wake hints") from exc

    async def _get(self, http: httpx.AsyncClient, path: str) -> Mapping[str, Any]:
        answer = (await http.get(self.key.monitoring_url + path)).raise_for_status().json()
        if not isinstance(answer, dict):
            raise ValueError(f"{path} at {self.key.endpoint} is not a JSON object")
        return answer

    async def _account(self, http: httpx.AsyncClient, nc: Client) -> str | None:
        """The account our connection is in, per ``/connz`` (None when it does not say)."""
        connz = await self._get(http, f"/connz?{urlencode({'cid': nc.client_id, 'auth': 1})}")
        for conn in connz.get("connections") or ():
            if conn.get("cid") == nc.client_id and isinstance(conn.get("account"), str):
                return str(conn["account"])
        return None

    async def _read_subjects(self, http: httpx.AsyncClient, ours: str | None) -> None:
        for topic in self.topics:
            assert isinstance(topic, StreamTopic)
            if ours is not None and topic.account != ours:
                self.refuse(
                    topic,
                    f"the stream is in account {quote(topic.account)}; without credentials our "
                    f"connection is in {quote(ours)}",
                )
                self._subjects[topic] = ()
                continue
            query = urlencode({"acc": topic.account, "streams": "true", "config": "true"})
            subjects = stream_subjects(await self._get(http, f"/jsz?{query}"), topic)
            if subjects is None:
                self.refuse(topic, f"stream {quote(topic.stream)} not found in /jsz")
            elif not subjects:
                self.refuse(topic, "the stream has no subjects of its own (mirror or sources)")
            else:
                self.accept(topic)
            self._subjects[topic] = subjects or ()

    async def _subscribe(self, nc: Client) -> set[Topic]:
        """Subscriptions as the topics want them now; the topics newly subscribed."""
        wanted = {(t, s) for t in self.topics for s in self._subjects.get(t, ())}
        for pair in set(self._subs) - wanted:
            with contextlib.suppress(nats.errors.Error):  # already ended by its one message
                await self._subs.pop(pair).unsubscribe()
        now, fresh = time.monotonic(), set()
        for pair in wanted - set(self._subs):
            if now < self._fired.get(pair, -MUTE_SECONDS) + MUTE_SECONDS:
                continue
            self._fired.pop(pair, None)
            sub = self._subs[pair] = await nc.subscribe(pair[1], cb=self._callback(pair))
            await sub.unsubscribe(limit=1)  # the server sends one message, then forgets it
            fresh.add(pair[0])
        self._subjects = {t: s for t, s in self._subjects.items() if t in self.topics}
        return fresh

    def _callback(self, pair: tuple[Topic, str]) -> Any:
        async def received(_: Msg) -> None:
            if self._subs.pop(pair, None) is not None:  # the server sends no more
                self._fired[pair] = time.monotonic()
                self.hint(pair[0])
                self.poke()

        return received

    def _next_renewal(self) -> float | None:
        if not self._fired:
            return self.options.recheck
        return max(0.0, min(self._fired.values()) + MUTE_SECONDS - time.monotonic())
