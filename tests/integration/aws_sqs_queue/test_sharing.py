"""Many aws-sqs-queue triggers, few requests: one client per identity, one request per queue.

Requests are counted by moto itself (its request recorder, tests/support/moto.py); clients
are counted at the ``Clients.shared`` seam, the only place a scaler may open one.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from tests.integration.aws_sqs_queue.helpers import keys_authentication, metadata, scaled_object
from tests.support import counting
from tests.support.moto import MotoServer, make_queue

pytestmark = pytest.mark.integration

T = TypeVar("T")
FLAGS = [
    ({}, "visible + in flight"),
    ({"scaleOnInFlight": "false"}, "visible"),
    ({"scaleOnDelayed": "true"}, "all three"),
    ({"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, "visible + delayed"),
]


class CountingClients(counting.CountingClients):
    @property
    def sqs_clients(self) -> int:
        return sum(1 for key in self.opened if isinstance(key, tuple) and key[:2] == ("aws", "sqs"))


async def test_one_client_and_one_request_per_queue_for_many_triggers(
    moto: MotoServer, queue_name: str
) -> None:
    states = [(7, 4, 3), (2, 0, 0), (0, 1, 5)]
    urls = [
        await make_queue(moto, f"{queue_name}-{i}", visible=v, in_flight=f, delayed=d)
        for i, (v, f, d) in enumerate(states)
    ]
    inventory = Inventory()
    other_keys = {"awsAccessKeyID": "AKIAANOTHERIDENTITY1", "awsSecretAccessKey": "another"}
    for doc in [
        *keys_authentication("sqs-keys", "keys"),
        *keys_authentication("other-keys", "other", other_keys),
    ]:
        inventory.add(doc, "test")
    store, clients = MetricStore(), CountingClients()
    poller = Poller(store, clients, Telemetry())
    # 24 ScaledObjects: every queue read by every combination of flags, twice.
    bound: dict[str, BoundTrigger] = {}
    for i in range(24):
        url, (flags, _) = urls[i % 3], FLAGS[i % 4]
        so = parse_scaled_object(scaled_object(f"so{i}", metadata(moto, url, **flags)))
        (bound[f"so{i}"],) = bind(so, inventory)
        poller.set_triggers(so.ref, [bound[f"so{i}"]])
    # A 25th on the first queue as another identity: a query, and a client, of its own.
    other = parse_scaled_object(scaled_object("other", metadata(moto, urls[0]), "other-keys"))
    (bound["other"],) = bind(other, inventory)
    poller.set_triggers(other.ref, [bound["other"]])
    assert poller.query_count == 4

    before = {url: moto.requests("GetQueueAttributes", url) for url in urls}
    queries = {b.scaler.query for b in bound.values()}
    try:
        await asyncio.gather(*(poller.poll(q) for q in queries))
    finally:
        await clients.aclose()

    after = {url: moto.requests("GetQueueAttributes", url) for url in urls}
    assert [after[u] - before[u] for u in urls] == [2, 1, 1]  # queue 0: two identities
    assert clients.sqs_clients == 2
    expected = {
        "visible + in flight": lambda v, f, d: v + f,
        "visible": lambda v, f, d: v,
        "all three": lambda v, f, d: v + f + d,
        "visible + delayed": lambda v, f, d: v + d,
    }
    for i in range(24):
        (v, f, d), (_, rule) = states[i % 3], FLAGS[i % 4]
        b = bound[f"so{i}"]
        assert store.readings(b.so)[b.metric_name.lower()].value == expected[rule](v, f, d)
    other_reading = store.readings(other.ref)[bound["other"].metric_name.lower()]
    assert other_reading.value == 7 + 4
