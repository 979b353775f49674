"""scalingModifiers on the real control plane, in cluster mode: two metrics-api triggers
combined by a formula, the HPA the controller writes reads ``composite-metric`` through the
aggregator, and the real HPA controller scales the Deployment to ``ceil(formula / target)``;
the activator takes the target from 0 and back on ``activationTarget``.

No kubelet runs: pods stay Pending, which is enough for an AverageValue target (the HPA
divides the sum by the target, Pending pods included; control-plane.md §5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import MetricsSource
from tests.support import controlplane
from tests.support.controlplane import (
    Adapter,
    ControlPlane,
    condition,
)
from tests.support.controlplane.cluster_mode import cluster_mode

pytestmark = pytest.mark.e2e
NS = "modifiers"
NAME = "mixer"
FORMULA, TARGET, ACTIVATION = "a + b * 2", 10, 5
INTERVAL, COOLDOWN = 1, 5  # the object's pollingInterval and cooldownPeriod
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
HPA_SYNC = 1.0  # the control plane's --horizontal-pod-autoscaler-sync-period
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
FOLLOWED_WITHIN = INTERVAL + SCALER_TIMEOUT + HPA_SYNC + SLACK
"""A value at a source is composed at the adapter's next poll and acted on at the HPA's next
sync, in one step: the behaviour allows 100 pods, or 100 %, a second."""


def formula(a: float, b: float) -> float:
    return a + b * 2  # FORMULA, by hand


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter
    a: MetricsSource
    b: MetricsSource


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    a, b = MetricsSource(), MetricsSource()
    try:
        with cluster_mode(NS) as (cp, adapter):
            yield Cluster(cp, adapter, a, b)
    finally:
        a.close()
        b.close()


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    with cluster.adapter.healthy():
        yield


def mixer(cluster: Cluster) -> dict[str, Any]:
    def api(name: str, source: MetricsSource) -> dict[str, Any]:
        # No targetValue: a trigger that only feeds a formula needs none (KEDA alike).
        metadata = {"url": source.url, "valueLocation": "value"}
        return {"type": "metrics-api", "name": name, "metadata": metadata}

    fast = {"stabilizationWindowSeconds": 0}
    behavior = {
        "scaleUp": {**fast, "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
        "scaleDown": {**fast, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]},
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": NAME},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "pollingInterval": INTERVAL,
            "cooldownPeriod": COOLDOWN,
            "triggers": [api("a", cluster.a), api("b", cluster.b)],
            "advanced": {
                "horizontalPodAutoscalerConfig": {"behavior": behavior},
                "scalingModifiers": {
                    "formula": FORMULA,
                    "target": str(TARGET),
                    "activationTarget": str(ACTIVATION),
                },
            },
        },
    }


def wait(what: str, probe: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.2)


def status(cp: ControlPlane) -> dict[str, Any]:
    found = cp.get("keda.sh/v1alpha1", "ScaledObject", NAME, NS) or {}
    return dict(found.get("status") or {})


def test_the_hpa_scales_to_the_formula_over_the_target(cluster: Cluster) -> None:
    cp, a, b = cluster.cp, cluster.a, cluster.b
    a.value, b.value = 1, 1  # 3: not above the activation target
    cp.apply(controlplane.deployment(NAME, NS, 0))
    cp.apply(mixer(cluster))

    def ready() -> bool:
        return (condition({"status": status(cp)}, "Ready") or {}).get("status") == "True"

    wait("Ready=True", ready, INTERVAL + SCALER_TIMEOUT + SLACK)
    hpa = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", f"keda-hpa-{NAME}", NS)
    assert hpa is not None
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "composite-metric"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": str(TARGET)}
    found = status(cp)
    assert found["compositeScalerName"] == "composite-metric"
    assert found["externalMetricNames"] == ["s0-metric-api-value", "s1-metric-api-value"]
    assert cp.replicas(NAME, NS) == 0

    def replicas_are(n: int) -> Callable[[], bool]:
        return lambda: cp.replicas(NAME, NS) == n

    a.value, b.value = 30, 6  # 42: active; the HPA computes ceil(42 / 10) = 5
    expected = math.ceil(formula(30, 6) / TARGET)
    wait(f"{expected} replicas", replicas_are(expected), 2 * FOLLOWED_WITHIN)
    found = status(cp)
    assert found["triggersActivity"] == {"composite-metric": {"isActive": True}}
    assert (condition({"status": found}, "Active") or {}).get("reason") == "ScalerActive"

    b.value = 1  # 32: ceil(32 / 10) = 4
    wait("4 replicas", replicas_are(math.ceil(formula(30, 1) / TARGET)), FOLLOWED_WITHIN)

    a.value, b.value = 4, 0.5  # 5: not above 5, so back to zero after the cooldown
    cooled = 2 * (INTERVAL + SCALER_TIMEOUT) + COOLDOWN + SLACK
    wait("back to 0", replicas_are(0), cooled)
