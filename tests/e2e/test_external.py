"""External scalers in cluster mode, on a real control plane: the adapter asks the scaler
(a real gRPC server, :mod:`tests.support.external_scaler`, in a thread of the test) for its
metric when it binds the ScaledObject, writes the HPA with the scaler's metric name and
target, activates from IsActive, and wakes an idle external-push target on a ``true``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import controlplane
from tests.support.controlplane import ControlPlane, condition
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.external_scaler import InThread, in_thread

pytestmark = pytest.mark.e2e
NS = "external"
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
SCALER_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, InThread]]:
    with in_thread() as scaler, cluster_mode(NS) as (cp, adapter), adapter.healthy():
        yield cp, scaler


def scaled_object(name: str, trigger_type: str, address: str, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": interval,
            "minReplicaCount": 0,
            "cooldownPeriod": 600,
            "triggers": [
                {"type": trigger_type, "metadata": {"scalerAddress": address, "queue": name}}
            ],
        },
    }


def wait(what: str, probe: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.2)


def hpa(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    return cp.get("autoscaling/v2", "HorizontalPodAutoscaler", f"keda-hpa-{name}", NS)


def ready(cp: ControlPlane, name: str) -> dict[str, Any]:
    found = cp.get("keda.sh/v1alpha1", "ScaledObject", name, NS) or {}
    return condition({"status": found.get("status") or {}}, "Ready") or {}


def test_the_hpa_is_the_scalers_once_it_answers(
    cluster: tuple[ControlPlane, InThread],
) -> None:
    """Down when the object is bound: Ready=False naming the trigger, no HPA; up: bound
    again at the next pollingInterval, the HPA has the scaler's metric and target, and
    IsActive scales the target from zero."""
    cp, scaler = cluster
    server = scaler.server
    server.answer.metric_name, server.answer.target_size = "backlog", 4
    server.answer.values, server.answer.active = [(12, 0.0)], True
    scaler.run(server.stop())
    cp.apply(controlplane.deployment("ext", NS, 0))
    cp.apply(scaled_object("ext", "external", server.address, interval=1))
    wait("Ready=False", lambda: ready(cp, "ext").get("reason") == "TriggerError", SLACK)
    assert "triggers[0]: GetMetricSpec for external/ext" in ready(cp, "ext")["message"]
    assert cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-ext", NS) is None

    scaler.run(server.start())
    # The retry comes a pollingInterval after the failure; the channel reconnects within 5 s.
    wait("the HPA", lambda: hpa(cp, "ext") is not None, 1 + 5 + SCALER_TIMEOUT + SLACK)
    [metric] = (hpa(cp, "ext") or {})["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "s0-backlog"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    wait("scaled from zero", lambda: cp.replicas("ext", NS) >= 1, SLACK)
    assert server.calls["GetMetricSpec"] >= 1 and server.metric_names[-1] == "backlog"


def test_a_true_on_the_stream_wakes_an_idle_target(
    cluster: tuple[ControlPlane, InThread],
) -> None:
    """pollingInterval 300: past the first poll and the one the watcher asks when it
    connects, only the stream's ``true`` polls within the test. (Were that connect poll
    later than the half second given, on a loaded machine, it would read the new answer
    and the test would pass without the push: it never fails for it.)"""
    cp, scaler = cluster
    server = scaler.server
    server.answer.metric_name, server.answer.target_size = "pushed", 5
    server.answer.values, server.answer.active = [(0, 0.0)], False
    opened = server.calls["StreamIsActive"]
    cp.apply(controlplane.deployment("pushed", NS, 0))
    cp.apply(scaled_object("pushed", "external-push", server.address, interval=300))
    wait("the stream", lambda: server.open_streams >= 1, SLACK)
    assert server.calls["StreamIsActive"] > opened
    time.sleep(0.5)  # past the poll the watcher's connection itself asked for
    server.answer.values, server.answer.active = [(7, 0.0)], True
    scaler.run(server.push(True))
    wait("woken from zero", lambda: cp.replicas("pushed", NS) >= 1, SLACK)
