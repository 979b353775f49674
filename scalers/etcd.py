"""``etcd``: the number stored at one etcd key, as KEDA's ``etcdScaler`` reads it.

The value is the key's value parsed as a float (KEDA's ``strconv.ParseFloat``); a missing
key and a value that is not a number are errors (KEDA's too), never 0. Active when above
``activationValue``. The metric is ``etcd-<watchKey>``.

We read it through etcd's v3 JSON gateway (``POST /v3/kv/range``, base64 keys), which every
etcd serves on its client URLs, with the process's shared httpx clients: no gRPC stack for
one unary call. What carries over from KEDA's ``clientv3``:

- ``endpoints`` are tried in turn: one that cannot be reached sends the request to the next,
  and the one that answered is asked first next time. An endpoint ``http://`` is plain and
  ``https://`` is TLS; a bare ``host:port`` is TLS when ``tls: enable``, as clientv3 decides;
- ``username``/``password``: a token from ``/v3/auth/authenticate``, sent as
  ``Authorization`` and fetched again when etcd says it is no longer valid; when etcd has
  authentication off, the request goes without one (clientv3 ignores that refusal too).

One session (token, endpoint that answered) per endpoints + user + TLS identity is shared
by every trigger. KEDA also watches the key and marks the object active between polls;
our watch (:mod:`scalers.wake_etcd`, with wake hints on) makes a put poll at once, and the
poll decides. Where we differ: ``watchProgressNotifyInterval`` is parsed and checked, then
not used. An endpoint that accepts the connection but never
answers fails that poll (the adapter's timeout is the poll's whole budget); the next poll
starts at the next endpoint. Hexadecimal floats (``0x1p-2``), which Go also reads, and
infinities or NaN, which KEDA would serve, are errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.params import Source, TriggerMetadata, param
from scalers.redis import split_address
from scalers.tls_keys import decrypted_key
from scalers.wake import Wake

_AUTH = (Source.AUTH,)
_AUTH_ENV = (Source.AUTH, Source.ENV)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""The decimal numbers Go's ParseFloat reads (no spaces around, no underscores)."""
INVALID_TOKEN = 16
"""gRPC ``Unauthenticated``: etcd's ``invalid auth token`` (expired, or the member restarted)."""
UNAVAILABLE = 14
"""gRPC ``Unavailable``: ``no leader`` and the like, which clientv3 retries elsewhere."""
AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    endpoints: tuple[str, ...] = param("endpoints", doc="host:port or http(s)://host:port, a list")
    watch_key: str = param("watchKey")
    value: float = param("value", gt=0)
    activation_value: float = param("activationValue", default="0")
    watch_progress_notify_interval: int = param(
        "watchProgressNotifyInterval", default="600", gt=0, doc="KEDA's watch only: not used"
    )
    username: str | None = param("username", order=_AUTH_ENV, optional=True)
    password: str | None = param("password", order=_AUTH_ENV, optional=True, secret=True)
    tls: str = param("tls", order=_AUTH, default="disable", enum=("enable", "disable"))
    cert: str | None = param("cert", order=_AUTH, optional=True, doc="PEM, with key")
    key: str | None = param("key", order=_AUTH, optional=True, secret=True, doc="PEM, with cert")
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)
    ca: str | None = param("ca", order=_AUTH, optional=True, doc="PEM")

    def check(self) -> Iterator[tuple[str, str]]:
        for endpoint in self.endpoints:
            try:
                base_url(endpoint, tls=False)
            except ValueError as exc:
                yield "endpoints", str(exc)
        if self.tls == "enable":
            if self.key and not self.cert:
                yield "cert", "must be provided with key (from the authentication)"
            if self.cert and not self.key:
                yield "key", "must be provided with cert (from the authentication)"
            if self.key and self.key_password:
                try:
                    decrypted_key(self.key, self.key_password)
                except (ValueError, TypeError) as exc:
                    yield "keyPassword", f"does not decrypt key: {exc}"
        if self.password and not self.username:
            yield "username", "must be provided with password"
        if self.username and not self.password:
            yield "password", "must be provided with username"


