"""scalingModifiers compiled when a ScaledObject is bound: every problem named by its field,
a formula's with its position, beside the triggers' own problems; and the per-trigger
targets that KEDA stops requiring of a trigger that only feeds a formula."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.composite import Composite
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import Binding, bind_all
from metrics_adapter.model.keda import parse_scaled_object
from scalers.errors import ConfigError

M = "advanced.scalingModifiers"


def api(name: str | None = None, **metadata: str) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": "metrics-api",
        "metadata": {"url": "http://stats:8080/q", "valueLocation": "depth", **metadata},
    }
    if name is not None:
        trigger["name"] = name
    return trigger


CPU = {
    "type": "cpu",
    "name": "cpu_metric",
    "metricType": "Utilization",
    "metadata": {"value": "60"},
}


def doc(*triggers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "mixer", "namespace": "apps"},
        "spec": {"scaleTargetRef": {"name": "mixer"}, "triggers": list(triggers), **spec},
    }


def modified(*triggers: dict[str, Any], fallback: Any = None, **modifiers: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"advanced": {"scalingModifiers": modifiers}}
    if fallback is not None:
        spec["fallback"] = fallback
    return doc(*(triggers or (api("a"), api("b"))), **spec)


def bound(document: dict[str, Any]) -> Binding:
    return bind_all(parse_scaled_object(document), Inventory())


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        bound(document)
    assert caught.value.subject == "ScaledObject apps/mixer"
    return [str(p) for p in caught.value.problems]


def composite(document: dict[str, Any]) -> Composite:
    found = bound(document).composite
    assert found is not None
    return found


def test_a_formula_is_compiled_once_with_its_target_and_inputs() -> None:
    c = composite(modified(formula="max(a, b) / 2", target="5", activationTarget="1.5"))
    assert (c.target, c.activation_target, c.metric_type) == (5.0, 1.5, "AverageValue")
    assert c.formula.inputs == ("a", "b")
    assert dict(c.variables) == {"a": "s0-metric-api-depth", "b": "s1-metric-api-depth"}
    assert c.formula.evaluate({"a": 12, "b": 4}) == 6


def test_defaults_and_value_type() -> None:
    c = composite(modified(formula="a", target="2.5", metricType="Value"))
    assert (c.target, c.activation_target, c.metric_type) == (2.5, 0.0, "Value")
    assert dict(c.variables) == {"a": "s0-metric-api-depth"}  # b is polled, not read


def test_no_modifiers_no_composite() -> None:
    assert bound(doc(api("a", targetValue="2"), api(targetValue="2"))).composite is None


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("a + x", f"{M}.formula: unknown name x (1:11)"),  # position in KEDA's float(…)
        ("a +", f'{M}.formula: unexpected token Bracket(")") (1:10)'),  # KEDA's wrapper
        ("a + cpu_metric", f"{M}.formula: unknown name cpu_metric (1:11)"),  # #6938
        ("a % 2", f"{M}.formula: invalid operation: % (mismatched types float64 and int) (1:9)"),
    ],
)
def test_a_formula_error_names_the_field_and_position(formula: str, expected: str) -> None:
    assert problems(modified(api("a"), CPU, formula=formula, target="2")) == [expected]


def test_an_unnamed_trigger_cannot_be_read() -> None:
    found = problems(modified(api("a"), api(), formula="a + s1", target="2"))
    assert found == [f"{M}.formula: unknown name s1 (1:11)"]


@pytest.mark.parametrize(
    ("modifiers", "expected"),
    [
        ({"target": "2"}, [f"{M}.formula: is required"]),  # by the parser
        ({"formula": "a"}, [f"{M}.target: is required with a formula"]),
        ({"formula": "a", "target": "two"}, [f'{M}.target: "two" is not a number']),
        ({"formula": "a", "target": "0"}, [f'{M}.target: "0" must be greater than 0']),
        ({"formula": "a", "target": "-1"}, [f'{M}.target: "-1" must be greater than 0']),
        ({"formula": "a", "target": "NaN"}, [f'{M}.target: "NaN" is not a number']),
        ({"formula": "a", "target": " 2"}, [f'{M}.target: " 2" is not a number']),  # Go's too
        (
            {"formula": "a", "target": "2", "activationTarget": "some"},
            [f'{M}.activationTarget: "some" is not a number'],
        ),
        (
            {"formula": "a + zz", "target": "x", "activationTarget": "y"},
            [
                f"{M}.formula: unknown name zz (1:11)",
                f'{M}.target: "x" is not a number',
                f'{M}.activationTarget: "y" is not a number',
            ],
        ),
    ],
)
def test_every_problem_of_the_modifiers_at_once(
    modifiers: dict[str, str], expected: list[str]
) -> None:
    assert problems(modified(**modifiers)) == expected


def test_utilization_is_refused_by_the_parser() -> None:
    with pytest.raises(ConfigError, match=rf'{M}\.metricType: "Utilization" is not one of'):
        parse_scaled_object(modified(formula="a", target="2", metricType="Utilization"))


def test_a_negative_activation_target_is_a_number() -> None:
    assert (
        composite(modified(formula="a", target="1", activationTarget="-2")).activation_target == -2
    )


def test_the_scaling_modifiers_fallback_needs_a_formula() -> None:
    fallback = {"failureThreshold": 3, "replicas": 2, "behavior": "scalingModifiers"}
    assert problems(doc(api("a", targetValue="2"), fallback=fallback)) == [
        'fallback.behavior: "scalingModifiers" needs advanced.scalingModifiers.formula: failed '
        "triggers are given to it as nil"
    ]
    fine = modified(formula="a ?? 3", target="2", fallback=fallback)
    assert bound(fine).composite is not None


def test_modifier_problems_come_with_the_triggers_problems() -> None:
    bad_trigger = api("a", targetValue="ten")
    found = problems(modified(bad_trigger, api("b"), formula="a + c", target="2"))
    assert found == [
        'triggers[0].metadata.targetValue: "ten" is not a number',
        f"{M}.formula: unknown name c (1:11)",
    ]


def test_a_trigger_that_failed_to_bind_is_still_a_name() -> None:
    found = problems(modified(api("a", targetValue="ten"), api("b"), formula="a + b", target="2"))
    assert found == ['triggers[0].metadata.targetValue: "ten" is not a number']


def test_a_target_is_optional_for_a_trigger_that_feeds_a_formula() -> None:
    # KEDA builds metrics-api "as metric source" under modifiers: targetValue may be unset.
    c = bound(modified(formula="a + b", target="4"))
    assert [b.scaler.target for b in c.triggers] == [0.0, 0.0]
    assert problems(doc(api("a"))) == ["triggers[0].metadata.targetValue: is required"]
    given = bound(modified(api("a", targetValue="3"), api("b"), formula="a", target="4"))
    assert given.triggers[0].scaler.target == 3


def test_prometheus_still_needs_its_threshold_as_in_keda() -> None:
    prometheus = {
        "type": "prometheus",
        "name": "p",
        "metadata": {"serverAddress": "http://prom:9090", "query": "up"},
    }
    found = problems(modified(prometheus, formula="p", target="4"))
    assert found == ["triggers[0].metadata.threshold: is required"]


def test_empty_scaling_modifiers_are_not_in_use() -> None:
    # KEDA's IsUsingModifiers: the zero value is not in use, and nothing is required of it.
    found = bound(doc(api("a", targetValue="2"), advanced={"scalingModifiers": {}}))
    assert found.composite is None
