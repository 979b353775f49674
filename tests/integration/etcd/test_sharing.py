"""Many etcd triggers, few requests: one Range per key per poll, one token per identity.

Counted by etcd itself (``grpc_server_handled_total`` of ``Range`` and ``Authenticate``,
which the JSON gateway's requests go through).
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
from tests.support.etcd_server import ROOT, EtcdServer
from tests.support.triggers import scaled_object

pytestmark = pytest.mark.integration


def _authentication(name: str, password: str) -> list[dict[str, object]]:
    """A TriggerAuthentication reading username/password from a Secret."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"username": ROOT[0], "password": password},
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "secretTargetRef": [
                    {"parameter": p, "name": name, "key": p} for p in ("username", "password")
                ]
            },
        },
    ]


async def test_one_range_per_key_and_one_token_for_many_triggers(
    auth_etcd: EtcdServer, key: str
) -> None:
    keys = [f"{key}/{i}" for i in range(3)]
    for i, k in enumerate(keys):
        auth_etcd.put(k, str(10 * (i + 1)))
    inventory = Inventory()
    for doc in _authentication("etcd-root", ROOT[1]):
        inventory.add(doc, "test")
    store, clients = MetricStore(), Clients(timeout=5)
    poller = Poller(store, clients, Telemetry())
    bound: list[BoundTrigger] = []
    # 18 ScaledObjects over three keys, each with its own target and activation value.
    for i in range(18):
        meta = {
            "endpoints": auth_etcd.endpoint,
            "watchKey": keys[i % 3],
            "value": str(1 + i % 4),
            "activationValue": str(i),
        }
        trigger = {"type": "etcd", "metadata": meta, "authenticationRef": {"name": "etcd-root"}}
        so = parse_scaled_object(scaled_object(f"so{i}", "default", trigger))
        (b,) = bind(so, inventory)
        bound.append(b)
        poller.set_triggers(so.ref, [b])
    assert poller.query_count == 3

    ranges, tokens = auth_etcd.handled("Range"), auth_etcd.handled("Authenticate")
    queries = {b.scaler.query for b in bound}
    try:
        for _ in range(2):
            await asyncio.gather(*(poller.poll(q) for q in queries))
    finally:
        await clients.aclose()
    assert auth_etcd.handled("Range") - ranges == 2 * 3
    assert auth_etcd.handled("Authenticate") - tokens == 1
    for i, b in enumerate(bound):
        reading = store.readings(b.so)[b.metric_name.lower()]
        assert reading.value == 10 * (i % 3 + 1)
