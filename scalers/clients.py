"""One client per backend identity, shared by every trigger that points at it."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.flight import SingleFlight
from scalers.http1 import BodyTooLarge, Pool, ProtocolError, Target
from scalers.kube_pods import PodLister
from scalers.turns import Turns, bounded

T = TypeVar("T")
DEFAULT_TIMEOUT = 3.0
"""Seconds a backend call may take unless ``--scaler-timeout`` says otherwise, as KEDA's
``KEDA_HTTP_DEFAULT_TIMEOUT`` (3000 ms); every other default refers to this one."""
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpIdentity:
    """What makes two HTTP clients different: how they verify and present TLS."""

    verify: bool = True
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class JsonGet:
    """A ``GET`` whose answer is a JSON document: the query of most HTTP scalers."""

    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    identity: HttpIdentity = field(default_factory=HttpIdentity)
    secret_params: tuple[str, ...] = ()
    """Query parameters whose values (API keys) never appear in messages."""
    sent: Target | None = field(default=None, init=False, compare=False, repr=False)
    """:attr:`url` as it is sent, quoted and split once here rather than at every poll
    (~17 us a poll); None: it cannot be, and each poll says why."""

    def __post_init__(self) -> None:
        with contextlib.suppress(ValueError):
            object.__setattr__(self, "sent", Target.parse(self.url))

    async def run(self, clients: Clients) -> object:
        return await clients.get_json(
            self.url,
            headers=dict(self.headers),
            identity=self.identity,
            shown=self.shown_url,
            sent=self.sent,
        )

    @property
    def shown_url(self) -> str:
        return redact_query(self.url, self.secret_params)

    def describe(self) -> str:
        return f"GET {self.shown_url}"

    def __repr__(self) -> str:
        return f"JsonGet({self.shown_url!r})"


def redact_query(url: str, names: tuple[str, ...]) -> str:
    """``url`` with the values of the query parameters ``names`` replaced by ``***``."""
    if not names:
        return url
    parts = urlsplit(url)
    pairs = [
        (k, "***" if k in names else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="*")))


HTTP_IN_FLIGHT = 64
"""Requests in flight per HTTP client (one backend identity). More wait their turn here
(:class:`~scalers.turns.Turns`, their poll's timeout stopped meanwhile), never in a client's
own pool: httpx's queue is rescanned on every request
(10,000 distinct URLs starved the event loop) and a waiter cancelled by a timeout can leak a
connection slot for good (httpcore issue 1093), after which every trigger fails."""


class _Http:
    """The clients of one backend identity and the turns of their requests: GETs (every
    poll) on :mod:`scalers.http1`'s keep-alive pool (aiohttp's request building, header
    parsing and timers were a third of a poll's CPU; httpcore's pool rescanned every
    connection for every waiting request); POSTs (token and etcd range requests, whose
    callers read an httpx response) on httpx."""

    def __init__(self, identity: HttpIdentity, timeout: float) -> None:
        self._context = tls_context(identity)
        self._timeout = timeout
        self.pool = Pool(self._context, HTTP_IN_FLIGHT)
        self._client: httpx.AsyncClient | None = None
        self.turns = Turns(HTTP_IN_FLIGHT)

    @property
    def client(self) -> httpx.AsyncClient:
        """The httpx client, made on the first POST: most identities only ever GET."""
        if self._client is None:
            limits = httpx.Limits(
                max_connections=HTTP_IN_FLIGHT, max_keepalive_connections=HTTP_IN_FLIGHT
            )
            self._client = httpx.AsyncClient(
                verify=self._context,
                timeout=httpx.Timeout(self._timeout),
                limits=limits,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self._client is not None:
            await self._client.aclose()


class Clients:
    """The backend clients of one process, created on first use and closed together."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, pods: PodLister | None = None) -> None:
        self.timeout = timeout
        self.pods = pods
        """The cluster's pods (``kubernetes-workload``); ``None`` without a cluster."""
        self._http: dict[HttpIdentity, _Http] = {}
        self._shared: dict[Hashable, tuple[Any, Callable[[Any], Awaitable[None]]]] = {}
        self._opening: SingleFlight[Hashable, object] = SingleFlight(cancel_abandoned=True)
        """Clients being opened; an opening nobody waits for any more is cancelled."""

    async def shared(
        self,
        key: Hashable,
        open_client: Callable[[], Awaitable[T]],
        close_client: Callable[[T], Awaitable[None]],
    ) -> T:
        """The client of one backend identity (``key``), opened once and shared by every
        trigger that points at it; concurrent first callers share one opening, and its
        failure (the next poll tries again)."""
        found = self._shared.get(key)
        if found is not None:
            return cast(T, found[0])

        async def open_shared() -> T:
            client = await open_client()
            self._shared[key] = (client, close_client)
            return client

        return cast(T, await self._opening.do(key, open_shared))

    async def discard(self, key: Hashable) -> None:
        """Close and forget a broken client: the next use opens a fresh one."""
        found = self._shared.pop(key, None)
        if found is not None:
            client, close_client = found
            # Closing a broken client may fail too; it is forgotten either way.
            with contextlib.suppress(Exception):
                await close_client(client)

    def _http_for(self, identity: HttpIdentity) -> _Http:
        http = self._http.get(identity)
        if http is None:
            http = self._http[identity] = _Http(identity, self.timeout)
        return http

    async def get_bytes(
        self,
        url: str,
        *,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
        sent: Target | None = None,
    ) -> bytes:
        """GET ``url`` and return its body, mapping every failure onto the ScalerError tree.
        Messages name ``shown`` (the URL with its secrets redacted) when given; ``sent`` is
        ``url`` already split for sending. Only a ``200`` of at most :data:`MAX_BODY_BYTES`
        is an answer; redirects are not followed. A poll's clock bounds the request (from
        its turn on); a call outside a poll has :attr:`timeout` of its own."""
        http = self._http_for(identity)
        what = f"GET {shown or url}"
        try:
            target = sent or Target.parse(url)
            async with http.turns.take(), bounded(self.timeout):
                answer = await http.pool.get(target, headers, MAX_BODY_BYTES)
        except TimeoutError as exc:
            raise SourceTimeout(f"{what}: no answer within {self.timeout:g}s") from exc
        except BodyTooLarge as exc:
            raise SourceResponseError(f"{what}: answer larger than {MAX_BODY_BYTES} bytes") from exc
        except ssl.SSLError as exc:  # before OSError and ValueError: it is both
            raise SourceUnreachable(f"{what}: TLS: {exc}") from exc
        except (OSError, ProtocolError, ValueError) as exc:  # ValueError: a URL or header
            raise SourceUnreachable(f"{what}: {_reason(exc)}") from exc
        if answer.status != 200:
            text = answer.body.decode("utf-8", "replace")
            raise SourceResponseError(f"{what}: HTTP {answer.status}: {text!r}")
        return answer.body

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
    ) -> httpx.Response:
        """POST ``content`` and return the response whatever its status (a token endpoint
        explains a refusal in its body), mapping transport failures onto the ScalerError
        tree. The body may hold credentials: it never appears in a message."""
        http = self._http_for(identity)
        what = f"POST {shown or url}"
        try:
            async with http.turns.take():
                response = await http.client.post(url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise SourceTimeout(f"{what}: no answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"{what}: {_reason(exc)}") from exc
        except ssl.SSLError as exc:
            raise SourceUnreachable(f"{what}: TLS: {exc}") from exc
        if len(response.content) > MAX_BODY_BYTES:
            raise SourceResponseError(f"{what}: answer larger than {MAX_BODY_BYTES} bytes")
        return response

    async def get_json(
        self,
        url: str,
        *,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
        sent: Target | None = None,
    ) -> object:
        """:meth:`get_bytes`, decoded as JSON. The document is whatever the source sent:
        each caller decodes it into its own types."""
        body = await self.get_bytes(url, headers=headers, identity=identity, shown=shown, sent=sent)
        try:
            document: object = json.loads(body)
        except ValueError as exc:
            text = body.decode("utf-8", "replace")
            raise SourceResponseError(
                f"GET {shown or url}: answer is not JSON: {text[:80]!r}"
            ) from exc
        return document

    async def aclose(self) -> None:
        clients, self._http = list(self._http.values()), {}
        for http in clients:
            await http.aclose()
        for key in list(self._shared):
            await self.discard(key)


def _reason(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    return f"{text} ({cause})" if cause and str(cause) not in text else text


def tls_context(identity: HttpIdentity) -> ssl.SSLContext:
    """The client TLS context of an identity: its CA (else the system's), verification, and
    the client pair; for HTTP and for any other protocol that speaks TLS."""
    ctx = (
        ssl.create_default_context(cadata=identity.ca_pem)
        if identity.ca_pem
        else (ssl.create_default_context())
    )
    if not identity.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if identity.cert_pem and identity.key_pem:
        # ssl can load a client pair only from files: keep them for the call, in a 0700 dir.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for path, pem in ((cert, identity.cert_pem), (key, identity.key_pem)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                    fh.write(pem)
            ctx.load_cert_chain(cert, key)
    return ctx
