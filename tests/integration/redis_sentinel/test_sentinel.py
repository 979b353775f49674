"""redis-sentinel and redis-sentinel-streams against a real master, replica and sentinel: the
values KEDA computes on the master the sentinel names, failures as errors, one request per
distinct query, and a failover followed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers import redis_variants
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceUnreachable
from tests.integration.redis_sentinel.conftest import PASSWORD, SENTINEL_PASSWORD
from tests.support import triggers
from tests.support.counting import CountingClients
from tests.support.redis_topologies import (
    MASTER_NAME,
    SentinelTopology,
    counting_poller,
    scaler_of,
    wait_for,
)
from tests.support.servers import free_port
from tests.support.triggers import poll, reading

pytestmark = pytest.mark.integration
LISTS, STREAMS = redis_variants.SENTINEL_KIND, redis_variants.SENTINEL_STREAMS_KIND
AUTH = {"password": PASSWORD, "sentinelPassword": SENTINEL_PASSWORD}


def metadata(topology: SentinelTopology, **fields: str) -> dict[str, str]:
    assert topology.sentinel is not None
    return {"addresses": topology.sentinel.address, "sentinelMaster": MASTER_NAME, **fields}


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


async def test_fidelity(sentinel: SentinelTopology) -> None:
    lists, stream = key(), key()
    with sentinel.working_master().client() as client:
        client.rpush(lists, *range(9))
        client.zadd(f"{lists}-z", {"a": 1, "b": 2})
        for i in range(6):
            client.xadd(stream, {"n": i})
        client.xgroup_create(stream, "g", "0")
        ((_, delivered),) = client.xreadgroup("g", "c", {stream: ">"}, count=4)
        client.xack(stream, "g", delivered[0][0])  # 4 delivered, 3 pending, lag 2
    rows: list[tuple[Any, dict[str, str], float, bool]] = [
        (LISTS, {"listName": lists}, 9, True),
        (LISTS, {"listName": f"{lists}-z", "activationListLength": "2"}, 2, False),
        (LISTS, {"listName": key()}, 0, False),
        (STREAMS, {"stream": stream}, 6, True),
        (STREAMS, {"stream": stream, "consumerGroup": "g"}, 3, True),
        (STREAMS, {"stream": stream, "consumerGroup": "g", "lagCount": "1"}, 2, True),
        (STREAMS, {"stream": stream, "consumerGroup": "new", "lagCount": "1"}, 6, True),
    ]
    clients = Clients(timeout=5)
    try:
        for kind, fields, value, active in rows:
            polled = await poll(scaler_of(kind, metadata(sentinel, **fields), AUTH), clients)
            assert (polled.value, polled.active) == (value, active), fields
    finally:
        await clients.aclose()


async def test_database_index(sentinel: SentinelTopology) -> None:
    name = key()
    with sentinel.working_master().client(db=3) as client:
        client.rpush(name, 1, 2)
    fields = metadata(sentinel, listName=name, databaseIndex="3")
    assert (await poll(scaler_of(LISTS, fields, AUTH))).value == 2


async def test_an_unreachable_sentinel_is_skipped(sentinel: SentinelTopology) -> None:
    name = key()
    with sentinel.working_master().client() as client:
        client.rpush(name, 1)
    assert sentinel.sentinel is not None
    fields = metadata(sentinel, listName=name)
    fields["addresses"] = f"127.0.0.1:{free_port()},{sentinel.sentinel.address}"
    assert (await poll(scaler_of(LISTS, fields, AUTH))).value == 1


@pytest.mark.parametrize(
    ("change", "auth", "error", "match"),
    [
        ({}, {"password": "wrong"}, SourceResponseError, "authentication failed"),
        ({}, {"sentinelPassword": "wrong"}, SourceUnreachable, "AuthenticationError"),
        ({"sentinelMaster": "other"}, {}, SourceUnreachable, "no such master"),
        ({"addresses": "closed"}, {}, SourceUnreachable, "ConnectionError"),
    ],
)
async def test_failures_are_errors_without_passwords(
    sentinel: SentinelTopology,
    change: dict[str, str],
    auth: dict[str, str],
    error: type[Exception],
    match: str,
) -> None:
    fields = {**metadata(sentinel, listName="l"), **change}
    if fields["addresses"] == "closed":
        fields["addresses"] = f"127.0.0.1:{free_port()}"
    for kind, more in ((LISTS, {}), (STREAMS, {"stream": "s", "consumerGroup": "g"})):
        scaler = scaler_of(kind, {**fields, **more}, {**AUTH, **auth})
        with pytest.raises(error, match=match) as caught:
            await poll(scaler)
        for secret in (PASSWORD, SENTINEL_PASSWORD, "wrong"):
            assert secret not in str(caught.value)


def bound(name: str, trigger_type: str, fields: dict[str, str]) -> BoundTrigger:
    """Bound as the service binds it; the passwords in the metadata, where KEDA reads them
    first."""
    doc = triggers.so_doc(name, {**fields, **AUTH}, trigger_type)
    (one,) = bind(parse_scaled_object(doc), Inventory())
    return one


async def test_one_request_per_distinct_query_counted_by_the_master(
    sentinel: SentinelTopology,
) -> None:
    name, stream = key(), key()
    master = sentinel.working_master()
    with master.client() as client:
        client.rpush(name, *range(4))
        client.xadd(stream, {"n": 1})
    clients = CountingClients()
    poller = counting_poller(clients)
    all_bound = []
    for i in range(9):
        if i % 3 == 2:
            b = bound(f"so{i}", "redis-sentinel-streams", metadata(sentinel, stream=stream))
        else:
            fields = metadata(sentinel, listName=name, listLength=str(i + 1))
            b = bound(f"so{i}", "redis-sentinel", fields)
        poller.set_triggers(b.so, [b])
        all_bound.append(b)
    assert poller.query_count == 2
    queries = {b.scaler.query for b in all_bound}
    try:
        await asyncio.gather(*(poller.poll(q) for q in queries))  # warm up: loads the script
        before = master.command_calls("evalsha"), master.command_calls("xlen")
        for _ in range(3):
            await asyncio.gather(*(poller.poll(q) for q in queries))
        after = master.command_calls("evalsha"), master.command_calls("xlen")
        assert (after[0] - before[0], after[1] - before[1]) == (3, 3)
        assert len(clients.opened) == 1  # lists and streams behind one sentinel: one client
        assert [reading(poller.store, b).value for b in all_bound] == [4, 4, 1] * 3
    finally:
        await poller.clients.aclose()


async def test_a_failover_is_followed(fresh_sentinel: SentinelTopology) -> None:
    """The master stops: polls fail (never a zero) until the sentinel promotes the replica,
    then the next poll reads the new master."""
    name = key()
    old = fresh_sentinel.working_master()
    with old.client() as client:
        client.rpush(name, *range(5))
        client.wait(1, 5000)  # on the replica before the master goes
    scaler = scaler_of(LISTS, metadata(fresh_sentinel, listName=name), AUTH)
    clients = Clients(timeout=2)
    try:
        assert (await poll(scaler, clients)).value == 5
        old.stop()
        with pytest.raises((SourceUnreachable, SourceResponseError)):
            await poll(scaler, clients)
        wait_for(
            "the sentinel to promote the replica",
            lambda: fresh_sentinel.current_master() not in (None, old),
        )
        new = fresh_sentinel.working_master()
        assert (await poll(scaler, clients)).value == 5
        with new.client() as client:
            client.rpush(name, 6, 7)
        assert (await poll(scaler, clients)).value == 7
    finally:
        await clients.aclose()
