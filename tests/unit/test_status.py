"""The ScaledObject status: KEDA's conditions, reasons and messages, and the patch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.control.activator import Decision, TriggerState
from metrics_adapter.control.status import (
    READY_MESSAGE,
    active,
    not_ready,
    only_activity_moved,
    ready,
    reconciled,
    status_patch,
    unchanged,
)
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.annotations import paused
from metrics_adapter.model.keda import ScaledObject, ScaledObjectStatus, parse_scaled_object

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
        (
            Decision(None, False, "lag 0 <= 0; cooldown", NOW, 42.0, NOW + timedelta(seconds=42)),
            "False",
            "ScalerCooldown",
        ),
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


def test_a_malformed_object_gets_ready_false_and_nothing_else() -> None:
    problem = 'triggers[0].metadata.lagThreshold: "ten" is not a number'
    assert not_ready(problem).to_json() == {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ScaledObjectCheckFailed",
                "message": problem,
            }
        ]
    }


def test_after_a_reconcile_active_is_left_out_until_there_was_activity() -> None:
    obj = so(triggers=1)
    never = reconciled(obj, states(obj, value(0, False)), None, 2)
    assert [c.type for c in never.conditions] == ["Ready", "Fallback", "Paused"]
    assert never.last_active_time is None and never.original_replica_count == 2
    known = reconciled(obj, states(obj, value(0, False)), NOW, 2)
    active_now = known.condition("Active")
    assert active_now is not None and active_now.reason == "UnknownState"
    assert known.last_active_time == NOW


def test_a_status_that_only_moved_its_last_active_time_a_little_is_not_written_again() -> None:
    obj = so(triggers=1)
    readings = states(obj, value(5, True))

    def at(moment: datetime) -> ScaledObjectStatus:
        decision = Decision(None, True, "lag 5 > 0", moment)
        return status_patch(
            obj, problem=None, states=readings, decision=decision, original_replicas=0
        )

    written = at(NOW)
    assert not unchanged(written, None, 300)
    assert unchanged(at(NOW + timedelta(seconds=29)), written, 300)  # within min(30, 300/10)
    assert not unchanged(at(NOW + timedelta(seconds=30)), written, 300)
    assert not unchanged(at(NOW + timedelta(seconds=2)), written, 10)  # a tenth of 10 s is 1 s
    other = status_patch(
        obj, problem=None, states=states(obj, FAILING), decision=None, original_replicas=0
    )
    assert not unchanged(other, written, 300)
    # A refresh of lastActiveTime alone may wait while other writes wait for the budget;
    # any other change may not.
    assert only_activity_moved(at(NOW + timedelta(hours=1)), written)
    assert not only_activity_moved(other, written)
    assert not only_activity_moved(written, None)
