"""Activation straight to the HPA's first step (issue 17): the HPA's arithmetic at one
replica, its scale-up policies from one replica, the replica bounds, and what never counts
(errors, values below activation, triggers without a value)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from metrics_adapter.binding.composite import COMPOSITE_METRIC, Composite
from metrics_adapter.control import hpa
from metrics_adapter.control.activator import activation_step, decide
from metrics_adapter.kube.autoscaling import ScalingPolicy, ScalingRules
from metrics_adapter.metrics.composite import Outcome
from metrics_adapter.metrics.store import Composed, Reading
from metrics_adapter.model.annotations import (
    ACTIVATION,
    PAUSED_SCALE_OUT,
    one_replica_activation,
)
from metrics_adapter.model.formula import compile_formula
from tests.unit.test_activator import METRIC, NOW, scaled_object, state


def behavior(**scale_up: Any) -> dict[str, Any]:
    return {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": scale_up}}}


SCALE_DOWN_ONLY = {
    "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
}


def pods(n: int) -> dict[str, Any]:
    return {"type": "Pods", "value": n, "periodSeconds": 15}


def percent(n: int) -> dict[str, Any]:
    return {"type": "Percent", "value": n, "periodSeconds": 15}


# The scale-up limit, as kube-controller-manager computes it.


@pytest.mark.parametrize(
    ("rules", "current", "limit"),
    [
        (None, 1, 5),  # 4 Pods or 100 %: the larger
        (None, 4, 8),
        (None, 10, 20),
        (ScalingRules(select_policy="Min"), 1, 2),
        (ScalingRules(select_policy="Min"), 10, 14),
        (ScalingRules(select_policy="Disabled"), 3, 3),
        (ScalingRules(policies=(ScalingPolicy("Pods", 2, 60),)), 1, 3),
        (ScalingRules(policies=(ScalingPolicy("Percent", 50, 60),)), 1, 2),  # ceil(1.5)
        (ScalingRules(policies=(ScalingPolicy("Percent", 900, 60),)), 1, 10),
        (ScalingRules(stabilization_window_seconds=30), 1, 5),  # unset rules: defaults
    ],
)
def test_scale_up_limit(rules: ScalingRules | None, current: int, limit: int) -> None:
    assert hpa.scale_up_limit(rules, current) == limit


# Straight to N.


@pytest.mark.parametrize(
    ("lag", "spec", "expected"),
    [
        (50, {}, 5),  # the seed's burst: ceil(50 / 10)
        (50, {"advanced": SCALE_DOWN_ONLY}, 5),  # scaleUp defaulted: 4 Pods or 100 %
        (500, {}, 5),  # at most 5 from 1, with or without a behavior
        (500, {"maxReplicaCount": 3}, 3),
        (500, {"advanced": behavior(policies=[pods(10)])}, 11),
        (500, {"advanced": behavior(policies=[percent(300)])}, 4),
        (500, {"advanced": behavior(selectPolicy="Min")}, 2),
        (500, {"advanced": behavior(selectPolicy="Disabled")}, 1),
        (500, {"advanced": behavior(policies=[pods(200)]), "maxReplicaCount": 40}, 40),
        (10.5, {}, 1),  # within the HPA's 10 % tolerance at one replica
        (11.5, {}, 2),
        (5, {}, 1),
        (5, {"minReplicaCount": 3}, 3),
        (50, {"minReplicaCount": 2, "idleReplicaCount": 0}, 5),
        (5, {"minReplicaCount": 2, "idleReplicaCount": 0}, 2),
    ],
)
def test_activation_reaches_the_hpas_first_step(
    lag: float, spec: dict[str, Any], expected: int
) -> None:
    so = scaled_object(**spec)
    assert activation_step(so, [state(so, lag)]).replicas == expected
    assert decide(so, 0, [state(so, lag)], None, NOW).replicas == expected


def test_the_reason_shows_the_arithmetic_and_the_policy_limit() -> None:
    so = scaled_object()
    decision = decide(so, 0, [state(so, 80)], None, NOW)
    assert decision.reason == (
        f"{METRIC} lag 80 > 0; the HPA's first step: {METRIC}: ceil(80 / 10) = 8, "
        "scaleUp policies allow 5 from 1"
    )
    bounded = scaled_object(maxReplicaCount=3)
    assert decide(bounded, 0, [state(bounded, 40)], None, NOW).reason == (
        f"{METRIC} lag 40 > 0; the HPA's first step: {METRIC}: ceil(40 / 10) = 4, bounded to 3"
    )


def test_value_metrics_use_the_hpas_value_formula_at_one_replica() -> None:
    so = scaled_object()
    assert activation_step(so, [state(so, 30, metric_type="Value")]).replicas == 3
    assert activation_step(so, [state(so, 10.5, metric_type="Value")]).replicas == 1


def test_the_largest_metric_wins_and_only_active_polled_values_count() -> None:
    so = scaled_object(maxReplicaCount=20, advanced=behavior(policies=[pods(19)]))
    states = [state(so, 30), state(so, 70), state(so, None), state(so, 90, error="boom")]
    # The failing trigger's last good value (90) is never a number for the step.
    assert activation_step(so, states).replicas == 7
    below = state(so, 40)
    below = type(below)(below.bound, Reading(METRIC, value=40, measured_at=NOW, active=False))
    assert activation_step(so, [state(so, 20), below]).replicas == 2


def test_the_annotation_keeps_kedas_one_replica() -> None:
    so = scaled_object({ACTIVATION: "one-replica"})
    assert decide(so, 0, [state(so, 50)], None, NOW).replicas == 1
    floor = scaled_object({ACTIVATION: " One-Replica "}, minReplicaCount=2)
    assert decide(floor, 0, [state(floor, 50)], None, NOW).replicas == 2
    other = scaled_object({ACTIVATION: "hpa-step"})
    assert decide(other, 0, [state(other, 50)], None, NOW).replicas == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("one-replica", True), ("ONE-REPLICA", True), ("", False), ("1", False), ("true", False)],
)
def test_one_replica_annotation_values(value: str, expected: bool) -> None:
    assert one_replica_activation({ACTIVATION: value}) is expected


def test_paused_scale_out_holds_the_activation_whatever_the_step() -> None:
    so = scaled_object({PAUSED_SCALE_OUT: "true"})
    decision = decide(so, 0, [state(so, 50)], None, NOW)
    assert decision.replicas is None and f"held at 0 by {PAUSED_SCALE_OUT}" in decision.reason
    # The HPA's behavior carries the pause as selectPolicy Disabled: no step beyond one.
    assert activation_step(so, [state(so, 50)]).replicas == 1


def test_once_active_the_hpa_takes_over() -> None:
    so = scaled_object()
    assert decide(so, 2, [state(so, 500)], NOW - timedelta(seconds=5), NOW).replicas is None


# Fallback: what the HPA would be served at one replica.


def failing_in_fallback(so: Any) -> Any:
    s = state(so, 7, error="refused")
    reading = Reading(METRIC, value=7, error="refused", failures=5, fallback_body=b"{}")
    return type(s)(s.bound, reading)


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [
        ({"failureThreshold": 3, "replicas": 4}, 4),
        ({"failureThreshold": 3, "replicas": 9}, 5),  # the scale-up policies still apply
        ({"failureThreshold": 3, "replicas": 4, "behavior": "currentReplicas"}, 1),
        ({"failureThreshold": 3, "replicas": 4, "behavior": "currentReplicasIfHigher"}, 4),
    ],
)
def test_a_trigger_in_fallback_counts_with_its_fallback_value(
    fallback: dict[str, Any], expected: int
) -> None:
    so = scaled_object(fallback=fallback)
    assert decide(so, 0, [failing_in_fallback(so)], None, NOW).replicas == expected


def test_a_failing_trigger_without_fallback_adds_nothing() -> None:
    so = scaled_object()
    states = [state(so, 20), state(so, 80, error="refused")]
    assert decide(so, 0, states, None, NOW).replicas == 2


# scalingModifiers: the one composite metric.


def composed(served: float | None, *, active: bool, fallback: str | None = None) -> Composed:
    composite = Composite(
        compile_formula("a + b", ["a", "b"]), 10.0, 0.0, "AverageValue", {"a": "x", "b": "y"}
    )
    outcome = Outcome(served=served, fallback=fallback, active=active)
    reading = Reading(COMPOSITE_METRIC, value=served, measured_at=NOW, active=active)
    return Composed(composite, outcome, reading)


def modifiers_object(**spec: Any) -> Any:
    advanced = {"scalingModifiers": {"formula": "a + b", "target": "10"}}
    return scaled_object(advanced=advanced, **spec)


def test_the_composite_metric_decides_the_step() -> None:
    so = modifiers_object()
    low = [state(so, 1)]  # the triggers' own values do not count under scalingModifiers
    assert activation_step(so, low, composed(40, active=True)).replicas == 4
    assert activation_step(so, low, composed(40, active=False)).replicas == 1
    assert activation_step(so, low, composed(None, active=False)).replicas == 1
    assert decide(so, 0, low, None, NOW, composed(40, active=True)).reason.endswith(
        f"the HPA's first step: {COMPOSITE_METRIC}: ceil(40 / 10) = 4"
    )


def test_the_composite_metric_in_fallback_counts_with_its_fallback_replicas() -> None:
    so = modifiers_object(fallback={"failureThreshold": 3, "replicas": 3})
    in_fallback = composed(30, active=True, fallback="x failing 4 times")
    assert activation_step(so, [state(so, 1)], in_fallback).replicas == 3


# Settling: a burst still arriving when its first message woke the target.


def test_while_settling_a_larger_reading_raises_the_target() -> None:
    so = scaled_object()
    earlier = NOW - timedelta(seconds=1)
    decision = decide(so, 1, [state(so, 50)], earlier, NOW, settling=True)
    assert (decision.replicas, decision.active, decision.last_active) == (5, True, NOW)
    assert decision.reason == (
        f"{METRIC} lag 50 > 0; still activating: the HPA's first step: {METRIC}: ceil(50 / 10) = 5"
    )


@pytest.mark.parametrize(
    ("annotations", "current", "lag", "settling"),
    [
        ({}, 1, 50, False),  # settled: the HPA's to take it further
        ({}, 5, 50, True),  # already at the step
        ({}, 2, 15, True),  # a smaller step never lowers it
        ({ACTIVATION: "one-replica"}, 1, 50, True),
    ],
)
def test_settling_raises_only_to_a_larger_step(
    annotations: dict[str, str], current: int, lag: float, settling: bool
) -> None:
    so = scaled_object(annotations)
    decision = decide(so, current, [state(so, lag)], NOW, NOW, settling=settling)
    assert decision.replicas is None and decision.active is True


def test_paused_scale_out_holds_a_settling_raise() -> None:
    so = scaled_object({PAUSED_SCALE_OUT: "true"})
    # Its HPA's scaleUp is Disabled: the first step from one replica is one.
    assert decide(so, 1, [state(so, 50)], NOW, NOW, settling=True).replicas is None
