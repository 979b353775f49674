"""The activator reads its target's /scale only when a decision could change it: a reading
that changes nothing is decided from the replicas read or written here a few intervals ago,
and every change is decided again from a fresh read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.control import controller as controller_module
from metrics_adapter.control.controller import REPLICAS_KNOWN_FOR, Controller, _Tracked
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef, read_scaled_object
from scalers.clients import Clients
from tests.support import triggers
from tests.support.kube_fakes import FakeKube

NS, NAME, INTERVAL = "shop", "orders", 30
SCALE = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/scale"
DISCOVERY = {
    "resources": [
        {"name": "deployments", "kind": "Deployment", "namespaced": True},
        {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
    ]
}


class Cluster(FakeKube):
    """One Deployment's /scale, which GET reads and PATCH sets; every call recorded."""

    def __init__(self) -> None:
        super().__init__({"/apis/apps/v1": DISCOVERY, SCALE: self.scale})
        self.replicas = 0
        self.calls: list[str] = []

    def scale(self, method: str, body: Any) -> dict[str, Any]:
        self.calls.append(method)
        if method == "PATCH":
            self.replicas = body["spec"]["replicas"]
        return {"spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(controller_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


async def test_the_target_is_read_only_when_its_replicas_could_change(clock: Clock) -> None:
    kube, store, telemetry = Cluster(), MetricStore(), Telemetry()
    poller = Poller(store, Clients(), telemetry)
    controller = Controller(kube, ClusterObjects(), poller, store, telemetry)
    raw = triggers.scaled_object(
        NAME, NS, triggers.always_cron(2), pollingInterval=INTERVAL, cooldownPeriod=0
    )
    raw["spec"]["scaleTargetRef"]["apiVersion"] = "apps/v1"
    document = read_scaled_object(raw)
    so = document.parsed()
    [bound] = bind(so, Inventory())
    poller.set_triggers(so.ref, [bound])
    controller._tracked[so.ref] = _Tracked(document, so=so)

    async def reading(active: bool) -> list[str]:
        now = datetime.now(UTC)
        store.record_value(so.ref, bound.metric_name, float(active), active, now)
        before = len(kube.calls)
        await controller.activate(ObjectRef(NS, NAME))
        return kube.calls[before:]

    assert await reading(active=False) == ["GET"]  # nothing known yet
    assert await reading(active=False) == []  # at 0, inactive: nothing to do, from memory
    assert await reading(active=True) == ["GET", "PATCH"]  # a change: read fresh first
    assert kube.replicas == 1
    assert await reading(active=True) == ["GET"]  # settling: the exact count matters
    clock.now += controller_module.SETTLE_SECONDS
    kube.replicas = 0  # someone else scaled it to 0 meanwhile
    assert await reading(active=True) == []  # known as 1 from its own write: not seen yet
    clock.now += INTERVAL * REPLICAS_KNOWN_FOR
    assert await reading(active=True) == ["GET", "PATCH"]  # read again, and put back
    assert kube.replicas == 1
    clock.now += controller_module.SETTLE_SECONDS
    assert await reading(active=False) == ["GET", "PATCH"]  # to zero: decided from a read
    assert kube.replicas == 0
