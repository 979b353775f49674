"""``redis``: the length of a Redis list, set, sorted set or hash (KEDA's "Redis Lists")."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.connection import Connection
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients, HttpIdentity, tls_context
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.params import Source, TriggerMetadata, param
from scalers.tls_keys import decrypted_key
from scalers.wake import Wake

_AUTH = (Source.AUTH,)
_TRIGGER_AUTH_ENV = (Source.TRIGGER, Source.AUTH, Source.ENV)
_TRIGGER_ENV_AUTH = (Source.TRIGGER, Source.ENV, Source.AUTH)

CLIENT_NAME = "metrics-adapter"
"""How our connections show in ``CLIENT LIST``."""

LENGTH_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'list' or kind == 'none' then return redis.call('LLEN', KEYS[1]) end
if kind == 'zset' then return redis.call('ZCARD', KEYS[1]) end
if kind == 'set' then return redis.call('SCARD', KEYS[1]) end
if kind == 'hash' then return redis.call('HLEN', KEYS[1]) end
return kind
"""
"""KEDA's script: one round trip, the count that fits the key's type; a missing key is an
empty list. For any other type it returns the type's name, which :class:`LengthQuery` turns
into an error (KEDA returns -1 and reports it as the length)."""


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    """KEDA's ``redisMetadata`` with its connection info: names, aliases and source order
    as its tags say (``address;addresses``, ``host;hosts``, ``port;ports``, ``Cert;cert``)."""

    list_name: str = param("listName", doc="the key: a list, set, sorted set or hash")
    list_length: int = param("listLength", default="5", gt=0)
    activation_list_length: int = param("activationListLength", default="0")
    address: tuple[str, ...] | None = param(
        "address",
        aliases=("addresses",),
        order=_TRIGGER_AUTH_ENV,
        optional=True,
        doc="host:port (the first of a list)",
    )
    host: tuple[str, ...] | None = param(
        "host", aliases=("hosts",), order=_TRIGGER_ENV_AUTH, optional=True, doc="with port"
    )
    port: tuple[str, ...] | None = param(
        "port", aliases=("ports",), order=_TRIGGER_ENV_AUTH, optional=True, doc="with host"
    )
    database_index: int = param("databaseIndex", default="0", ge=0)
    username: str | None = param("username", order=_TRIGGER_ENV_AUTH, optional=True)
    password: str | None = param("password", order=_TRIGGER_ENV_AUTH, optional=True, secret=True)
    enable_tls: bool | None = param("enableTLS", optional=True)
    unsafe_ssl: bool = param("unsafeSsl", default="false", doc="with TLS: skip verification")
    tls: str | None = param("tls", order=_AUTH, optional=True, enum=("enable", "disable"))
    ca: str | None = param("ca", order=_AUTH, optional=True, doc="PEM")
    cert: str | None = param(
        "Cert", aliases=("cert",), order=_AUTH, optional=True, doc="PEM, with key"
    )
    key: str | None = param("key", order=_AUTH, optional=True, doc="PEM, with cert", secret=True)
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)

    @property
    def uses_tls(self) -> bool:
        return bool(self.enable_tls) or self.tls == "enable"

    @property
    def addresses(self) -> tuple[str, ...]:
        """KEDA's: ``address`` first, then each ``host`` joined with its ``port``."""
        joined: tuple[str, ...] = ()
        if self.host and self.port and len(self.host) == len(self.port):
            joined = tuple(join_host_port(h, p) for h, p in zip(self.host, self.port, strict=True))
        return (*(self.address or ()), *joined)

    def check(self) -> Iterator[tuple[str, str]]:
        if self.host and self.port and len(self.host) != len(self.port):
            yield (
                "host",
                f"and port must list as many entries: {len(self.host)} and {len(self.port)}",
            )
        elif not self.addresses:
            if self.host and not self.port:
                yield "port", "is required with host"
            elif self.port and not self.host:
                yield "host", "is required with port"
            else:
                yield "address", "is required (host:port), or host and port"
        else:  # KEDA connects to the first when it creates the scaler
            try:
                split_address(self.addresses[0])
            except ValueError as exc:
                yield "address" if self.address else "port", str(exc)
        if self.enable_tls is not None and self.tls is not None:
            yield "tls", "cannot be set in the authentication when enableTLS is set in the trigger"
        if self.uses_tls:
            if self.cert and not self.key:
                yield "key", "must be provided with cert (from the authentication)"
            if self.key and not self.cert:
                yield "cert", "must be provided with key (from the authentication)"
            if self.key and self.key_password:
                try:
                    decrypted_key(self.key, self.key_password)
                except (ValueError, TypeError) as exc:
                    yield "keyPassword", f"does not decrypt key: {exc}"


def join_host_port(host: str, port: str) -> str:
    """Go's ``net.JoinHostPort``: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{quote(address)} is not host:port")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class RedisBackend:
    """What makes two Redis clients different; every trigger with an equal one shares one."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: HttpIdentity | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.db}"


