"""``redis-streams``: a Redis stream's length, a consumer group's pending entries, or its lag.

KEDA picks the measure from which parameters are set, not from a mode parameter:

- no ``consumerGroup``: ``XLEN``, target ``streamLength``;
- ``consumerGroup`` and a non-zero ``lagCount``: the group's ``lag`` of ``XINFO GROUPS``
  (Redis 7+, checked with ``INFO`` on each poll as KEDA does), target ``lagCount``; a stream
  that does not exist yet has lag 0, a group that does not exist yet has the stream's
  length as its lag (its consumers are what scales from zero), and a lag Redis cannot tell
  (``nil`` after deletions inside the group's range) is -1, as go-redis reads it;
- ``consumerGroup`` alone: ``XPENDING``'s count (delivered, not acknowledged), target
  ``pendingEntriesCount``; a missing stream or group is an error (``NOGROUP``).

Every mode is active above ``activationLagCount``. Equal queries are shared: ``XLEN`` per
stream, ``XPENDING`` and the lag per stream and group. Where we differ: a target of the mode
in use must be greater than 0 (KEDA passes 0 or less on to an HPA that refuses it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import TriggerMetadata, param
from scalers.redis_connection import Backend, Connected, backend, command
from scalers.redis_params import ConnectionFields
from scalers.wake import NoWake

LAG_NEEDS_MAJOR = 7
"""``XINFO GROUPS`` has a ``lag`` since Redis 7.0."""


@dataclass(frozen=True)
class StreamFields(TriggerMetadata):
    """KEDA's ``redisStreamsMetadata`` without its connection info."""

    stream: str = param("stream")
    consumer_group: str | None = param(
        "consumerGroup", optional=True, doc="pending entries, or lag with lagCount"
    )
    pending_entries_count: int = param(
        "pendingEntriesCount", default="5", doc="target with consumerGroup, without lagCount"
    )
    stream_length: int = param("streamLength", default="5", doc="target without consumerGroup")
    lag_count: int | None = param(
        "lagCount", optional=True, doc="target with consumerGroup: the group's lag (Redis 7+)"
    )
    activation_lag_count: int = param("activationLagCount", default="0")

    @property
    def mode(self) -> str:
        """KEDA's ``scaleFactor``: ``length``, ``pending`` or ``lag``."""
        if not self.consumer_group:
            return "length"
        return "lag" if self.lag_count else "pending"

    @property
    def target(self) -> int:
        by_mode = {
            "length": self.stream_length,
            "pending": self.pending_entries_count,
            "lag": self.lag_count or 0,
        }
        return by_mode[self.mode]

    @property
    def target_name(self) -> str:
        return {"length": "streamLength", "pending": "pendingEntriesCount", "lag": "lagCount"}[
            self.mode
        ]

    def check(self) -> Iterator[tuple[str, str]]:
        yield from super().check()
        if self.target <= 0:
            yield self.target_name, f"{quote(str(self.target))} must be greater than 0"


@dataclass(frozen=True)
class Metadata(StreamFields, ConnectionFields):
    """One server's: the first address is the one used."""


def _where(on: Backend, stream: str, group: str | None = None) -> str:
    group_part = f" group {quote(group)}" if group is not None else ""
    return f"{on} stream {quote(stream)}{group_part}"


@dataclass(frozen=True, slots=True)
class StreamLength:
    """``XLEN``: 0 for a stream that does not exist."""

    backend: Backend
    stream: str

    async def run(self, clients: Clients) -> int:
        async def xlen(client: Connected) -> Any:
            return await client.redis.xlen(self.stream)

        return _count(await command(clients, self.backend, self._where(), xlen), self._where())

    def _where(self) -> str:
        return _where(self.backend, self.stream)

    def describe(self) -> str:
        return f"XLEN {quote(self.stream)} at {self.backend}"


@dataclass(frozen=True, slots=True)
class PendingEntries:
    """``XPENDING`` (summary form): entries delivered to the group and not yet acknowledged."""

    backend: Backend
    stream: str
    group: str

    async def run(self, clients: Clients) -> int:
        async def xpending(client: Connected) -> Any:
            return await client.redis.xpending(self.stream, self.group)

        answer = await command(clients, self.backend, self._where(), xpending)
        if not isinstance(answer, Mapping):
            raise SourceResponseError(f"{self._where()}: unexpected answer {answer!r}")
        return _count(answer.get("pending"), self._where())

    def _where(self) -> str:
        return _where(self.backend, self.stream, self.group)

    def describe(self) -> str:
        return f"XPENDING {quote(self.stream)} {quote(self.group)} at {self.backend}"


