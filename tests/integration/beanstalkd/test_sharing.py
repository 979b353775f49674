"""Many beanstalkd triggers, few commands: one connection per server, one stats-tube per tube.

Commands are counted by beanstalkd itself (``stats`` → ``cmd-stats-tube``), connections by
the server (``current-connections``) and at the ``Clients.shared`` seam.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.beanstalkd import BeanstalkdServer
from tests.support.beanstalkd import BeanstalkdProcess
from tests.support.counting import CountingClients
from tests.support.triggers import scaled_object

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _object(name: str, metadata: dict[str, str]) -> dict[str, Any]:
    trigger = {"type": "beanstalkd", "metadata": metadata}
    return scaled_object(name, "default", trigger, pollingInterval=5)


async def test_one_connection_and_one_stats_tube_per_tube_for_many_triggers(
    beanstalkd: BeanstalkdProcess, own_beanstalkd: BeanstalkdProcess, tube: str
) -> None:
    states = [(3, 2), (7, 0), (0, 5)]  # (ready, delayed) of three tubes on the shared server
    tubes = [f"{tube}-{i}" for i in range(3)]
    with beanstalkd.client() as producer:
        for name, (ready, delayed) in zip(tubes, states, strict=True):
            producer.put(name, ready)
            producer.put(name, delayed, delay=3600)
    with own_beanstalkd.client() as producer:
        producer.put(tubes[0], 9)

    store, clients = MetricStore(), CountingClients()
    poller = Poller(store, clients, Telemetry())
    bound: dict[str, BoundTrigger] = {}
    # 24 ScaledObjects: each tube read with and without includeDelayed, with other targets.
    for i in range(24):
        meta = {"server": beanstalkd.address, "tube": tubes[i % 3], "value": str(1 + i % 5)}
        if i % 2:
            meta["includeDelayed"] = "true"
        so = parse_scaled_object(_object(f"so{i}", meta))
        (bound[f"so{i}"],) = bind(so, Inventory())
        poller.set_triggers(so.ref, [bound[f"so{i}"]])
    # A 25th on the first tube's name at the other server: a query and a connection of its own.
    other = parse_scaled_object(
        _object("other", {"server": own_beanstalkd.address, "tube": tubes[0], "value": "1"})
    )
    (bound["other"],) = bind(other, Inventory())
    poller.set_triggers(other.ref, [bound["other"]])
    assert poller.query_count == 4

    before = beanstalkd.commands("stats-tube"), own_beanstalkd.commands("stats-tube")
    queries = {b.scaler.query for b in bound.values()}
    try:
        await asyncio.gather(*(poller.poll(q) for q in queries))  # concurrent, on one connection
        assert beanstalkd.connections() == 1
        assert own_beanstalkd.connections() == 1
        await asyncio.gather(*(poller.poll(q) for q in queries))  # and again: nothing new opened
    finally:
        await clients.aclose()
    after = beanstalkd.commands("stats-tube"), own_beanstalkd.commands("stats-tube")

    assert (after[0] - before[0], after[1] - before[1]) == (6, 2)
    assert sorted(map(str, clients.opened)) == sorted(
        str(BeanstalkdServer("127.0.0.1", s.port)) for s in (beanstalkd, own_beanstalkd)
    )
    for i in range(24):
        ready, delayed = states[i % 3]
        b = bound[f"so{i}"]
        expected = ready + delayed if i % 2 else ready
        assert store.readings(b.so)[b.metric_name.lower()].value == expected
    assert store.readings(other.ref)[bound["other"].metric_name.lower()].value == 9
