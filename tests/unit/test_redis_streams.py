"""redis-streams and the cluster and sentinel variants: parsing, KEDA's choice of measure,
what is shared, the Redis version lag needs."""

from __future__ import annotations

from typing import Any

import pytest

from scalers import redis_streams as streams
from scalers import redis_variants as variants
from scalers.base import Scaler, ScalerKind
from scalers.errors import Problems, SourceResponseError
from scalers.params import TriggerInputs
from scalers.redis import LengthQuery, RedisScaler
from scalers.redis_connection import Backend, ClusterBackend, RedisBackend, SentinelBackend
from scalers.wake import NoWake, wake_of

P = "metadata"
SERVER = {"address": "redis:6379", "stream": "orders"}


def create(
    kind: ScalerKind[Any], metadata: dict[str, str], auth: dict[str, str] | None = None
) -> tuple[Scaler[Any] | None, list[str]]:
    problems = Problems()
    scaler = kind.create(TriggerInputs(metadata, {}, auth or {}), problems)
    return scaler, [str(p) for p in problems]


def built(
    kind: ScalerKind[Any], metadata: dict[str, str], auth: dict[str, str] | None = None
) -> Scaler[Any]:
    scaler, problems = create(kind, metadata, auth)
    assert problems == [] and scaler is not None
    return scaler


def backend_of(scaler: Scaler[Any]) -> Backend:
    query = scaler.query
    assert isinstance(query, LengthQuery | streams.StreamLength | streams.PendingEntries)
    return query.backend


@pytest.mark.parametrize(
    ("metadata", "query", "target", "label"),
    [
        ({}, streams.StreamLength, 5, "length"),
        ({"streamLength": "9", "pendingEntriesCount": "2"}, streams.StreamLength, 9, "length"),
        ({"lagCount": "3"}, streams.StreamLength, 5, "length"),  # no group: length
        ({"consumerGroup": "g"}, streams.PendingEntries, 5, "pending entries"),
        ({"consumerGroup": "g", "pendingEntriesCount": "7"}, streams.PendingEntries, 7, None),
        ({"consumerGroup": "g", "lagCount": "0"}, streams.PendingEntries, 5, None),  # 0: unset
        ({"consumerGroup": "g", "lagCount": "4"}, streams.GroupLag, 4, "lag"),
        ({"consumerGroup": "g", "lagCount": "4", "streamLength": "0"}, streams.GroupLag, 4, None),
    ],
)
def test_the_measure_follows_what_is_set(
    metadata: dict[str, str], query: type, target: float, label: str | None
) -> None:
    """KEDA's ``scaleFactor``: group → pending, group with non-zero lagCount → lag."""
    scaler = built(streams.KIND, {**SERVER, **metadata})
    assert isinstance(scaler.query, query)
    assert scaler.target == target
    if label:
        assert scaler.value_label == label


def test_metric_name_activation_and_value() -> None:
    scaler = built(streams.KIND, {**SERVER, "stream": "jobs:high.prio", "activationLagCount": "2"})
    assert scaler.metric_name == "redis-streams-jobs-high-prio"
    assert scaler.activation_target == 2
    assert scaler.measure(-1) == -1.0  # a lag Redis cannot tell, as KEDA reports it


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"stream": ""}, [f"{P}.stream: is required"]),
        ({"streamLength": "0"}, [f'{P}.streamLength: "0" must be greater than 0']),
        (
            {"consumerGroup": "g", "pendingEntriesCount": "-1"},
            [f'{P}.pendingEntriesCount: "-1" must be greater than 0'],
        ),
        ({"consumerGroup": "g", "lagCount": "-2"}, [f'{P}.lagCount: "-2" must be greater than 0']),
        ({"lagCount": "x"}, [f'{P}.lagCount: "x" is not a number']),
        ({"address": ""}, [f"{P}.address: is required (host:port), or host and port"]),
    ],
)
def test_problems(metadata: dict[str, str], expected: list[str]) -> None:
    assert create(streams.KIND, {**SERVER, **metadata}) == (None, expected)