@dataclass(frozen=True, slots=True)
class GroupLag:
    """KEDA's lag: ``INFO server`` (Redis 7+), ``XINFO GROUPS``, and ``XLEN`` when the group
    is not there yet; on the node that holds the stream."""

    backend: Backend
    stream: str
    group: str

    async def run(self, clients: Clients) -> int:
        where = self._where()

        async def lag(client: Connected) -> int:
            info = await _server_info(client, self.stream)
            check_lag_version(info, where)
            try:
                groups = await client.redis.xinfo_groups(self.stream)
            except redis.exceptions.ResponseError as exc:
                if str(exc) == "no such key":  # redis-py drops the "ERR " KEDA compares
                    return 0
                raise
            for group in groups if isinstance(groups, Sequence) else ():
                if _text(group.get("name")) == self.group:
                    found = group.get("lag")
                    return -1 if found is None else _count(found, where)
            return _count(await client.redis.xlen(self.stream), where)

        return await command(clients, self.backend, where, lag)

    def _where(self) -> str:
        return _where(self.backend, self.stream, self.group)

    def describe(self) -> str:
        return f"XINFO GROUPS {quote(self.stream)} lag of {quote(self.group)} at {self.backend}"


async def _server_info(client: Connected, key: str) -> Mapping[str, Any]:
    """``INFO server`` of the server that holds ``key`` (in a cluster, its node)."""
    from redis.asyncio.cluster import RedisCluster

    if isinstance(client.redis, RedisCluster):
        await client.redis.initialize()  # the slots map, on a client's first command
        node = client.redis.get_node_from_key(key)
        answer = await client.redis.info("server", target_nodes=node)
    else:
        answer = await client.redis.info("server")
    if isinstance(answer, Mapping) and "redis_version" not in answer and len(answer) == 1:
        answer = next(iter(answer.values()))  # one node's answer, keyed by the node
    return answer if isinstance(answer, Mapping) else {}


def check_lag_version(info: Mapping[str, Any], where: str) -> None:
    """KEDA's check: the major of ``redis_version`` must be at least 7."""
    version = info.get("redis_version")
    if version is None:
        raise SourceResponseError(f"{where}: could not find the Redis version (INFO server)")
    major = str(version).split(".")[0]
    if not major.isdigit():
        raise SourceResponseError(f"{where}: Redis version {quote(str(version))} is not a number")
    if int(major) < LAG_NEEDS_MAJOR:
        raise SourceResponseError(
            f"{where}: lagCount needs Redis {LAG_NEEDS_MAJOR}+ (XINFO GROUPS lag); "
            f"the server is {version}: use pendingEntriesCount instead"
        )


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _count(answer: object, where: str) -> int:
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise SourceResponseError(f"{where}: unexpected answer {answer!r}")
    return answer


StreamQuery = StreamLength | PendingEntries | GroupLag


@dataclass(frozen=True, kw_only=True)
class RedisStreamsScaler(Scaler[int]):
    meta: StreamFields
    query: StreamQuery

    def measure(self, answer: int) -> float:
        return float(answer)

    def wake(self) -> NoWake:
        """Not yet: a stream's keyspace event (``xadd``, flag ``t``) could hint as lists do."""
        return NoWake(NO_STREAM_WAKE)


NO_STREAM_WAKE = "wake hints do not watch Redis streams yet; polled only"


def query_of(meta: StreamFields, on: Backend) -> StreamQuery:
    if meta.mode == "length" or not meta.consumer_group:
        return StreamLength(on, meta.stream)
    if meta.mode == "lag":
        return GroupLag(on, meta.stream, meta.consumer_group)
    return PendingEntries(on, meta.stream, meta.consumer_group)


def build(meta: Metadata) -> RedisStreamsScaler:
    """A streams trigger of any topology: the metadata class says which."""
    return RedisStreamsScaler(
        meta=meta,
        query=query_of(meta, backend(meta)),
        metric_name=normalize(f"redis-streams-{meta.stream}"),
        target=float(meta.target),
        activation_target=float(meta.activation_lag_count),
        value_label={"length": "length", "pending": "pending entries", "lag": "lag"}[meta.mode],
    )


KIND = ScalerKind(
    type_name="redis-streams",
    keda_name="redisStreamsScaler",
    metadata=Metadata,
    build=build,
    summary="A Redis stream's length (XLEN), or a consumer group's pending entries or lag.",
    example=Example(
        {
            "address": "redis.default.svc:6379",
            "stream": "orders",
            "consumerGroup": "workers",
            "pendingEntriesCount": "10",
        },
        {"password": "redis-password"},
        source="address",
    ),
)
