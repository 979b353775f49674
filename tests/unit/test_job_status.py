"""The ScaledJob status: KEDA's conditions and reasons, and when a new one is written."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.control.activator import TriggerState
from metrics_adapter.control.job_status import not_ready, status_patch, unchanged
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.scaled_job import ScaledJob, ScaledJobStatus, parse_scaled_job

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
REDIS = {"address": "127.0.0.1:6379", "listName": "jobs", "listLength": "5"}


def sj(annotations: dict[str, str] | None = None, triggers: int = 2) -> ScaledJob:
    return parse_scaled_job(
        {
            "metadata": {"name": "p", "namespace": "batch", "annotations": annotations or {}},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c"}]}}},
                "triggers": [
                    {
                        "type": "redis",
                        "metadata": {**REDIS, "listName": f"l{i}"},
                        "authenticationRef": {"name": f"a{i}"} if i else None,
                    }
                    for i in range(triggers)
                ],
            },
        }
    )


def states(obj: ScaledJob, *readings: Reading) -> list[TriggerState]:
    # authentication is not what these tests are about: bind a copy without it
    bare = dataclasses.replace(
        obj, triggers=tuple(dataclasses.replace(t, authentication_ref=None) for t in obj.triggers)
    )
    return [TriggerState(b, r) for b, r in zip(bind(bare, Inventory()), readings, strict=True)]


def value(v: float, active: bool) -> Reading:
    return Reading("m", value=v, measured_at=NOW, active=active)


FAILING = Reading("m", error="dial tcp 127.0.0.1:6379: connection refused", failures=1)


def conditions(status: ScaledJobStatus) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in status.conditions]


def test_a_healthy_active_scaled_job() -> None:
    obj = sj()
    status = status_patch(
        obj,
        states=states(obj, value(9, True), value(0, False)),
        active=True,
        why="",
        last_active=NOW,
    )
    assert conditions(status) == [
        ("Ready", "True", "ScaledJobReady"),
        ("Active", "True", "ScalerActive"),
        ("Fallback", "Unknown", ""),
        ("Paused", "False", "ScaledJobUnpaused"),
    ]
    out = status.to_json()
    assert out["triggersTypes"] == "redis,redis"
    assert out["authenticationsTypes"] == "a1"
    assert out["externalMetricNames"] == ["s0-redis-l0", "s1-redis-l1"]
    assert out["triggersActivity"] == {
        "s0-redis-l0": {"isActive": True},
        "s1-redis-l1": {"isActive": False},
    }
    assert out["lastActiveTime"] == "2026-12-05T08:00:00Z"
    assert out["Paused"] == "false"


def test_errors_are_partial_while_another_trigger_is_active_and_fatal_otherwise() -> None:
    obj = sj()
    partial = status_patch(
        obj, states=states(obj, FAILING, value(9, True)), active=True, why="", last_active=NOW
    )
    assert conditions(partial)[0] == ("Ready", "Unknown", "PartialTriggerError")
    assert "connection refused" in partial.conditions[0].message
    total = status_patch(
        obj, states=states(obj, FAILING, value(0, False)), active=False, why="", last_active=None
    )
    assert conditions(total)[:2] == [
        ("Ready", "False", "TriggerError"),
        ("Active", "False", "ScalerNotActive"),
    ]
    assert "triggersActivity" in total.to_json()
    assert total.to_json()["triggersActivity"] == {"s1-redis-l1": {"isActive": False}}


def test_paused_and_not_ready() -> None:
    obj = sj({"autoscaling.keda.sh/paused": "true"})
    status = status_patch(obj, states=[], active=None, why="not evaluated yet", last_active=None)
    assert conditions(status)[1:] == [
        ("Active", "Unknown", "UnknownState"),
        ("Fallback", "Unknown", ""),
        ("Paused", "True", "ScaledJobPaused"),
    ]
    broken = not_ready("triggers[0].type: is required")
    assert conditions(broken) == [
        ("Ready", "False", "ScaledJobCheckFailed"),
        ("Active", "Unknown", "UnknownState"),
    ]
    assert broken.conditions[0].message == "triggers[0].type: is required"


def test_last_active_time_alone_is_written_once_per_polling_interval_at_most() -> None:
    obj = sj()
    s = states(obj, value(9, True), value(0, False))

    def at(moment: datetime) -> ScaledJobStatus:
        return status_patch(obj, states=s, active=True, why="", last_active=moment)

    first = at(NOW)
    assert not unchanged(first, None, 30)
    assert unchanged(at(NOW + timedelta(seconds=29)), first, 30)
    assert not unchanged(at(NOW + timedelta(seconds=30)), first, 30)
    assert unchanged(at(NOW + timedelta(seconds=59)), first, 60)
    inactive = status_patch(obj, states=s, active=False, why="", last_active=NOW)
    assert not unchanged(inactive, first, 30)  # another condition: written at once
