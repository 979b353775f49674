"""``redis-cluster``, ``redis-sentinel`` and their ``-streams``: the list and stream triggers
on a cluster or behind Sentinel, as KEDA builds them from the same scalers with another client.

In a cluster every address is a startup node, the key's slot says which master answers, and
``databaseIndex`` is not used (KEDA's ``ClusterClient`` has no database). Behind Sentinel every
address is a sentinel, asked for ``sentinelMaster``'s address whenever a connection opens, so
a failover is followed at the next poll; ``sentinelUsername`` and ``sentinelPassword``
authenticate to the sentinels, ``username`` and ``password`` to the master. TLS, when on,
is used for every connection, sentinels included, as go-redis does. A trigger here gets no
wake hints (:data:`scalers.redis.NO_VARIANT_WAKE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from scalers import redis as lists
from scalers import redis_streams as streams
from scalers.base import Example, ScalerKind
from scalers.redis_params import SentinelFields


@dataclass(frozen=True)
class ClusterListMetadata(lists.Metadata):
    every_address: ClassVar[bool] = True


@dataclass(frozen=True)
class SentinelListMetadata(lists.Metadata, SentinelFields):
    every_address: ClassVar[bool] = True


@dataclass(frozen=True)
class ClusterStreamMetadata(streams.Metadata):
    every_address: ClassVar[bool] = True


@dataclass(frozen=True)
class SentinelStreamMetadata(streams.Metadata, SentinelFields):
    every_address: ClassVar[bool] = True


_CLUSTER = "redis-0.redis.default.svc:6379,redis-1.redis.default.svc:6379"
_SENTINELS = "sentinel-0.default.svc:26379,sentinel-1.default.svc:26379"
_LIST = {"listName": "jobs", "listLength": "5"}
_STREAM = {"stream": "orders", "consumerGroup": "workers", "lagCount": "10"}

CLUSTER_KIND = ScalerKind(
    type_name="redis-cluster",
    keda_name="redisScaler",
    metadata=ClusterListMetadata,
    build=lists.build,
    summary="Length of a list (or set, sorted set, hash) in a Redis Cluster.",
    example=Example({"addresses": _CLUSTER, **_LIST}, {"password": "p"}, source="addresses"),
)
SENTINEL_KIND = ScalerKind(
    type_name="redis-sentinel",
    keda_name="redisScaler",
    metadata=SentinelListMetadata,
    build=lists.build,
    summary="Length of a list (or set, sorted set, hash) on the master Redis Sentinel names.",
    example=Example(
        {"addresses": _SENTINELS, "sentinelMaster": "mymaster", **_LIST},
        {"password": "p", "sentinelPassword": "sp"},
        source="addresses",
    ),
)
CLUSTER_STREAMS_KIND = ScalerKind(
    type_name="redis-cluster-streams",
    keda_name="redisStreamsScaler",
    metadata=ClusterStreamMetadata,
    build=streams.build,
    summary="A stream's length, or a consumer group's pending entries or lag, in a Redis Cluster.",
    example=Example({"addresses": _CLUSTER, **_STREAM}, {"password": "p"}, source="addresses"),
)
SENTINEL_STREAMS_KIND = ScalerKind(
    type_name="redis-sentinel-streams",
    keda_name="redisStreamsScaler",
    metadata=SentinelStreamMetadata,
    build=streams.build,
    summary=(
        "A stream's length, or a consumer group's pending entries or lag, on the master "
        "Redis Sentinel names."
    ),
    example=Example(
        {"addresses": _SENTINELS, "sentinelMaster": "mymaster", **_STREAM},
        {"password": "p", "sentinelPassword": "sp"},
        source="addresses",
    ),
)
KINDS = (CLUSTER_KIND, SENTINEL_KIND, CLUSTER_STREAMS_KIND, SENTINEL_STREAMS_KIND)
