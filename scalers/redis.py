"""``redis``: the length of a Redis list, set, sorted set or hash (KEDA's "Redis Lists").

The cluster and Sentinel variants (:mod:`scalers.redis_variants`) are this trigger on another
backend; what they share with the stream triggers is in :mod:`scalers.redis_params` and
:mod:`scalers.redis_connection`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import TriggerMetadata, param
from scalers.redis_connection import CLIENT_NAME as CLIENT_NAME
from scalers.redis_connection import Backend, Connected, RedisBackend, backend, command
from scalers.redis_params import ConnectionFields
from scalers.redis_params import join_host_port as join_host_port
from scalers.redis_params import split_address as split_address
from scalers.wake import NoWake, Wake

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
class ListFields(TriggerMetadata):
    """KEDA's ``redisMetadata`` without its connection info, which every variant shares."""

    list_name: str = param("listName", doc="the key: a list, set, sorted set or hash")
    list_length: int = param("listLength", default="5", gt=0)
    activation_list_length: int = param("activationListLength", default="0")


@dataclass(frozen=True)
class Metadata(ListFields, ConnectionFields):
    """One server's: the first address is the one used."""


@dataclass(frozen=True, slots=True)
class LengthQuery:
    """One script run: the length of one key on one backend, shared by every trigger on it."""

    backend: Backend
    key: str

    async def run(self, clients: Clients) -> int:
        async def length(client: Connected) -> object:
            return await client.script(LENGTH_SCRIPT)(keys=[self.key])

        answer = await command(clients, self.backend, self._where(), length)
        if isinstance(answer, bytes):
            kind = answer.decode(errors="replace")
            raise SourceResponseError(
                f"{self._where()}: the key is a {kind}; expected a list, set, sorted set or hash"
            )
        if not isinstance(answer, int):
            raise SourceResponseError(f"{self._where()}: unexpected answer {answer!r}")
        return answer

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

    def wake(self) -> Wake | NoWake:
        """Keyspace notifications of the key, when the server sends them; one server only."""
        from scalers.wake_redis import RedisWatch  # it builds on this module's connections

        on = self.query.backend
        if not isinstance(on, RedisBackend):
            return NoWake(NO_VARIANT_WAKE)
        return Wake(RedisWatch.of(on), (on.db, self.query.key))


NO_VARIANT_WAKE = (
    "wake hints watch one Redis server; behind a cluster or sentinels this trigger is polled only"
)


def build(meta: Metadata) -> RedisScaler:
    """A lists trigger of any topology: the metadata class says which."""
    return RedisScaler(
        meta=meta,
        query=LengthQuery(backend(meta), meta.list_name),
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