def test_queries_are_shared_by_what_the_request_depends_on() -> None:
    a = built(streams.KIND, {**SERVER, "streamLength": "3", "activationLagCount": "1"})
    b = built(streams.KIND, {**SERVER, "streamLength": "8"})
    assert a.query == b.query and hash(a.query) == hash(b.query)
    pending = built(streams.KIND, {**SERVER, "consumerGroup": "g"})
    assert pending.query == built(streams.KIND, {**SERVER, "consumerGroup": "g"}).query
    assert pending.query != built(streams.KIND, {**SERVER, "consumerGroup": "h"}).query
    lag = built(streams.KIND, {**SERVER, "consumerGroup": "g", "lagCount": "2"})
    assert lag.query != pending.query
    assert lag.query == built(streams.KIND, {**SERVER, "consumerGroup": "g", "lagCount": "9"}).query


def test_lists_and_streams_of_one_server_share_its_backend() -> None:
    stream = built(streams.KIND, {**SERVER}, {"password": "pw"})
    lists = built(variants.CLUSTER_KIND, {"addresses": "a:1", "listName": "l"}, {"password": "pw"})
    from scalers import redis

    plain = built(redis.KIND, {"address": "redis:6379", "listName": "l"}, {"password": "pw"})
    assert backend_of(stream) == backend_of(plain) == RedisBackend("redis", 6379, 0, None, "pw")
    assert isinstance(backend_of(lists), ClusterBackend)


def test_cluster_uses_every_address() -> None:
    scaler = built(
        variants.CLUSTER_STREAMS_KIND,
        {"hosts": "a,b,c", "ports": "1,2,3", "stream": "s", "databaseIndex": "4"},
        {"username": "u", "password": "pw"},
    )
    assert backend_of(scaler) == ClusterBackend((("a", 1), ("b", 2), ("c", 3)), "u", "pw")
    assert str(backend_of(scaler)) == "redis cluster a:1,b:2,c:3"
    assert create(variants.CLUSTER_KIND, {"addresses": "a:1,b", "listName": "l"}) == (
        None,
        [f'{P}.address: "b" is not host:port'],
    )


def test_sentinel_backend_and_its_credentials() -> None:
    scaler = built(
        variants.SENTINEL_KIND,
        {"addresses": "s1:26379,s2:26379", "listName": "l", "databaseIndex": "2"},
        {
            "sentinelMaster": "mymaster",
            "sentinelUsername": "su",
            "sentinelPassword": "spw",
            "password": "pw",
        },
    )
    assert isinstance(scaler, RedisScaler)
    on = scaler.query.backend
    assert on == SentinelBackend(
        (("s1", 26379), ("s2", 26379)), "mymaster", 2, None, "pw", "su", "spw"
    )
    assert "spw" not in repr(scaler) and "pw" not in repr(on)
    assert str(on) == 'redis sentinel s1:26379,s2:26379 master "mymaster"/2'
    assert create(variants.SENTINEL_STREAMS_KIND, {"addresses": "s:1", "stream": "x"}) == (
        None,
        [f"{P}.sentinelMaster: is required"],
    )


def test_variants_get_no_wake_hints() -> None:
    for kind, metadata in (
        (variants.CLUSTER_KIND, {"addresses": "a:1", "listName": "l"}),
        (variants.SENTINEL_KIND, {"addresses": "a:1", "listName": "l", "sentinelMaster": "m"}),
        (streams.KIND, SERVER),
    ):
        assert isinstance(wake_of(built(kind, metadata)), NoWake)


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ({"redis_version": "7.0.15"}, None),
        ({"redis_version": "8.2.0"}, None),
        ({"redis_version": "6.2.14"}, "lagCount needs Redis 7+"),
        ({"redis_version": "x.1"}, "is not a number"),
        ({}, "could not find the Redis version"),
    ],
)
def test_lag_needs_redis_7(info: dict[str, str], problem: str | None) -> None:
    if problem is None:
        streams.check_lag_version(info, "here")
    else:
        with pytest.raises(SourceResponseError, match=problem):
            streams.check_lag_version(info, "here")
