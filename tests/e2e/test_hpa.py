"""The real HPA controller scales real Deployments on the values the adapter serves.

No kubelet runs, so pods stay Pending; that is enough for AverageValue targets, where the
HPA divides by the replica count, Pending pods included (control-plane.md §5). Behaviour is
fast both ways (no stabilization, 100 % per second) and the HPA syncs every second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import NAMESPACE, Registered, cron_object, metric_name
from tests.support import controlplane
from tests.support.controlplane import ControlPlane, condition, wait_for

pytestmark = pytest.mark.e2e

POLLING_INTERVAL = 1  # the e2e objects' pollingInterval (tests/e2e/conftest.py)
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
HPA_SYNC = 1.0  # the control plane's --horizontal-pod-autoscaler-sync-period
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen: seconds of
apiserver, controller-manager and adapter work each, late."""
FOLLOWED_WITHIN = POLLING_INTERVAL + SCALER_TIMEOUT + HPA_SYNC + SLACK
"""A value at the source is read at the adapter's next poll and acted on at the HPA's next
sync, in one step: the behaviour allows 100 pods, or 100 %, a second."""


def deployment(name: str) -> dict[str, Any]:
    return controlplane.deployment(name, NAMESPACE)


def hpa(name: str, scaled_object: dict[str, Any], average: str) -> dict[str, Any]:
    """What the controller will generate for ``scaled_object`` (keda-semantics §2), by hand."""
    fast = {"stabilizationWindowSeconds": 0}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": metric_name(scaled_object),
                            "selector": {
                                "matchLabels": {
                                    "scaledobject.keda.sh/name": scaled_object["metadata"]["name"]
                                }
                            },
                        },
                        "target": {"type": "AverageValue", "averageValue": average},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    **fast,
                    "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
                },
                "scaleDown": {
                    **fast,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
                },
            },
        },
    }


@contextlib.contextmanager
def scaled(
    cp: ControlPlane, name: str, scaled_object: dict[str, Any], average: str
) -> Iterator[None]:
    cp.apply(deployment(name))
    cp.apply(hpa(name, scaled_object, average))
    try:
        yield
    finally:
        cp.delete("autoscaling/v2", "HorizontalPodAutoscaler", name, NAMESPACE)
        cp.delete("apps/v1", "Deployment", name, NAMESPACE)


def wait_replicas(
    cp: ControlPlane, name: str, replicas: int, timeout: float = FOLLOWED_WITHIN
) -> None:
    """Wait until the HPA has set the Deployment's spec.replicas to ``replicas``."""

    def probe() -> bool:
        found = cp.get("apps/v1", "Deployment", name, NAMESPACE) or {}
        return bool(found["spec"]["replicas"] == replicas)

    try:
        wait_for(f"Deployment {name} at {replicas} replicas", probe, timeout)
    except TimeoutError as exc:
        autoscaler = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", name, NAMESPACE) or {}
        raise AssertionError(f"{exc}; HPA status: {autoscaler.get('status')}") from None


def test_the_hpa_scales_to_the_cron_value_and_follows_an_adapter_restart(
    registered: Registered,
) -> None:
    cp = registered.cp
    with scaled(cp, "worker", registered.worker, "1"):
        autoscaler = cp.wait_condition(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "worker",
            "ScalingActive",
            namespace=NAMESPACE,
            timeout=FOLLOWED_WITHIN,
        )
        assert (condition(autoscaler, "ScalingActive") or {})["reason"] == "ValidMetricFound"
        wait_replicas(cp, "worker", 7)

        def average() -> str | None:
            autoscaler = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "worker", NAMESPACE)
            metrics = ((autoscaler or {}).get("status") or {}).get("currentMetrics") or []
            return metrics[0]["external"]["current"]["averageValue"] if metrics else None

        # 7 over 7 replicas once the Deployment has caught up: the HPA divides by replicas.
        # At the HPA's next sync after the Deployment's.
        assert wait_for("HPA current averageValue 1", lambda: average() == "1", HPA_SYNC + SLACK)

        # Serve something else: the same trigger at 3 replicas, re-read on restart.
        registered.write(cron_object("worker", 3))
        try:
            registered.restart()
            wait_replicas(cp, "worker", 3)
        finally:
            registered.write(registered.worker)
            registered.restart()


def test_the_hpa_follows_a_metrics_api_value(registered: Registered) -> None:
    cp, source = registered.cp, registered.source
    source.value = 40
    with scaled(cp, "queue", registered.queue, "10"):
        wait_replicas(cp, "queue", 4)
        source.value = 95
        wait_replicas(cp, "queue", 10)
        source.value = 20
        wait_replicas(cp, "queue", 2)
