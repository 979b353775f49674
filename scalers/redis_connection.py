"""What every Redis trigger type shares to reach its server: one client per backend, and what
a failed command means.

KEDA gives the list and stream triggers one connection struct (``redisConnectionInfo``, here
:mod:`scalers.redis_params`) and three ways to open it: one server, a cluster (every address
a startup node) and Sentinel (every address a sentinel that names the master). Here each way
is a backend identity
(:class:`RedisBackend`, :class:`ClusterBackend`, :class:`SentinelBackend`) that opens a
:class:`Connected` client, shared through :meth:`Clients.shared` by every trigger, lists and
streams alike, whose identity is equal; :func:`command` runs one call on it and maps what
redis-py raises onto the ScalerError tree.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry

from scalers.clients import Clients, HttpIdentity, tls_context
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.redis_params import ConnectionFields, SentinelFields, join_host_port

T = TypeVar("T")
CLIENT_NAME = "metrics-adapter"
"""How our connections show in ``CLIENT LIST``."""


def _shown(host: str, port: int) -> str:
    return join_host_port(host, str(port))


class _TlsConnection(Connection):
    """A connection over our own SSLContext: redis-py builds one only from files."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tls_context = tls_context

    def _connection_arguments(self) -> Mapping[str, Any]:
        return {**super()._connection_arguments(), "ssl": self._tls_context}


class _TlsSentinelConnection(_TlsConnection, SentinelManagedConnection):
    """A connection to the master a sentinel names, over our SSLContext."""


def _options(
    *,
    username: str | None,
    password: str | None,
    timeout: float,
    socket_timeout: float | None,
    client_name: str,
) -> dict[str, Any]:
    return {
        "username": username,
        "password": password,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": timeout,
        # One attempt per call: the caller's timeout bounds it and the next poll retries.
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "client_name": client_name,
    }


@dataclass(frozen=True, slots=True)
class Connected:
    """An open client of one backend, and the scripts registered on it."""

    redis: redis.asyncio.Redis | RedisCluster
    scripts: dict[str, AsyncScript] = field(default_factory=dict)

    def script(self, source: str) -> AsyncScript:
        found = self.scripts.get(source)
        if found is None:
            found = self.scripts[source] = self.redis.register_script(source)
        return found

    async def aclose(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True, slots=True)
class RedisBackend:
    """One server: what makes two clients different; every trigger with an equal one shares
    one."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: HttpIdentity | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{_shown(self.host, self.port)}/{self.db}"

    async def open(self, seconds: float) -> Connected:
        pool = connection_pool(self, timeout=seconds, socket_timeout=seconds)
        return Connected(redis.asyncio.Redis.from_pool(pool))


def connection_pool(
    backend: RedisBackend,
    *,
    timeout: float,
    socket_timeout: float | None,
    client_name: str = CLIENT_NAME,
) -> redis.asyncio.ConnectionPool:
    """Connections to one server as KEDA makes them; the wake watcher's too (no read
    timeout: it waits for notifications)."""
    options = _options(
        username=backend.username,
        password=backend.password,
        timeout=timeout,
        socket_timeout=socket_timeout,
        client_name=client_name,
    )
    options |= {"host": backend.host, "port": backend.port, "db": backend.db}
    if backend.tls is None:
        return redis.asyncio.ConnectionPool(**options)
    return redis.asyncio.ConnectionPool(
        connection_class=_TlsConnection, tls_context=tls_context(backend.tls), **options
    )


@dataclass(frozen=True, slots=True)
class ClusterBackend:
    """A cluster, found from its startup nodes (KEDA's ``ClusterClient``: no database)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: HttpIdentity | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme} cluster {','.join(_shown(h, p) for h, p in self.nodes)}"

    async def open(self, seconds: float) -> Connected:
        options = _options(
            username=self.username,
            password=self.password,
            timeout=seconds,
            socket_timeout=seconds,
            client_name=CLIENT_NAME,
        )
        # Slot moves are followed; a node that fails is the poll's error (``retry`` says no
        # second attempt), and the next poll's client maps the slots again.
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self.nodes],
            **options,
        )
        if self.tls is not None:
            # RedisCluster builds TLS only from files: each node, the startup ones and those
            # it discovers, gets our context through the connection arguments they all copy.
            tls = {"tls_context": tls_context(self.tls)}
            cluster.connection_kwargs |= {"connection_class": _TlsConnection, **tls}
            for node in cluster.nodes_manager.startup_nodes.values():
                node.connection_class = _TlsConnection
                node.connection_kwargs |= tls
        return _ClusterConnected(cluster)