class _TlsConnection(Connection):
    """A connection over our own SSLContext: redis-py builds one only from files."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tls_context = tls_context

    def _connection_arguments(self) -> Mapping[str, Any]:
        return {**super()._connection_arguments(), "ssl": self._tls_context}


@dataclass(frozen=True, slots=True)
class _Client:
    redis: redis.asyncio.Redis
    length: AsyncScript


def connection_pool(
    backend: RedisBackend,
    *,
    timeout: float,
    socket_timeout: float | None,
    client_name: str = CLIENT_NAME,
) -> redis.asyncio.ConnectionPool:
    """Connections to ``backend`` as KEDA makes them; the wake watcher's too (no read
    timeout: it waits for notifications)."""
    options: dict[str, Any] = {
        "host": backend.host,
        "port": backend.port,
        "db": backend.db,
        "username": backend.username,
        "password": backend.password,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": timeout,
        # One attempt per call: the caller's timeout bounds it and the next poll retries.
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "client_name": client_name,
    }
    if backend.tls is None:
        return redis.asyncio.ConnectionPool(**options)
    return redis.asyncio.ConnectionPool(
        connection_class=_TlsConnection, tls_context=tls_context(backend.tls), **options
    )


async def _open(backend: RedisBackend, socket_timeout: float) -> _Client:
    pool = connection_pool(backend, timeout=socket_timeout, socket_timeout=socket_timeout)
    client = redis.asyncio.Redis.from_pool(pool)
    return _Client(client, client.register_script(LENGTH_SCRIPT))


async def _close(client: _Client) -> None:
    await client.redis.aclose()


@dataclass(frozen=True, slots=True)
class LengthQuery:
    """One script run: the length of one key on one backend, shared by every trigger on it."""

    backend: RedisBackend
    key: str

    async def run(self, clients: Clients) -> int:
        client = await self._client(clients)
        try:
            answer = await client.length(keys=[self.key])
        except redis.exceptions.AuthenticationError as exc:
            raise SourceResponseError(f"{self._where()}: authentication failed: {exc}") from exc
        except redis.exceptions.TimeoutError as exc:
            await self._forget(clients, client)
            raise SourceTimeout(
                f"{self._where()}: no answer within {clients.timeout:g}s ({exc})"
            ) from exc
        except redis.exceptions.ConnectionError as exc:
            await self._forget(clients, client)
            raise SourceUnreachable(f"{self._where()}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise SourceResponseError(f"{self._where()}: {type(exc).__name__}: {exc}") from exc
        if isinstance(answer, bytes):
            kind = answer.decode(errors="replace")
            raise SourceResponseError(
                f"{self._where()}: the key is a {kind}; expected a list, set, sorted set or hash"
            )
        if not isinstance(answer, int):
            raise SourceResponseError(f"{self._where()}: unexpected answer {answer!r}")
        return answer

    async def _client(self, clients: Clients) -> _Client:
        return await clients.shared(
            self.backend, lambda: _open(self.backend, clients.timeout), _close
        )

    async def _forget(self, clients: Clients, failed: _Client) -> None:
        """Close the backend's client so the next poll reconnects, unless a query sharing it
        failed first and already replaced it: closing also fails the commands in flight."""
        if await self._client(clients) is failed:
            await clients.discard(self.backend)

    def _where(self) -> str:
        return f"{self.backend} key {quote(self.key)}"

    def describe(self) -> str:
        return f"EVALSHA length of {quote(self.key)} at {self.backend}"


@dataclass(frozen=True, kw_only=True)
class RedisScaler(Scaler[int]):
    meta: Metadata
    query: LengthQuery

    def measure(self, answer: int) -> float:
        return float(answer)

    def wake(self) -> Wake:
        """Keyspace notifications of the key, when the server sends them."""
        from scalers.wake_redis import RedisWatch  # it builds on this module's connections

        return Wake(RedisWatch.of(self.query.backend), (self.query.backend.db, self.query.key))


def build(meta: Metadata) -> RedisScaler:
    host, port = split_address(meta.addresses[0])
    tls = None
    if meta.uses_tls:
        key = meta.key
        if key and meta.key_password:
            key = decrypted_key(key, meta.key_password)
        tls = HttpIdentity(
            verify=not meta.unsafe_ssl, ca_pem=meta.ca, cert_pem=meta.cert, key_pem=key
        )
    backend = RedisBackend(
        host=host,
        port=port,
        db=meta.database_index,
        username=meta.username,
        password=meta.password,
        tls=tls,
    )
    return RedisScaler(
        meta=meta,
        query=LengthQuery(backend, meta.list_name),
        metric_name=normalize(f"redis-{meta.list_name}"),
        target=float(meta.list_length),
        activation_target=float(meta.activation_list_length),
        value_label="length",
    )


KIND = ScalerKind(
    type_name="redis",
    keda_name="redisScaler",
    metadata=Metadata,
    build=build,
    summary="Length of a Redis list (or set, sorted set, hash): LLEN, SCARD, ZCARD or HLEN.",
    example=Example(
        {"address": "redis.default.svc:6379", "listName": "jobs", "listLength": "5"},
        {"password": "redis-password"},
        source="address",
    ),
)
