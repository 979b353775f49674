"""The composite metric of scalingModifiers: recorded after each reading and served from
memory, activation on ``activationTarget``, both fallback paths, NaN refused, the status, the
series and ``explain``. Objects are parsed and bound for real; readings go into the store as
the poller writes them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import Binding, BoundTrigger, bind_all
from metrics_adapter.config.settings import Settings
from metrics_adapter.control.activator import (
    decide,
    hpa_proposal,
    set_fallbacks,
    trigger_states,
)
from metrics_adapter.control.status import status_patch
from metrics_adapter.errors import ServiceUnavailable
from metrics_adapter.explain.local import as_dicts, render, reports
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import Composed, MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ScaledObject, parse_scaled_object
from metrics_adapter.server import build
from scalers.base import Scaler
from scalers.clients import Clients
from scalers.errors import SourceResponseError
from scalers.quantity import parse_quantity

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=1)
COMPOSITE = "composite-metric"


def api(name: str | None) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": "metrics-api",
        "metadata": {"url": f"http://stats/{name}", "valueLocation": "v", "targetValue": "10"},
    }
    return trigger if name is None else {**trigger, "name": name}


@dataclass
class Mixer:
    """One ScaledObject with scalingModifiers over metrics-api triggers ``a`` and ``b``."""

    so: ScaledObject
    binding: Binding
    store: MetricStore = field(default_factory=MetricStore)

    def metric(self, name: str) -> str:
        return next(b.metric_name for b in self.binding.triggers if b.trigger.name == name)

    def read(self, at: datetime = NOW, **values: float) -> None:
        for name, value in values.items():
            self.store.record_value(self.so.ref, self.metric(name), value, value > 0, at)

    def read_all(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.store.record_value(self.so.ref, self.metric(name), value, value > 0, NOW)

    def fail(self, name: str, times: int = 1) -> None:
        for _ in range(times):
            self.store.record_error(self.so.ref, self.metric(name), "connection refused")

    @property
    def composed(self) -> Composed:
        found = self.store.composite(self.so.ref)
        assert found is not None
        return found

    def served(self, metric: str = COMPOSITE) -> float:
        body = json.loads(self.store.answer("apps", "mixer", metric))
        return parse_quantity(body["items"][0]["value"])

    def refused(self) -> str:
        with pytest.raises(ServiceUnavailable) as caught:
            self.store.answer("apps", "mixer", COMPOSITE)
        return str(caught.value)

    def decide(self, current: int, last_active: datetime | None = None) -> Any:
        states = trigger_states(self.store, self.so.ref, self.binding.triggers)
        return decide(self.so, current, states, last_active, NOW, self.composed)


def mixer(
    formula: str = "(a + b) / 2",
    *,
    fallback: dict[str, Any] | None = None,
    current: int = 1,
    triggers: tuple[dict[str, Any], ...] = (api("a"), api("b")),
    **modifiers: str,
) -> Mixer:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "mixer"},
        "maxReplicaCount": 20,
        "cooldownPeriod": 60,
        "triggers": list(triggers),
        "advanced": {"scalingModifiers": {"formula": formula, "target": "5", **modifiers}},
    }
    if fallback is not None:
        spec["fallback"] = fallback
    meta = {"name": "mixer", "namespace": "apps", "creationTimestamp": CREATED.isoformat()}
    so = parse_scaled_object({"kind": "ScaledObject", "metadata": meta, "spec": spec})
    binding = bind_all(so, Inventory())
    m = Mixer(so, binding)
    m.store.register(so.ref, [b.metric_name for b in binding.triggers], binding.composite)
    if so.fallback is not None:
        set_fallbacks(m.store, so, binding.triggers, current)
    return m


# Served from memory, after each reading.


def test_the_composite_is_the_formula_over_the_latest_values() -> None:
    m = mixer()
    with pytest.raises(ServiceUnavailable, match="composite-metric has no value yet"):
        m.store.answer("apps", "mixer", COMPOSITE)
    m.read(a=12)
    assert m.composed.outcome.waiting  # b has not been read yet
    m.read(NOW + timedelta(seconds=3), b=4)
    assert m.served() == 8
    assert m.composed.outcome.inputs == (("a", 12.0), ("b", 4.0))
    assert m.composed.reading.measured_at == NOW + timedelta(seconds=3)
    m.read(a=20)  # one trigger read again: composed again with b's latest
    assert m.served() == 12
    assert m.served(m.metric("a")) == 20 and m.served(m.metric("b")) == 4  # still served


def test_the_answer_is_an_external_metric_value_list_named_composite_metric() -> None:
    m = mixer()
    m.read(a=1.5, b=1.5)
    body = json.loads(m.store.answer("apps", "mixer", "Composite-Metric"))
    assert body["kind"] == "ExternalMetricValueList"
    assert [(i["metricName"], i["value"]) for i in body["items"]] == [(COMPOSITE, "1500m")]


def test_a_trigger_the_formula_does_not_read_still_counts_when_it_fails() -> None:
    m = mixer("a * 2", triggers=(api("a"), api("b"), api(None)))
    m.read(a=3, b=1)
    unnamed = m.binding.triggers[2].metric_name
    m.store.record_value(m.so.ref, unnamed, 7, True, NOW)
    assert m.served() == 6
    m.store.record_error(m.so.ref, unnamed, "timeout")
    assert f"{unnamed} failing: timeout" in m.refused()


@pytest.mark.parametrize(
    ("formula", "values", "shown"),
    [
        ("a / b", {"a": 0, "b": 0}, 'formula "a / b" with a=0, b=0 gave NaN: not served'),
        ("a / b", {"a": 1, "b": 0}, 'formula "a / b" with a=1, b=0 gave +Inf: not served'),
        ("-a / b", {"a": 1, "b": 0}, 'formula "-a / b" with a=1, b=0 gave -Inf: not served'),
    ],
)
def test_nan_and_infinities_are_never_served(
    formula: str, values: dict[str, float], shown: str
) -> None:
    m = mixer(formula)
    m.read_all(values)
    assert m.refused() == f"metric:{COMPOSITE} encountered error: {shown}"
    assert m.decide(current=3).active is None  # unknown: never a scale to zero
    m.read(b=2)
    sign = -1 if formula.startswith("-") else 1
    assert m.served() == max(0, sign * values["a"] / 2)  # below 0 served as 0, as in KEDA


def test_a_failing_trigger_makes_the_composite_an_error_the_hpa_holds_on() -> None:
    m = mixer()
    m.read(a=12, b=4)
    m.fail("b")
    assert m.refused() == (
        f"metric:{COMPOSITE} encountered error: {m.metric('b')} failing: connection refused"
    )
    assert m.composed.reading.value == 8  # the last good value, kept but not served
    decision = m.decide(current=2)
    assert (decision.active, decision.replicas) == (None, None)
    assert "not scaling down while a trigger is unknown" in decision.reason


# Activation: the composite value against activationTarget, strictly.


@pytest.mark.parametrize(("a", "b", "active"), [(3, 1, False), (3, 1.2, True), (0, 0, False)])
def test_active_when_the_composite_is_strictly_above_the_activation_target(
    a: float, b: float, active: bool
) -> None:
    m = mixer(activationTarget="2")
    m.read(a=a, b=b)
    assert m.composed.reading.active is active
    # a trigger's own activity (a > 0) no longer counts
    assert m.decide(current=0).active is active


def test_active_scales_from_zero_and_inactive_scales_to_zero_after_the_cooldown() -> None:
    m = mixer(activationTarget="2")
    m.read(a=4, b=4)
    up = m.decide(current=0)
    assert (up.replicas, up.reason) == (1, "composite-metric 4 > 2")
    m.read(a=2, b=2)
    early = m.decide(current=3, last_active=NOW - timedelta(seconds=30))
    assert (early.active, early.replicas, early.cooldown_left) == (False, None, 30)
    down = m.decide(current=3, last_active=NOW - timedelta(seconds=61))
    assert (down.replicas, down.reason) == (0, "composite-metric 2 <= 2")


def test_the_hpa_computes_from_the_composite() -> None:
    m = mixer()
    m.read(a=40, b=22)  # 31 against a target of 5 per replica
    states = trigger_states(m.store, m.so.ref, m.binding.triggers)
    proposal = hpa_proposal(m.so, 2, states, m.composed)
    assert proposal is not None
    assert (proposal.replicas, proposal.why) == (7, "composite-metric: ceil(31 / 5) = 7")
    m.read(a=400)
    capped = hpa_proposal(m.so, 2, states, m.composed)
    assert capped is not None and capped.replicas == 20 and capped.why.endswith("bounded to 20")


def test_the_hpa_computes_a_value_target_times_the_replicas() -> None:
    m = mixer("a", metricType="Value")
    m.read(a=15, b=0)
    states = trigger_states(m.store, m.so.ref, m.binding.triggers)
    proposal = hpa_proposal(m.so, 2, states, m.composed)
    assert proposal is not None and proposal.replicas == 6  # ceil(2 x 15 / 5)


# Classic fallback: the composite serves target x R once any trigger is past the threshold.

STATIC = {"failureThreshold": 2, "replicas": 6}


def test_classic_fallback_serves_target_times_replicas_past_the_threshold() -> None:
    m = mixer(fallback=STATIC)
    m.read(a=12, b=4)
    m.fail("a", times=2)  # at the threshold: still an error
    assert "failing: connection refused" in m.refused()
    m.fail("a")
    assert m.served() == 30  # 5 x 6: the HPA computes 6
    assert m.composed.outcome.fallback == f"{m.metric('a')} failing past failureThreshold 2"
    assert m.composed.outcome.inputs == ()  # the formula is not evaluated
    decision = m.decide(current=0)
    assert (decision.active, decision.replicas) == (True, 5)  # a fallback counts as active
    m.read(a=2)
    assert m.served() == 3  # recovered: the formula again


@pytest.mark.parametrize(
    ("fallback", "metric_type", "current", "expected"),
    [
        (STATIC, "AverageValue", 3, 30),
        (STATIC, "Value", 3, 10),  # the HPA: ceil(3 x 10 / 5) = 6
        ({**STATIC, "behavior": "currentReplicas"}, "AverageValue", 4, 20),
        ({**STATIC, "behavior": "currentReplicasIfHigher"}, "AverageValue", 4, 30),
        ({**STATIC, "behavior": "currentReplicasIfLower"}, "AverageValue", 4, 20),
    ],
)
def test_classic_fallback_values(
    fallback: dict[str, Any], metric_type: str, current: int, expected: float
) -> None:
    m = mixer(fallback=fallback, current=current, metricType=metric_type)
    m.read(a=1, b=1)
    m.fail("b", times=3)
    assert m.served() == expected


def test_classic_fallback_of_a_value_metric_at_zero_replicas_is_an_error() -> None:
    m = mixer(fallback=STATIC, current=0, metricType="Value")
    m.read(a=1, b=1)
    m.fail("b", times=3)
    assert "the fallback needs a replica" in m.refused()


# fallback.behavior: scalingModifiers: a trigger past the threshold is nil in the formula.

PER_TRIGGER = {"failureThreshold": 1, "replicas": 4, "behavior": "scalingModifiers"}


def test_a_trigger_past_the_threshold_is_nil_and_the_formula_routes_around_it() -> None:
    m = mixer("a ?? b ?? 8", fallback=PER_TRIGGER, activationTarget="5")
    m.read(a=12, b=3)
    assert m.served() == 12
    m.fail("a")  # at the threshold: the error propagates
    assert "failing: connection refused" in m.refused()
    m.fail("a")
    assert m.served() == 3
    assert m.composed.outcome.inputs == (("a", None), ("b", 3.0))
    # 3 <= 5 with a trigger failing: unknown, not inactive (KEDA: inactive)
    decision = m.decide(current=2, last_active=NOW - timedelta(hours=1))
    assert (decision.active, decision.replicas) == (None, None)
    m.fail("b", times=2)
    assert m.served() == 8
    assert m.decide(current=0).replicas == 2  # ceil(8 / 5)


def test_a_nil_result_serves_fallback_replicas_times_target() -> None:
    m = mixer("a ?? b", fallback=PER_TRIGGER)
    m.read(a=1, b=1)
    m.fail("a", times=2)
    m.fail("b", times=2)
    assert m.served() == 20  # 4 x 5
    outcome = m.composed.outcome
    assert outcome.result is None and outcome.fallback is not None
    assert "gave nil" in outcome.fallback
    assert m.decide(current=0).replicas == 4  # in fallback: active, 20 / 5


def test_without_a_fallback_a_nil_result_is_an_error() -> None:
    m = mixer("a ?? nil", fallback=None)
    m.read(a=1, b=1)
    assert m.served() == 1
    m2 = mixer("nil ?? nil")
    m2.read(a=1, b=1)
    assert "gave nil: there is no fallback value to serve" in m2.refused()


# The status and explain.


def test_status_under_scaling_modifiers() -> None:
    m = mixer(fallback=STATIC)
    m.read(a=12, b=4)
    states = trigger_states(m.store, m.so.ref, m.binding.triggers)
    decision = m.decide(current=1)
    status = status_patch(
        m.so,
        problem=None,
        states=states,
        decision=decision,
        original_replicas=1,
        composite=m.composed,
    ).to_json()
    assert status["compositeScalerName"] == COMPOSITE
    assert status["triggersActivity"] == {COMPOSITE: {"isActive": True}}
    assert status["externalMetricNames"] == [m.metric("a"), m.metric("b")]
    m.fail("a", times=3)
    states = trigger_states(m.store, m.so.ref, m.binding.triggers)
    after = status_patch(
        m.so,
        problem=None,
        states=states,
        decision=m.decide(current=1),
        original_replicas=1,
        composite=m.composed,
    )
    conditions = {c.type: c.status for c in after.conditions}
    assert (conditions["Fallback"], conditions["Active"]) == ("True", "True")
    assert after.triggers_activity == {COMPOSITE: True}


def test_explain_shows_the_formula_every_input_and_the_hpa_on_the_composite() -> None:
    m = mixer("max(a ?? 0, b) / 2", fallback=PER_TRIGGER, activationTarget="1")
    inventory = Inventory(scaled_objects={m.so.ref: m.so})
    adapter = build(Settings(), dry_run=False, inventory=inventory)
    ref = m.so.ref
    for b, value in zip(adapter.poller.triggers(ref), (30, 14), strict=True):
        adapter.store.record_value(ref, b.metric_name, value, True, NOW)
    (report,) = reports(adapter)
    text = render([report])
    assert "  composite-metric = max(a ?? 0, b) / 2  (target 5, AverageValue)" in text
    assert f"    a = 30  ({m.metric('a')})" in text and f"    b = 14  ({m.metric('b')})" in text
    assert "    = 15: activation 15 > 1; HPA ceil(15 / 5) = 3" in text
    # Activated straight to 3, where the HPA keeps it.
    assert (
        "  HPA: keda-hpa-mixer would compute 3: composite-metric: 15/(5 * 3) within 10%: keep 3"
        in text
    )
    (data,) = as_dicts([report])
    composite: dict[str, Any] = data["composite"]  # type: ignore[assignment]
    assert composite["served"] == 15 and composite["replicas"] == 3
    assert [(i["name"], i["value"]) for i in composite["inputs"]] == [("a", 30), ("b", 14)]
    triggers: list[dict[str, Any]] = data["triggers"]  # type: ignore[assignment]
    assert [t["replicas"] for t in triggers] == [None, None]  # not read by the HPA

    for _ in range(2):
        adapter.store.record_error(ref, m.metric("a"), "refused")
    (report,) = reports(adapter)
    text = render([report])
    assert f"    a = in fallback: nil  ({m.metric('a')})" in text
    assert "    = 7: activation 7 > 1; HPA ceil(7 / 5) = 2" in text


# The series, through the poller.


@dataclass(frozen=True)
class Answer:
    """A query whose answer a test sets."""

    name: str
    values: dict[str, float | None] = field(compare=False, hash=False)

    async def run(self, clients: Clients) -> float:
        value = self.values[self.name]
        if value is None:
            raise SourceResponseError("down")
        return value

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, kw_only=True)
class Echo(Scaler[float]):
    def measure(self, answer: float) -> float:
        return answer


def sample(telemetry: Telemetry, series: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(series, labels)


async def test_the_series_name_the_composite_as_keda_does() -> None:
    m = mixer(activationTarget="2")
    values: dict[str, float | None] = {"a": 3, "b": 5}
    echoed: list[BoundTrigger] = []
    for b in m.binding.triggers:
        assert b.trigger.name is not None
        query = Answer(b.trigger.name, values)
        scaler = Echo(query=query, metric_name="x", target=1, activation_target=0, value_label="v")
        echoed.append(replace(b, scaler=scaler))
    telemetry = Telemetry()
    poller = Poller(m.store, Clients(), telemetry, rng=random.Random(1))
    poller.set_triggers(m.so.ref, echoed, m.binding.composite)
    try:
        for b in echoed:
            await poller.poll(b.scaler.query)
    finally:
        await poller.clients.aclose()
    labels = {
        "namespace": "apps",
        "scaledObject": "mixer",
        "scaler": COMPOSITE,
        "metric": COMPOSITE,
        "triggerIndex": "0",
        "type": "scaledobject",
    }
    assert sample(telemetry, "keda_scaler_metrics_value", **labels) == 4
    assert sample(telemetry, "keda_scaler_active", **labels) == 1
    first = {**labels, "scaler": "a", "metric": echoed[0].metric_name}
    assert sample(telemetry, "keda_scaler_metrics_value", **first) == 3
    assert sample(telemetry, "keda_scaler_active", **first) is None  # KEDA: only the composite's

    values["b"] = None
    await poller.poll(echoed[1].scaler.query)
    assert sample(telemetry, "keda_scaler_active", **labels) == 0
    assert sample(telemetry, "keda_scaler_metrics_value", **labels) == 4  # last value kept
    poller.remove(m.so.ref)
    assert sample(telemetry, "keda_scaler_metrics_value", **labels) is None
