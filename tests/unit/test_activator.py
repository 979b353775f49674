"""The activator's 0 <-> 1 decisions (keda-semantics §4) and the HPA's arithmetic (§2)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.control import activator, hpa, status
from metrics_adapter.control.activator import Decision, TriggerState, decide, hpa_proposal
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.annotations import ACTIVATION, FORCE_ACTIVATION
from metrics_adapter.model.keda import ScaledObject, parse_scaled_object
from scalers.errors import Problems
from scalers.params import TriggerInputs
from scalers.registry import KINDS

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=1)
METRIC = "s0-nats-jetstream-JOBS"
NATS_META = {
    "natsServerMonitoringEndpoint": "n:8222",
    "account": "$G",
    "stream": "JOBS",
    "consumer": "w",
}


def scaled_object(annotations: dict[str, str] | None = None, **spec: Any) -> ScaledObject:
    metadata: dict[str, Any] = {
        "name": "echo",
        "namespace": "apps",
        "creationTimestamp": CREATED.isoformat(),
    }
    if annotations:
        metadata["annotations"] = annotations
    body = {
        "scaleTargetRef": {"name": "worker"},
        "triggers": [{"type": "nats-jetstream", "metadata": NATS_META}],
        **spec,
    }
    return parse_scaled_object({"kind": "ScaledObject", "metadata": metadata, "spec": body})


def bound_trigger(so: ScaledObject, metric_type: str = "AverageValue") -> BoundTrigger:
    trigger = so.triggers[0]
    kind = KINDS["nats-jetstream"]
    problems = Problems()
    scaler = kind.create(TriggerInputs(dict(trigger.metadata)), problems)
    assert scaler is not None
    if metric_type != trigger.metric_type:
        trigger = replace(trigger, metric_type=metric_type)
    return BoundTrigger(so.ref, trigger, kind, scaler, METRIC, float(so.polling_interval))


def state(
    so: ScaledObject,
    value: float | None,
    *,
    error: str | None = None,
    metric_type: str = "AverageValue",
) -> TriggerState:
    active = value is not None and value > 0 and error is None
    reading = Reading(METRIC, value=value, measured_at=NOW, active=active, error=error)
    return TriggerState(bound_trigger(so, metric_type), reading)


@pytest.mark.parametrize(("min_r", "expected"), [(0, 1), (1, 1), (3, 3)])
def test_one_replica_activation_scales_to_max_of_min_and_one(min_r: int, expected: int) -> None:
    so = scaled_object({ACTIVATION: "one-replica"}, minReplicaCount=min_r)
    assert decide(so, 0, [state(so, 50)], None, NOW) == Decision(
        expected, True, f"{METRIC} lag 50 > 0", NOW
    )


@pytest.mark.parametrize(("min_r", "lag", "expected"), [(0, 50, 5), (3, 40, 4), (3, 5, 3)])
def test_active_at_zero_scales_to_the_hpas_first_step(
    min_r: int, lag: float, expected: int
) -> None:
    so = scaled_object(minReplicaCount=min_r)
    decision = decide(so, 0, [state(so, lag)], None, NOW)
    assert (decision.replicas, decision.active, decision.last_active) == (expected, True, NOW)
    if expected > max(min_r, 1):
        first_step = f"the HPA's first step: {METRIC}: ceil({lag:g} / 10) = {expected}"
        assert decision.reason == f"{METRIC} lag {lag:g} > 0; {first_step}"
    else:
        assert decision.reason == f"{METRIC} lag {lag:g} > 0"


def test_active_with_replicas_leaves_them_to_the_hpa_and_refreshes_last_active() -> None:
    so = scaled_object()
    earlier = NOW - timedelta(hours=1)
    decision = decide(so, 4, [state(so, 50)], earlier, NOW)
    assert decision == Decision(None, True, f"{METRIC} lag 50 > 0", NOW)


def test_one_active_trigger_is_enough() -> None:
    so = scaled_object()
    decision = decide(so, 0, [state(so, 0), state(so, 3)], None, NOW)
    assert (decision.replicas, decision.active, decision.reason) == (1, True, f"{METRIC} lag 3 > 0")


def test_active_with_a_failing_trigger_keeps_last_active() -> None:
    so = scaled_object()
    earlier = NOW - timedelta(hours=1)
    decision = decide(so, 2, [state(so, 50), state(so, None, error="boom")], earlier, NOW)
    assert decision == Decision(None, True, f"{METRIC} lag 50 > 0", earlier)


def test_scale_from_zero_with_a_failing_trigger_sets_last_active() -> None:
    so = scaled_object()
    decision = decide(so, 0, [state(so, 5), state(so, None, error="boom")], None, NOW)
    assert decision == Decision(1, True, f"{METRIC} lag 5 > 0", NOW)


@pytest.mark.parametrize(
    ("value", "error", "why"),
    [
        (0, "GET http://n:8222/jsz: refused", f"{METRIC} failing: GET http://n:8222/jsz: refused"),
        (None, None, f"{METRIC} has no value yet"),
    ],
)
def test_unknown_never_scales_down(value: float | None, error: str | None, why: str) -> None:
    so = scaled_object()
    long_ago = NOW - timedelta(days=7)
    decision = decide(so, 3, [state(so, 0), state(so, value, error=error)], long_ago, NOW)
    reason = f"{why}: not scaling down while a trigger is unknown"
    assert decision == Decision(None, None, reason, long_ago)


def test_inactive_within_cooldown_waits() -> None:
    so = scaled_object(cooldownPeriod=300)
    last = NOW - timedelta(seconds=200)
    assert decide(so, 3, [state(so, 0)], last, NOW) == Decision(
        None,
        False,
        f"{METRIC} lag 0 <= 0; cooldown: 100s left",
        last,
        cooldown_left=100.0,
        cooldown_ends=NOW + timedelta(seconds=100),
    )


def test_the_status_of_a_cooldown_is_the_same_at_every_reading() -> None:
    """The Active condition says when the cooldown ends, not how long is left: a status
    that changed at every poll was written at every poll, for every object cooling down."""
    so = scaled_object(cooldownPeriod=300)
    last = NOW - timedelta(seconds=200)
    readings = [decide(so, 3, [state(so, 0)], last, NOW + timedelta(seconds=s)) for s in (0, 30)]
    first, later = (status.active(d) for d in readings)
    assert readings[0].cooldown_left != readings[1].cooldown_left
    assert first == later
    assert first.reason == "ScalerCooldown"
    assert first.message.endswith("at 2026-05-01T12:01:40Z")


@pytest.mark.parametrize(
    ("spec", "current", "expected"),
    [
        ({}, 3, 0),
        ({"idleReplicaCount": 0, "minReplicaCount": 2}, 3, 0),
        ({"idleReplicaCount": 1, "minReplicaCount": 2}, 3, 1),
    ],
)
def test_inactive_after_cooldown_goes_to_zero_or_idle(
    spec: dict[str, Any], current: int, expected: int
) -> None:
    so = scaled_object(cooldownPeriod=300, **spec)
    last = NOW - timedelta(seconds=300)
    assert decide(so, current, [state(so, 0)], last, NOW) == Decision(
        expected, False, f"{METRIC} lag 0 <= 0", last
    )


@pytest.mark.parametrize(
    ("created_ago", "initial", "expected"),
    [(timedelta(seconds=10), 60, None), (timedelta(seconds=60), 60, 0), (timedelta(0), 0, 0)],
)
def test_never_active_uses_creation_plus_initial_cooldown(
    created_ago: timedelta, initial: int, expected: int | None
) -> None:
    so = parse_scaled_object(
        {
            "metadata": {"name": "echo", "creationTimestamp": (NOW - created_ago).isoformat()},
            "spec": {
                "scaleTargetRef": {"name": "w"},
                "initialCooldownPeriod": initial,
                "cooldownPeriod": 3600,
                "triggers": [{"type": "nats-jetstream", "metadata": NATS_META}],
            },
        }
    )
    decision = decide(so, 2, [state(so, 0)], None, NOW)
    assert (decision.replicas, decision.active, decision.last_active) == (expected, False, None)


def test_below_min_goes_to_min() -> None:
    so = scaled_object(minReplicaCount=2)
    assert decide(so, 1, [state(so, 0)], None, NOW) == Decision(
        2, False, "below minReplicaCount 2", None
    )


def test_idle_mode_active_below_min_scales_to_min() -> None:
    so = scaled_object(minReplicaCount=3, idleReplicaCount=0)
    assert decide(so, 0, [state(so, 5)], None, NOW).replicas == 3


def test_inactive_at_floor_does_nothing() -> None:
    so = scaled_object()
    assert decide(so, 0, [state(so, 0)], None, NOW) == Decision(
        None, False, f"{METRIC} lag 0 <= 0", None
    )


def test_force_activation_annotation() -> None:
    so = scaled_object({FORCE_ACTIVATION: "true"})
    assert decide(so, 0, [state(so, 0)], None, NOW) == Decision(
        1, True, "autoscaling.keda.sh/force-activation is set", NOW
    )
    off = scaled_object({FORCE_ACTIVATION: "false"})
    assert decide(off, 0, [state(off, 0)], None, NOW).replicas is None


def test_only_resource_triggers_are_always_active() -> None:
    so = scaled_object(minReplicaCount=0)
    assert decide(so, 0, [], None, NOW) == Decision(
        1, True, "only cpu/memory triggers: always active", NOW
    )


@pytest.mark.parametrize(
    ("metric_type", "value", "target", "current", "replicas"),
    [
        ("AverageValue", 50, 10, 1, 5),
        ("AverageValue", 51, 10, 1, 6),
        ("AverageValue", 0, 10, 4, 0),
        ("AverageValue", 21, 10, 2, 2),  # within 10%: keep
        ("AverageValue", 50, 10, 0, 5),
        ("Value", 50, 10, 2, 10),
        ("Value", 10.5, 10, 3, 3),  # within 10%: keep
        ("Value", 5, 10, 4, 2),
    ],
)
def test_metric_replicas(
    metric_type: str, value: float, target: float, current: int, replicas: int
) -> None:
    assert hpa.metric_replicas(metric_type, value, target, current).replicas == replicas


def test_metric_replicas_explains_the_formula() -> None:
    assert hpa.metric_replicas("AverageValue", 50, 10, 1).why == "ceil(50 / 10) = 5"
    assert hpa.metric_replicas("Value", 50, 10, 2).why == "ceil(2 * 50 / 10) = 10"


@pytest.mark.parametrize(
    ("replicas", "min_r", "max_r", "expected"),
    [(5, 0, 10, 5), (0, 0, 10, 1), (0, 3, 10, 3), (50, 1, 10, 10), (7, 7, 7, 7)],
)
def test_clamp(replicas: int, min_r: int, max_r: int, expected: int) -> None:
    assert hpa.clamp(replicas, min_r, max_r) == expected


def test_hpa_proposal() -> None:
    so = scaled_object(maxReplicaCount=10)
    assert hpa_proposal(so, 1, [state(so, 50)]) == hpa.Proposal(5, f"{METRIC}: ceil(50 / 10) = 5")
    assert hpa_proposal(so, 1, [state(so, 20), state(so, 70)]) == hpa.Proposal(
        7, f"{METRIC}: ceil(70 / 10) = 7"
    )
    value = state(so, 50, metric_type="Value")
    assert hpa_proposal(so, 2, [value]) == hpa.Proposal(10, f"{METRIC}: ceil(2 * 50 / 10) = 10")


def test_hpa_proposal_is_bounded_to_max() -> None:
    so = scaled_object(maxReplicaCount=3)
    assert hpa_proposal(so, 1, [state(so, 50)]) == hpa.Proposal(
        3, f"{METRIC}: ceil(50 / 10) = 5, bounded to 3"
    )


def test_hpa_proposal_none_at_zero_or_when_unknown() -> None:
    so = scaled_object()
    assert hpa_proposal(so, 0, [state(so, 50)]) is None
    assert hpa_proposal(so, 2, [state(so, 50), state(so, 1, error="boom")]) is None
    assert hpa_proposal(so, 2, [state(so, None)]) is None
    assert hpa_proposal(so, 2, []) is None


def test_dry_run_applies_activation_then_the_hpa() -> None:
    so = scaled_object(maxReplicaCount=5)
    dry = activator.DryRunActivator({so.ref: 0})
    dry.evaluate(so, [state(so, 50)], NOW)
    assert dry.replicas[so.ref] == 5
    assert dry.last_active[so.ref] == NOW


def test_dry_run_logs_every_objects_first_decision_then_only_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An object that stays idle is still mentioned once: its first decision, inactive."""
    so = scaled_object()
    dry = activator.DryRunActivator({so.ref: 0})
    with caplog.at_level(logging.INFO, logger=activator.log.name):
        for _ in range(3):
            dry.evaluate(so, [state(so, 0)], NOW)
        dry.evaluate(so, [state(so, 50)], NOW)
    said = [r.getMessage() for r in caplog.records if "is inactive" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{so.ref} is inactive: "), said
    assert sum("is active" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("annotation", "current", "lag", "expected"),
    [
        ("autoscaling.keda.sh/paused-scale-out", 0, 50, None),  # 0 -> 1 held
        ("autoscaling.keda.sh/paused-scale-in", 3, 0, None),  # N -> 0 held
        ("autoscaling.keda.sh/paused-scale-in", 0, 50, 5),  # scaling out still allowed
        ("autoscaling.keda.sh/paused-scale-out", 3, 0, 0),  # scaling in still allowed
    ],
)
def test_pause_scale_in_and_out_hold_the_activator(
    annotation: str, current: int, lag: float, expected: int | None
) -> None:
    so = scaled_object({annotation: "true"}, cooldownPeriod=0)
    decision = decide(so, current, [state(so, lag)], NOW - timedelta(seconds=60), NOW)
    assert decision.replicas == expected
    if expected is None:
        assert f"held at {current} by {annotation}" in decision.reason
