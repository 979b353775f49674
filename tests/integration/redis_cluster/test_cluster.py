"""redis-cluster and redis-cluster-streams against a real 3-master Redis Cluster: keys on every
master → the values KEDA computes, failures as errors, one request per distinct query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers import redis_variants
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceUnreachable
from tests.integration.redis_cluster.conftest import PASSWORD
from tests.support import triggers
from tests.support.counting import CountingClients
from tests.support.redis_topologies import (
    ClusterTopology,
    counting_poller,
    scaler_of,
)
from tests.support.servers import free_ports
from tests.support.triggers import poll, reading

pytestmark = pytest.mark.integration
AUTH = {"password": PASSWORD}
LISTS, STREAMS = redis_variants.CLUSTER_KIND, redis_variants.CLUSTER_STREAMS_KIND


def keys_on_every_master(cluster: ClusterTopology, prefix: str) -> Iterator[str]:
    """One key per master, so a table's rows cover every node."""
    seen: set[int] = set()
    i = 0
    while len(seen) < len(cluster.nodes):
        key = f"{prefix}-{i}"
        port = cluster.node_of(key).port
        if port not in seen:
            seen.add(port)
            yield key
        i += 1


Setup = Callable[[redis.RedisCluster, str], Any]


def pending(n: int, read: int) -> Setup:
    def make(client: redis.RedisCluster, stream: str) -> None:
        for i in range(n):
            client.xadd(stream, {"n": i})
        client.xgroup_create(stream, "g", "0")
        if read:
            client.xreadgroup("g", "c", {stream: ">"}, count=read)

    return make


FIDELITY: list[tuple[str, Any, Setup, dict[str, str], float, bool]] = [
    ("list", LISTS, lambda c, k: c.rpush(k, *range(12)), {"listName": "{k}"}, 12, True),
    ("set", LISTS, lambda c, k: c.sadd(k, *range(7)), {"listName": "{k}"}, 7, True),
    ("hash", LISTS, lambda c, k: c.hset(k, mapping={"a": 1, "b": 2}), {"listName": "{k}"}, 2, True),
    ("missing-list", LISTS, lambda c, k: None, {"listName": "{k}"}, 0, False),
    (
        "list-at-activation",
        LISTS,
        lambda c, k: c.rpush(k, 1, 2),
        {"listName": "{k}", "activationListLength": "2"},
        2,
        False,
    ),
    ("stream-length", STREAMS, pending(6, 0), {"stream": "{k}"}, 6, True),
    ("stream-pending", STREAMS, pending(6, 4), {"stream": "{k}", "consumerGroup": "g"}, 4, True),
    (
        "stream-lag",
        STREAMS,
        pending(6, 4),
        {"stream": "{k}", "consumerGroup": "g", "lagCount": "1"},
        2,
        True,
    ),
    (
        "stream-lag-missing-group",
        STREAMS,
        pending(6, 0),
        {"stream": "{k}", "consumerGroup": "other", "lagCount": "1"},
        6,
        True,
    ),
]


@pytest.mark.parametrize(
    ("kind", "setup", "metadata", "value", "active"),
    [pytest.param(*row[1:], id=row[0]) for row in FIDELITY],
)
async def test_fidelity_on_every_master(
    cluster: ClusterTopology,
    kind: Any,
    setup: Setup,
    metadata: dict[str, str],
    value: float,
    active: bool,
) -> None:
    clients = Clients(timeout=5)
    try:
        with cluster.client() as client:
            for key in keys_on_every_master(cluster, uuid.uuid4().hex):
                setup(client, key)
                fields = {k: v.replace("{k}", key) for k, v in metadata.items()}
                scaler = scaler_of(kind, {"addresses": cluster.addresses, **fields}, AUTH)
                polled = await poll(scaler, clients)
                assert (polled.value, polled.active) == (value, active), key
    finally:
        await clients.aclose()


async def test_one_startup_node_finds_the_others(cluster: ClusterTopology) -> None:
    last = cluster.nodes[-1].address
    with cluster.client() as client:
        for n, key in enumerate(keys_on_every_master(cluster, uuid.uuid4().hex), start=1):
            client.rpush(key, *range(n))
            scaler = scaler_of(LISTS, {"addresses": last, "listName": key}, AUTH)
            assert (await poll(scaler)).value == n


