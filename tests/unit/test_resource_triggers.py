"""cpu and memory triggers: parsed and checked like any other, never polled."""

from __future__ import annotations

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind, bind_all
from metrics_adapter.model.keda import parse_scaled_object
from scalers import resource
from scalers.errors import ConfigError, Problems
from scalers.params import TriggerInputs

PATH = "triggers[0].metadata"


def target(kind: str, metric_type: str | None, **metadata: str) -> tuple[object, list[str]]:
    problems = Problems()
    found = resource.parse(kind, metric_type, TriggerInputs(metadata, path=PATH), problems)
    return found, [str(p) for p in problems]


@pytest.mark.parametrize(
    ("kind", "metric_type", "metadata", "expected"),
    [
        (
            "cpu",
            "Utilization",
            {"value": "70"},
            resource.ResourceTarget("cpu", "Utilization", "70"),
        ),
        (
            "memory",
            "AverageValue",
            {"value": "512Mi"},
            resource.ResourceTarget("memory", "AverageValue", "512Mi"),
        ),
        (
            "cpu",
            "AverageValue",
            {"value": "500m", "containerName": "app"},
            resource.ResourceTarget("cpu", "AverageValue", "500m", "app"),
        ),
        (  # KEDA reads it with Go's ParseInt
            "cpu",
            "Utilization",
            {"value": "+60"},
            resource.ResourceTarget("cpu", "Utilization", "60"),
        ),
    ],
)
def test_valid_targets(
    kind: str, metric_type: str, metadata: dict[str, str], expected: resource.ResourceTarget
) -> None:
    assert target(kind, metric_type, **metadata) == (expected, [])


@pytest.mark.parametrize(
    ("metric_type", "metadata", "problem"),
    [
        ("Utilization", {}, f"{PATH}.value: is required"),
        (
            "Utilization",
            {"value": "70%"},
            f'{PATH}.value: "70%" must be a whole percentage above 0 for Utilization',
        ),
        (
            "Utilization",
            {"value": "0"},
            f'{PATH}.value: "0" must be a whole percentage above 0 for Utilization',
        ),
        ("AverageValue", {"value": "lots"}, f'{PATH}.value: "lots" is not a Kubernetes quantity'),
        (
            "Utilization",
            {"value": "3000000000"},
            f'{PATH}.value: "3000000000" must be a whole percentage above 0 for Utilization',
        ),
        (  # KEDA v2.18 removed it: any value is refused, as its deprecated= tag does
            "AverageValue",
            {"value": "60", "type": "Utilization"},
            f"{PATH}.type: was removed in KEDA v2.18; set the trigger's metricType "
            "(Utilization or AverageValue) instead",
        ),
        (  # KEDA: "unknown metric type: , allowed values are 'Utilization' or 'AverageValue'"
            None,
            {"value": "50"},
            "triggers[0].metricType: is required for cpu and memory triggers "
            "(Utilization or AverageValue)",
        ),
        (
            "Value",
            {"value": "1"},
            'triggers[0].metricType: "Value" is not valid for cpu or memory'
            " (Utilization, AverageValue)",
        ),
    ],
)
def test_invalid_targets(metric_type: str | None, metadata: dict[str, str], problem: str) -> None:
    assert target("cpu", metric_type, **metadata) == (None, [problem])


def so(triggers: list[dict[str, object]], min_replicas: int = 1) -> dict[str, object]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"name": "web"},
            "minReplicaCount": min_replicas,
            "triggers": triggers,
        },
    }


def test_resource_triggers_are_checked_by_bind_but_not_polled() -> None:
    parsed = parse_scaled_object(
        so([{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}])
    )
    assert bind(parsed, Inventory()) == ()
    bad = parse_scaled_object(
        so([{"type": "memory", "metricType": "AverageValue", "metadata": {"value": "lots"}}])
    )
    with pytest.raises(ConfigError, match=r'triggers\[0\]\.metadata\.value: "lots"'):
        bind(bad, Inventory())


def test_bind_all_gives_the_hpa_the_resource_targets_it_parsed() -> None:
    parsed = parse_scaled_object(
        so(
            [
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
                {
                    "type": "memory",
                    "metricType": "AverageValue",
                    "metadata": {"value": "512Mi", "containerName": "app"},
                },
            ]
        )
    )
    binding = bind_all(parsed, Inventory())
    assert binding.triggers == ()
    assert binding.resources == (
        resource.ResourceTarget("cpu", "Utilization", "70"),
        resource.ResourceTarget("memory", "AverageValue", "512Mi", "app"),
    )


def test_only_resource_triggers_cannot_scale_from_zero() -> None:
    with pytest.raises(ConfigError, match="minReplicaCount: 0 needs a trigger that is not cpu"):
        parse_scaled_object(
            so(
                [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}],
                min_replicas=0,
            )
        )
