"""The ScaledObject status: KEDA's conditions, reasons and messages, and the patch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.control.activator import Decision, TriggerState
from metrics_adapter.control.status import READY_MESSAGE, active, ready, status_patch
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.annotations import paused
from metrics_adapter.model.keda import ScaledObject, parse_scaled_object

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NATS = {"natsServerMonitoringEndpoint": "n:8222", "account": "$G", "stream": "S", "consumer": "c"}


def so(
    annotations: dict[str, str] | None = None, triggers: int = 2, cpu: bool = False
) -> ScaledObject:
    resource = [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]
    return parse_scaled_object(
        {
            "metadata": {"name": "w", "namespace": "apps", "annotations": annotations or {}},
            "spec": {
                "scaleTargetRef": {"name": "w"},
                "triggers": [
                    {"type": "nats-jetstream", "metadata": {**NATS, "stream": f"S{i}"}}
                    for i in range(triggers)
                ]
                + (resource if cpu else []),
            },
        }
    )


def states(obj: ScaledObject, *readings: Reading) -> list[TriggerState]:
    return [TriggerState(b, r) for b, r in zip(bind(obj, Inventory()), readings, strict=True)]


def value(v: float, active: bool) -> Reading:
    return Reading("m", value=v, measured_at=NOW, active=active)


FAILING = Reading("m", error="GET http://n:8222/jsz: connection refused", failures=1)


def test_ready_reasons() -> None:
    obj = so()
    assert ready(None, states(obj, value(1, True), value(0, False))).to_json() == {
        "type": "Ready",
        "status": "True",
        "reason": "ScaledObjectReady",
        "message": READY_MESSAGE,
    }
    partial = ready(None, states(obj, value(1, True), FAILING))
    assert (partial.status, partial.reason) == ("Unknown", "PartialTriggerError")
    assert "connection refused" in partial.message
    failed = ready(None, states(obj, FAILING, FAILING))
    assert (failed.status, failed.reason) == ("False", "TriggerError")
    bad = ready('triggers[0].metadata.lagThreshold: "ten" is not a number', [])
    assert (bad.status, bad.reason) == ("False", "ScaledObjectCheckFailed")
    assert bad.message == 'triggers[0].metadata.lagThreshold: "ten" is not a number'


@pytest.mark.parametrize(
    ("decision", "status", "reason"),
    [
        (Decision(1, True, "lag 5 > 0", NOW), "True", "ScalerActive"),
        (Decision(None, False, "lag 0 <= 0", NOW), "False", "ScalerNotActive"),
        (Decision(None, False, "lag 0 <= 0; cooldown", NOW, 42.0), "False", "ScalerCooldown"),
        (Decision(None, None, "failing", NOW), "Unknown", "UnknownState"),
        (None, "Unknown", "UnknownState"),
    ],
)
def test_active_reasons(decision: Decision | None, status: str, reason: str) -> None:
    condition = active(decision)
    assert (condition.status, condition.reason) == (status, reason)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, False),
        ({"autoscaling.keda.sh/paused": "true"}, True),
        ({"autoscaling.keda.sh/paused": "false"}, False),
        ({"autoscaling.keda.sh/paused": "yes please"}, True),  # not a bool: counts as true
        ({"autoscaling.keda.sh/paused-replicas": "2"}, True),
    ],
)
def test_pause_annotations(annotations: dict[str, str], expected: bool) -> None:
    assert paused(annotations) is expected


def test_status_patch() -> None:
    obj = so({"autoscaling.keda.sh/paused": "true"}, cpu=True)
    patch: dict[str, Any] = status_patch(
        obj,
        problem=None,
        states=states(obj, value(5, True), value(0, False)),
        decision=Decision(1, True, "lag 5 > 0", NOW),
        original_replicas=0,
    ).to_json()
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "Active", "Fallback", "Paused"]
    assert patch["conditions"][3]["reason"] == "ScaledObjectPaused"
    assert patch["conditions"][2] == {
        "type": "Fallback",
        "status": "False",
        "reason": "NoFallbackFound",
        "message": "No fallbacks are active on this scaled object",
    }
    assert patch["externalMetricNames"] == ["s0-nats-jetstream-S0", "s1-nats-jetstream-S1"]
    assert patch["resourceMetricNames"] == ["cpu"]
    assert patch["triggersActivity"] == {
        "s0-nats-jetstream-S0": {"isActive": True},
        "s1-nats-jetstream-S1": {"isActive": False},
    }
    assert patch["hpaName"] == "keda-hpa-w"
    assert patch["scaleTargetKind"] == "apps/v1.Deployment"
    assert patch["originalReplicaCount"] == 0
    assert patch["lastActiveTime"] == "2026-11-22T08:00:00Z"


def test_never_active_has_no_last_active_time() -> None:
    obj = so(triggers=1)
    patch = status_patch(
        obj,
        problem=None,
        states=states(obj, value(0, False)),
        decision=Decision(None, False, "lag 0 <= 0", None),
        original_replicas=None,
    ).to_json()
    assert "lastActiveTime" not in patch and "originalReplicaCount" not in patch