def base_url(endpoint: str, *, tls: bool) -> str:
    """An endpoint as a URL, its scheme chosen as clientv3 chooses it."""
    scheme, sep, address = endpoint.partition("://")
    if not sep:
        scheme, address = ("https" if tls else "http"), endpoint
    if scheme not in ("http", "https"):
        raise ValueError(f"{quote(endpoint)} is not host:port, http://host:port or https://...")
    split_address(address.rstrip("/"))  # raises ValueError naming it
    return f"{scheme}://{address.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class EtcdCluster:
    """What makes two etcd sessions different; every trigger with an equal one shares one."""

    endpoints: tuple[str, ...]
    """Base URLs, in the user's order."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: HttpIdentity = field(default_factory=HttpIdentity, repr=False)

    def __str__(self) -> str:
        return f"etcd {','.join(self.endpoints)}"


class Session:
    """One cluster's token and the endpoint that answered last, shared by its triggers."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self.first = 0
        """The endpoint asked first: the last one that answered."""
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    async def range(self, clients: Clients, key: str) -> dict[str, Any]:
        """The Range answer for ``key`` from the first endpoint that answers."""
        endpoints = self.cluster.endpoints
        failures: list[SourceUnreachable] = []
        start = self.first
        for step in range(len(endpoints)):
            i = (start + step) % len(endpoints)
            # Moved on before asking: if this poll is cancelled while an endpoint hangs,
            # the next poll starts at the next one.
            self.first = (i + 1) % len(endpoints)
            try:
                answer = await self._range_at(clients, endpoints[i], key)
            except SourceUnreachable as exc:
                failures.append(exc)
                continue
            self.first = i
            return answer
        if len(failures) == 1:
            raise failures[0]
        kind = SourceTimeout if all(isinstance(f, SourceTimeout) for f in failures) else None
        reasons = "; ".join(map(str, failures))
        raise (kind or SourceUnreachable)(f"{self.cluster}: no endpoint answered: {reasons}")

    async def _range_at(self, clients: Clients, url: str, key: str) -> dict[str, Any]:
        body = {"key": base64.b64encode(key.encode()).decode()}
        for attempt in range(2):
            token = await self.token(clients, url)
            headers = {"Authorization": token} if token else {}
            status, answer = await self._post(clients, f"{url}/v3/kv/range", body, headers)
            if status == 200:
                return answer
            if _code(answer) == INVALID_TOKEN and token and attempt == 0:
                self.forget(token)
                continue
            raise self.refusal(f"{url} range {quote(key)}", status, answer)
        raise AssertionError("unreachable")  # pragma: no cover

    async def token(self, clients: Clients, url: str) -> str | None:
        """The token to send, fetched at ``url`` once for every query waiting for it;
        ``None`` without a username."""
        cluster = self.cluster
        if cluster.username is None:
            return None
        async with self._token_lock:
            if self._token is None:
                body = {"name": cluster.username, "password": cluster.password}
                status, answer = await self._post(clients, f"{url}/v3/auth/authenticate", body, {})
                if status == 200 and isinstance(answer.get("token"), str):
                    self._token = answer["token"]
                elif _message(answer) == AUTH_NOT_ENABLED:
                    self._token = ""
                else:
                    what = f"{url} authentication of user {quote(cluster.username)}"
                    raise self.refusal(what, status, answer)
            return self._token

    def forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _post(
        self, clients: Clients, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        response = await clients.post(
            url,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
            identity=self.cluster.identity,
        )
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SourceResponseError(
                f"POST {url}: HTTP {response.status_code}, not etcd's JSON gateway: "
                f"{response.text[:120]!r}"
            )
        return response.status_code, answer

    @staticmethod
    def refusal(what: str, status: int, answer: dict[str, Any]) -> Exception:
        message = f"{what}: HTTP {status}: {_message(answer) or quote(answer)}"
        if _code(answer) == UNAVAILABLE or status == 503:
            return SourceUnreachable(message)  # another endpoint may have a leader
        return SourceResponseError(message)


def _code(answer: dict[str, Any]) -> object:
    return answer.get("code")


def _message(answer: dict[str, Any]) -> str:
    message = answer.get("message", answer.get("error", ""))
    return message if isinstance(message, str) else ""


async def _open(cluster: EtcdCluster) -> Session:
    return Session(cluster)


async def _close(_: Session) -> None:
    """Nothing to close: the HTTP connections belong to the shared clients."""


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """One Range of one key on one cluster, shared by every trigger that watches it."""

    cluster: EtcdCluster
    key: str

    async def run(self, clients: Clients) -> float:
        session = await clients.shared(self.cluster, lambda: _open(self.cluster), _close)
        answer = await session.range(clients, self.key)
        return parse_value(answer, f"{self.cluster} watchKey {quote(self.key)}")

    def describe(self) -> str:
        return f"range {quote(self.key)} at {self.cluster}"


def parse_value(answer: dict[str, Any], where: str) -> float:
    """The number in a Range answer, as KEDA's ``strconv.ParseFloat`` of the first value."""
    kvs = answer.get("kvs")
    if not kvs:
        raise SourceResponseError(f"{where} does not exist")
    if not isinstance(kvs, list) or not isinstance(kvs[0], dict):
        raise SourceResponseError(f"{where}: unreadable answer {quote(answer)}")
    try:
        raw = base64.b64decode(kvs[0].get("value", ""), validate=True)
    except (binascii.Error, TypeError) as exc:
        raise SourceResponseError(f"{where}: value is not base64: {exc}") from exc
    text = raw.decode("utf-8", "replace")
    if not _FLOAT.fullmatch(text):
        raise SourceResponseError(f"{where}: value {quote(text)} is not a number")
    number = float(text)
    if not math.isfinite(number):
        raise SourceResponseError(f"{where}: value {quote(text)} is out of range for a number")
    return number


@dataclass(frozen=True, kw_only=True)
class EtcdScaler(Scaler[float]):
    meta: Metadata
    query: RangeQuery

    def measure(self, answer: float) -> float:
        return answer

    def wake(self) -> Wake:
        """A watch of the key (KEDA watches it too), on one connection per cluster."""
        from scalers.wake_etcd import EtcdWatch  # it builds on this module's sessions

        return Wake(EtcdWatch(self.query.cluster), self.query.key)


def build(meta: Metadata) -> EtcdScaler:
    tls = meta.tls == "enable"
    identity = HttpIdentity()
    if tls:
        key = meta.key
        if key and meta.key_password:
            key = decrypted_key(key, meta.key_password)
        identity = HttpIdentity(ca_pem=meta.ca, cert_pem=meta.cert, key_pem=key)
    cluster = EtcdCluster(
        endpoints=tuple(base_url(e, tls=tls) for e in meta.endpoints),
        username=meta.username,
        password=meta.password,
        identity=identity,
    )
    return EtcdScaler(
        meta=meta,
        query=RangeQuery(cluster, meta.watch_key),
        metric_name=normalize(f"etcd-{meta.watch_key}"),
        target=meta.value,
        activation_target=meta.activation_value,
        value_label="value",
    )


KIND = ScalerKind(
    type_name="etcd",
    keda_name="etcdScaler",
    metadata=Metadata,
    build=build,
    summary="The number stored at an etcd key (v3 API).",
    example=Example(
        {"endpoints": "etcd-0.etcd:2379,etcd-1.etcd:2379", "watchKey": "jobs", "value": "5"},
        {"username": "reader", "password": "etcd-password"},
        source="endpoints",
    ),
)