async def test_wrong_password_is_an_error_without_it(cluster: ClusterTopology) -> None:
    for kind, fields in ((LISTS, {"listName": "l"}), (STREAMS, {"stream": "s"})):
        scaler = scaler_of(
            kind, {"addresses": cluster.addresses, **fields}, {"password": "wrong-" + PASSWORD}
        )
        with pytest.raises((SourceResponseError, SourceUnreachable)) as caught:
            await poll(scaler)
        assert "wrong-" not in str(caught.value) and PASSWORD not in str(caught.value)


async def test_no_node_answers(cluster: ClusterTopology) -> None:
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    scaler = scaler_of(LISTS, {"addresses": addresses, "listName": "l"}, AUTH)
    with pytest.raises(SourceUnreachable, match=r"cluster 127\.0\.0\.1"):
        await poll(scaler)


async def test_a_master_down_is_an_error_not_a_zero(fresh_cluster: ClusterTopology) -> None:
    """The key's master is gone (no replica to take over): every poll fails, including the
    ones whose fresh client maps the slots again, until it is back."""
    key = f"l-{uuid.uuid4().hex}"
    with fresh_cluster.client() as client:
        client.rpush(key, 1, 2, 3)
    scaler = scaler_of(LISTS, {"addresses": fresh_cluster.addresses, "listName": key}, AUTH)
    clients = Clients(timeout=2)
    try:
        assert (await poll(scaler, clients)).value == 3
        fresh_cluster.node_of(key).stop()
        for _ in range(2):
            with pytest.raises((SourceUnreachable, SourceResponseError)) as caught:
                await poll(scaler, clients)
            assert PASSWORD not in str(caught.value)
    finally:
        await clients.aclose()


def bound(name: str, trigger_type: str, metadata: dict[str, str]) -> BoundTrigger:
    """Bound as the service binds it; the password in the metadata, where KEDA reads it first."""
    doc = triggers.so_doc(name, {**metadata, **AUTH}, trigger_type)
    (one,) = bind(parse_scaled_object(doc), Inventory())
    return one


async def test_one_request_per_distinct_query_counted_by_the_nodes(
    cluster: ClusterTopology,
) -> None:
    """12 triggers, 4 distinct queries (2 lists, a stream's length, a group's pending)
    spread over the masters: each poll is one request per query, over one client."""
    lists = list(keys_on_every_master(cluster, uuid.uuid4().hex))[:2]
    stream = f"s-{uuid.uuid4().hex}"
    with cluster.client() as client:
        for n, key in enumerate(lists, start=1):
            client.rpush(key, *range(n))
        pending(5, 2)(client, stream)
    kinds_and_fields = [
        ("redis-cluster", {"listName": lists[0]}),
        ("redis-cluster", {"listName": lists[1]}),
        ("redis-cluster-streams", {"stream": stream}),
        ("redis-cluster-streams", {"stream": stream, "consumerGroup": "g"}),
    ]
    clients = CountingClients()
    poller = counting_poller(clients)
    all_bound = []
    for i in range(12):
        trigger_type, fields = kinds_and_fields[i % 4]
        metadata = {"addresses": cluster.addresses, **fields, "activationLagCount": str(i)}
        if trigger_type == "redis-cluster":
            metadata = {"addresses": cluster.addresses, **fields, "listLength": str(i + 1)}
        b = bound(f"so{i}", trigger_type, metadata)
        poller.set_triggers(b.so, [b])
        all_bound.append(b)
    assert poller.query_count == 4
    queries = {b.scaler.query for b in all_bound}
    try:
        # Concurrent, as the poller's loops run: the first ones also share one opening.
        await asyncio.gather(*(poller.poll(q) for q in queries))  # warm up: slots, script
        before = {c: cluster.command_calls(c) for c in ("evalsha", "xlen", "xpending")}
        await asyncio.gather(*(poller.poll(q) for q in queries))
        after = {c: cluster.command_calls(c) for c in before}
        assert {c: after[c] - before[c] for c in before} == {
            "evalsha": 2,
            "xlen": 1,
            "xpending": 1,
        }
        assert len(clients.opened) == 1  # lists and streams of one cluster: one client
        values = [reading(poller.store, b).value for b in all_bound]
        assert values == [[1, 2, 5, 2][i % 4] for i in range(12)]
    finally:
        await poller.clients.aclose()