@dataclass(frozen=True, slots=True)
class SentinelBackend:
    """The master that sentinels name, followed across failovers (KEDA's ``FailoverClient``):
    a new connection asks the sentinels first, and a client that failed is replaced."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: HttpIdentity | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        shown = ",".join(_shown(h, p) for h, p in self.sentinels)
        return f"{scheme} sentinel {shown} master {quote(self.master)}/{self.db}"

    async def open(self, seconds: float) -> Connected:
        sentinel = _Sentinel([])  # type: ignore[no-untyped-call]
        sentinel.sentinels = [  # each sentinel as one server of its own identity
            redis.asyncio.Redis.from_pool(
                connection_pool(
                    RedisBackend(h, p, 0, self.sentinel_username, self.sentinel_password, self.tls),
                    timeout=seconds,
                    socket_timeout=seconds,
                )
            )
            for h, p in self.sentinels
        ]
        options = _options(
            username=self.username,
            password=self.password,
            timeout=seconds,
            socket_timeout=seconds,
            client_name=CLIENT_NAME,
        )
        if self.tls is not None:
            options |= {
                "connection_class": _TlsSentinelConnection,
                "tls_context": tls_context(self.tls),
            }
        master = sentinel.master_for(self.master, db=self.db, **options)
        return _SentinelConnected(master, sentinel=sentinel)


@dataclass(frozen=True, slots=True)
class _ClusterConnected(Connected):
    async def aclose(self) -> None:
        """Every node's connections: after a failed command redis-py marks the cluster for
        mapping again, and its own ``aclose`` then closes nothing."""
        assert isinstance(self.redis, RedisCluster)
        await self.redis.aclose()
        await self.redis.nodes_manager.aclose()
        await self.redis.nodes_manager.aclose("startup_nodes")


class _Sentinel(Sentinel):
    """redis-py's discovery, with a failure that says what each sentinel answered (its own
    names the clients with their options)."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        answers = []
        for i, sentinel in enumerate(self.sentinels):
            where = _shown(*_address_of(sentinel))
            try:
                masters: Any = await sentinel.sentinel_masters()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                answers.append(f"{where}: {type(exc).__name__}: {exc}")
                continue
            state = masters.get(service_name) if isinstance(masters, Mapping) else None
            if state and self.check_master_state(state, service_name):
                # The one that answered is asked first next time, as redis-py does.
                self.sentinels[0], self.sentinels[i] = sentinel, self.sentinels[0]
                return state["ip"], int(state["port"])
            answers.append(f"{where}: {'master down' if state else 'no such master'}")
        raise MasterNotFoundError(
            f"no sentinel names a master {quote(service_name)} ({'; '.join(answers)})"
        )


def _address_of(client: redis.asyncio.Redis) -> tuple[str, int]:
    options = client.connection_pool.connection_kwargs
    return str(options["host"]), int(options["port"])


@dataclass(frozen=True, slots=True)
class _SentinelConnected(Connected):
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


Backend = RedisBackend | ClusterBackend | SentinelBackend


def backend(meta: ConnectionFields) -> Backend:
    """The backend identity of a trigger of one server, a cluster or Sentinel: which one is
    the metadata class's (:class:`SentinelFields`, :attr:`ConnectionFields.every_address`)."""
    tls = meta.tls_identity()
    if isinstance(meta, SentinelFields):
        return SentinelBackend(
            meta.endpoints,
            meta.sentinel_master,
            meta.database_index,
            meta.username,
            meta.password,
            meta.sentinel_username,
            meta.sentinel_password,
            tls,
        )
    if meta.every_address:
        return ClusterBackend(meta.endpoints, meta.username, meta.password, tls)
    (host, port), *_ = meta.endpoints
    return RedisBackend(host, port, meta.database_index, meta.username, meta.password, tls)


async def command(
    clients: Clients, on: Backend, where: str, call: Callable[[Connected], Awaitable[T]]
) -> T:
    """``call`` on the shared client of ``on``; a failure is a ScalerError naming ``where``,
    and a connection that failed is closed so that the next poll reconnects (and, behind
    sentinels or in a cluster, finds the master or the slots again)."""
    client = await clients.shared(on, lambda: on.open(clients.timeout), _close)
    try:
        return await call(client)
    except redis.exceptions.AuthenticationError as exc:
        raise SourceResponseError(f"{where}: authentication failed: {exc}") from exc
    except redis.exceptions.TimeoutError as exc:
        await _forget(clients, on, client)
        raise SourceTimeout(f"{where}: no answer within {clients.timeout:g}s ({exc})") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.RedisClusterException) as exc:
        await _forget(clients, on, client)
        raise SourceUnreachable(f"{where}: {exc}") from exc
    except (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError) as exc:
        await _forget(clients, on, client)
        raise SourceUnreachable(f"{where}: {type(exc).__name__}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise SourceResponseError(f"{where}: {type(exc).__name__}: {exc}") from exc


async def _close(client: Connected) -> None:
    await client.aclose()


async def _forget(clients: Clients, on: Backend, failed: Connected) -> None:
    """Close the backend's client so the next poll reconnects, unless a query sharing it
    failed first and already replaced it: closing also fails the commands in flight."""
    if await clients.shared(on, lambda: on.open(clients.timeout), _close) is failed:
        await clients.discard(on)
