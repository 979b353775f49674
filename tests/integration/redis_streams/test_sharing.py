"""redis-streams through the real binder and poller: many triggers, one request per distinct
query per poll as the server counts them, and one client for the server's lists and streams."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.keda import parse_scaled_object
from tests.support import triggers
from tests.support.counting import CountingClients
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import counting_poller
from tests.support.triggers import reading

pytestmark = pytest.mark.integration


def bound(name: str, trigger_type: str, metadata: dict[str, str]) -> BoundTrigger:
    (one,) = bind(parse_scaled_object(triggers.so_doc(name, metadata, trigger_type)), Inventory())
    return one


async def test_one_request_per_distinct_query(redis_server: RedisServer) -> None:
    stream, lists = f"s-{uuid.uuid4().hex}", f"l-{uuid.uuid4().hex}"
    with redis_server.client() as client:
        for i in range(6):
            client.xadd(stream, {"n": i})
        for group in ("g", "h"):
            client.xgroup_create(stream, group, "0")
        client.xreadgroup("g", "c", {stream: ">"}, count=2)
        client.rpush(lists, 1, 2, 3)
    address = redis_server.address
    shapes = [  # 4 distinct stream queries, and a list on the same server
        ("redis-streams", {"stream": stream}, 6),
        ("redis-streams", {"stream": stream, "consumerGroup": "g"}, 2),
        ("redis-streams", {"stream": stream, "consumerGroup": "g", "lagCount": "3"}, 4),
        ("redis-streams", {"stream": stream, "consumerGroup": "h", "lagCount": "3"}, 6),
        ("redis", {"listName": lists}, 3),
    ]
    clients = CountingClients()
    poller = counting_poller(clients)
    all_bound = []
    for i in range(15):  # three triggers per shape, each with thresholds of its own
        trigger_type, fields, _ = shapes[i % 5]
        metadata = {"address": address, **fields, "activationLagCount": str(i)}
        b = bound(f"so{i}", trigger_type, metadata)
        poller.set_triggers(b.so, [b])
        all_bound.append(b)
    assert poller.query_count == 5
    queries = {b.scaler.query for b in all_bound}
    commands = ("xlen", "xpending", "xinfo|groups", "info", "evalsha")
    try:
        await asyncio.gather(*(poller.poll(q) for q in queries))  # warm up: loads the script
        before = {c: redis_server.command_calls(c) for c in commands}
        await asyncio.gather(*(poller.poll(q) for q in queries))
        after = {c: redis_server.command_calls(c) for c in commands}
        # INFO: the two lag queries' version checks, plus the admin client's own INFO
        # commandstats calls that read these counters.
        assert {c: after[c] - before[c] for c in commands} == {
            "xlen": 1,
            "xpending": 1,
            "xinfo|groups": 2,
            "info": 2 + len(commands),
            "evalsha": 1,
        }
        assert len(clients.opened) == 1
        assert [reading(poller.store, b).value for b in all_bound] == [s[2] for s in shapes] * 3
    finally:
        await clients.aclose()
