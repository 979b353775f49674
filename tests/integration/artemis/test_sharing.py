"""Many artemis-queue triggers, few requests: one GET per distinct URL, login and origin.

Requests are counted by the broker's web console itself: its Jetty writes a request log
(``tests/support/artemis.py``). HTTP clients are per TLS identity inside
:class:`~scalers.clients.Clients`, so there is no client to count at ``shared``.
"""

from __future__ import annotations

import asyncio

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import Clients
from tests.integration.artemis.helpers import filled, metadata, template
from tests.support.artemis import PASSWORD, USER, ArtemisBroker
from tests.support.triggers import reading, scaled_object

pytestmark = pytest.mark.integration

AUTHENTICATION = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "TriggerAuthentication",
    "metadata": {"name": "artemis-login", "namespace": "default"},
    "spec": {
        "secretTargetRef": [
            {"parameter": "username", "name": "artemis", "key": "user"},
            {"parameter": "password", "name": "artemis", "key": "password"},
        ]
    },
}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "artemis", "namespace": "default"},
    "stringData": {"user": USER, "password": PASSWORD},
}


async def test_one_request_per_queue_and_origin_for_many_triggers(
    artemis: ArtemisBroker, queue: str
) -> None:
    queues = [queue, f"{queue}-b"]
    artemis.create_queue(queues[1], queues[1])
    async with filled(artemis, queues[0], (12, 0, 0)), filled(artemis, queues[1], (3, 0, 0)):
        await _share(artemis, queues)


async def _share(artemis: ArtemisBroker, queues: list[str]) -> None:
    """14 triggers on the two filled queues, polled for two intervals."""
    inventory = Inventory()
    for doc in (AUTHENTICATION, SECRET):
        inventory.add(doc, "test")
    variants = [
        {"queueLength": "4"},
        {"activationQueueLength": "20"},
        {"queueLength": "100", "activationQueueLength": "0"},
    ]
    triggers = [metadata(artemis, queues[i % 2], **variants[i % 3]) for i in range(12)]
    # KEDA's default URL written out: the same request.
    triggers.append({"restApiTemplate": template(artemis, queues[0])})
    # Another allowed origin: a request of its own.
    triggers.append(metadata(artemis, queues[0], corsHeader="http://127.0.0.1"))
    store = MetricStore()
    clients = Clients(timeout=5)
    poller = Poller(store, clients, Telemetry())
    bound: list[BoundTrigger] = []
    for i, meta in enumerate(triggers):
        trigger = {
            "type": "artemis-queue",
            "metadata": meta,
            "authenticationRef": {"name": "artemis-login"},
        }
        so = parse_scaled_object(scaled_object(f"so{i}", "default", trigger))
        (b,) = bind(so, inventory)
        poller.set_triggers(so.ref, [b])
        bound.append(b)
    assert poller.query_count == 3

    fragments = [f"queue=%22{q}%22/MessageCount" for q in queues]
    before = [artemis.requests(f) for f in fragments]
    queries = {b.scaler.query for b in bound}
    try:
        for _ in range(2):  # two intervals
            await asyncio.gather(*(poller.poll(q) for q in queries))
    finally:
        await clients.aclose()
    # Two intervals: the first queue's two origins, the second queue's one.
    expected = [2 * 2, 2 * 1]
    after = [
        artemis.wait_for_requests(f, n + c)
        for f, n, c in zip(fragments, before, expected, strict=True)
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == expected
    for i, b in enumerate(bound):
        assert reading(store, b).value == (3 if i < 12 and i % 2 else 12)
