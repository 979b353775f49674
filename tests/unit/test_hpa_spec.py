"""The HPA a ScaledObject becomes (keda-semantics §2, kedacore/keda controllers/keda/hpa.go),
and when an existing one must be rewritten."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from metrics_adapter import __version__
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind, bind_all
from metrics_adapter.control.hpa import build_hpa, differences, needs_update
from metrics_adapter.kube.autoscaling import HorizontalPodAutoscaler
from metrics_adapter.model.keda import ScaledObject, ScalingModifiers, parse_scaled_object
from scalers.errors import ConfigError

UID = "0f6c1b7e-4a7e-4c55-9a57-3b1d9a1f0c11"
API: dict[str, Any] = {
    "type": "metrics-api",
    "metadata": {"url": "http://127.0.0.1/v", "valueLocation": "v"},
}
API_METRIC = "metric-api-v"
CPU = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
MEMORY = {
    "type": "memory",
    "metricType": "AverageValue",
    "metadata": {"value": "512Mi", "containerName": "app"},
}
SELECTOR = {"matchLabels": {"scaledobject.keda.sh/name": "echo"}}
DEFAULT_LABELS = {
    "app.kubernetes.io/name": "keda-hpa-echo",
    "app.kubernetes.io/version": __version__,
    "app.kubernetes.io/part-of": "echo",
    "app.kubernetes.io/managed-by": "keda-operator",
}


def api(target: str = "10", **trigger: Any) -> dict[str, Any]:
    return {**API, "metadata": {**API["metadata"], "targetValue": target}, **trigger}


def prometheus(threshold: str, **trigger: Any) -> dict[str, Any]:
    metadata = {"serverAddress": "http://127.0.0.1:9090", "query": "sum(up)"}
    return {"type": "prometheus", "metadata": {**metadata, "threshold": threshold}, **trigger}


def document(
    *triggers: dict[str, Any],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "echo", "namespace": "apps"}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    body = {"scaleTargetRef": {"name": "worker"}, "triggers": list(triggers or [api()]), **spec}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": body,
    }


def built(doc: dict[str, Any]) -> HorizontalPodAutoscaler:
    so = parse_scaled_object(doc)
    binding = bind_all(so, Inventory())
    return build_hpa(so, binding.triggers, binding.resources, uid=UID)


def build(doc: dict[str, Any]) -> dict[str, Any]:
    return built(doc).to_json()


def external(name: str, target: dict[str, str]) -> dict[str, Any]:
    metric = {"name": name, "selector": SELECTOR}
    return {"type": "External", "external": {"metric": metric, "target": target}}


def averaging(quantity: str) -> dict[str, str]:
    return {"type": "AverageValue", "averageValue": quantity}


# What is built.


def test_the_defaults() -> None:
    assert build(document()) == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": "keda-hpa-echo",
            "namespace": "apps",
            "labels": DEFAULT_LABELS,
            "ownerReferences": [
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "ScaledObject",
                    "name": "echo",
                    "uid": UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 100,
            "metrics": [external(f"s0-{API_METRIC}", averaging("10"))],
        },
    }


@pytest.mark.parametrize(
    ("spec", "name", "target", "bounds"),
    [
        ({}, "keda-hpa-echo", ("apps/v1", "Deployment", "worker"), (1, 100)),
        ({"minReplicaCount": 0, "maxReplicaCount": 5}, "keda-hpa-echo", None, (1, 5)),
        ({"minReplicaCount": 3, "maxReplicaCount": 3}, "keda-hpa-echo", None, (3, 3)),
        (
            {
                "scaleTargetRef": {"name": "db", "apiVersion": "apps/v1", "kind": "StatefulSet"},
                "advanced": {"horizontalPodAutoscalerConfig": {"name": "db-hpa"}},
                "minReplicaCount": 2,
            },
            "db-hpa",
            ("apps/v1", "StatefulSet", "db"),
            (2, 100),
        ),
    ],
    ids=["defaults", "min-0-is-1", "min-3", "custom-name-and-target"],
)
def test_name_target_and_replica_bounds(
    spec: dict[str, Any],
    name: str,
    target: tuple[str, str, str] | None,
    bounds: tuple[int, int],
) -> None:
    built = build(document(**spec))
    assert built["metadata"]["name"] == name
    assert built["metadata"]["labels"]["app.kubernetes.io/name"] == name
    if target is not None:
        api_version, kind, target_name = target
        ref = {"apiVersion": api_version, "kind": kind, "name": target_name}
        assert built["spec"]["scaleTargetRef"] == ref
    assert (built["spec"]["minReplicas"], built["spec"]["maxReplicas"]) == bounds


def test_the_name_label_is_cut_to_63_characters_ending_in_a_letter_or_digit() -> None:
    doc = document()
    doc["metadata"]["name"] = "a" * 53 + "-b" + "c" * 10  # keda-hpa- + 65: char 63 is "-"
    labels = build(doc)["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "keda-hpa-" + "a" * 53
    assert labels["app.kubernetes.io/part-of"] == doc["metadata"]["name"]


def test_labels_and_annotations() -> None:
    annotations = {
        "scaledobject.keda.sh/hpa-excluded-labels": "secret,  internal",
        "example.com/owner": "team-a",
    }
    labels = {
        "team": "a",
        "secret": "s",
        "internal": "i",
        "app.kubernetes.io/part-of": "shop",  # the ScaledObject's own labels win, as in KEDA
    }
    metadata = build(document(labels=labels, annotations=annotations))["metadata"]
    assert metadata["labels"] == {
        **DEFAULT_LABELS,
        "app.kubernetes.io/part-of": "shop",
        "team": "a",
    }
    assert metadata["annotations"] == annotations


@pytest.mark.parametrize(
    ("trigger", "metric"),
    [
        (api("10"), external(f"s0-{API_METRIC}", averaging("10"))),
        (api("1500"), external(f"s0-{API_METRIC}", averaging("1500"))),
        (api("2000"), external(f"s0-{API_METRIC}", averaging("2k"))),
        (prometheus("0.5"), external("s0-prometheus", averaging("500m"))),
        (prometheus("2.25"), external("s0-prometheus", averaging("2250m"))),
        (prometheus("12.5"), external("s0-prometheus", averaging("12500m"))),
        (prometheus("0.0004"), external("s0-prometheus", averaging("0"))),
        (
            prometheus("0.5", metricType="Value"),
            external("s0-prometheus", {"type": "Value", "value": "500m"}),
        ),
        (
            {
                "type": "nats-jetstream",
                "metadata": {
                    "natsServerMonitoringEndpoint": "127.0.0.1:8222",
                    "account": "$G",
                    "stream": "JOBS",
                    "consumer": "w",
                    "lagThreshold": "10",
                },
            },
            external("s0-nats-jetstream-JOBS", averaging("10")),
        ),
    ],
    ids=[
        "integer",
        "1500",
        "2000-is-2k",
        "milli",
        "milli-2.25",
        "milli-12.5",
        "below-a-milli",
        "value-type",
        "nats-lag",
    ],
)
def test_external_metric_targets(trigger: dict[str, Any], metric: dict[str, Any]) -> None:
    assert build(document(trigger))["spec"]["metrics"] == [metric]


@pytest.mark.parametrize(
    ("trigger", "metric"),
    [
        (
            CPU,
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60},
                },
            },
        ),
        (
            {"type": "memory", "metricType": "AverageValue", "metadata": {"value": "512Mi"}},
            {"type": "Resource", "resource": {"name": "memory", "target": averaging("512Mi")}},
        ),
        (
            MEMORY,
            {
                "type": "ContainerResource",
                "containerResource": {
                    "name": "memory",
                    "container": "app",
                    "target": averaging("512Mi"),
                },
            },
        ),
        (
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "+70"}},
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            },
        ),
    ],
    ids=["cpu-utilization", "memory-average-value", "container-resource", "signed-percentage"],
)
def test_resource_metrics(trigger: dict[str, Any], metric: dict[str, Any]) -> None:
    metrics = build(document(api(), trigger))["spec"]["metrics"]
    assert [m for m in metrics if m["type"] != "External"] == [metric]


def test_metrics_are_sorted_by_type_string_and_stay_in_trigger_order_within_a_type() -> None:
    doc = document(CPU, api("10"), MEMORY, prometheus("0.5"), api("20"))
    metrics = build(doc)["spec"]["metrics"]
    assert [m["type"] for m in metrics] == [
        "ContainerResource",
        "External",
        "External",
        "External",
        "Resource",
    ]
    assert [m["external"]["metric"]["name"] for m in metrics[1:4]] == [
        f"s1-{API_METRIC}",
        "s3-prometheus",
        f"s4-{API_METRIC}",
    ]


def test_the_hpas_resource_targets_report_bad_cpu_and_memory_triggers_as_bind_does() -> None:
    so = parse_scaled_object(
        document(api(), {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "x"}})
    )
    with pytest.raises(ConfigError) as from_bind:
        bind(so, Inventory())
    with pytest.raises(ConfigError) as here:
        bind_all(so, Inventory())
    assert str(here.value) == str(from_bind.value)
    assert "triggers[1].metadata.value" in str(here.value)


# Behavior and the pause annotations.

BEHAVIOR: dict[str, Any] = {
    "scaleDown": {
        "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}],
    },
    "scaleUp": {"selectPolicy": "Max"},
}


def with_behavior(
    behavior: dict[str, Any] | None, annotations: dict[str, str] | None = None
) -> ScaledObject:
    advanced = {"horizontalPodAutoscalerConfig": {"behavior": behavior}} if behavior else {}
    return parse_scaled_object(document(annotations=annotations, advanced=advanced))


def built_behavior(so: ScaledObject) -> Any:
    hpa: dict[str, Any] = build_hpa(so, bind(so, Inventory()), (), uid=UID).to_json()
    return hpa["spec"].get("behavior")


@pytest.mark.parametrize(
    ("behavior", "annotations", "expected"),
    [
        (None, {}, None),
        (BEHAVIOR, {}, BEHAVIOR),
        (
            BEHAVIOR,
            {"autoscaling.keda.sh/paused-scale-in": "true"},
            {**BEHAVIOR, "scaleDown": {**BEHAVIOR["scaleDown"], "selectPolicy": "Disabled"}},
        ),
        (
            BEHAVIOR,
            {"autoscaling.keda.sh/paused-scale-out": "true"},
            {**BEHAVIOR, "scaleUp": {"selectPolicy": "Disabled"}},
        ),
        (
            None,
            {
                "autoscaling.keda.sh/paused-scale-in": "true",
                "autoscaling.keda.sh/paused-scale-out": "1",
            },
            {"scaleDown": {"selectPolicy": "Disabled"}, "scaleUp": {"selectPolicy": "Disabled"}},
        ),
        (
            {"scaleUp": {"stabilizationWindowSeconds": 0}},
            {"autoscaling.keda.sh/paused-scale-in": "True"},
            {
                "scaleUp": {"stabilizationWindowSeconds": 0},
                "scaleDown": {"selectPolicy": "Disabled"},
            },
        ),
        # Go's ParseBool decides; a value it cannot parse counts as true, as in KEDA.
        (
            None,
            {"autoscaling.keda.sh/paused-scale-in": "yes"},
            {"scaleDown": {"selectPolicy": "Disabled"}},
        ),
        (None, {"autoscaling.keda.sh/paused-scale-in": "false"}, None),
        (None, {"autoscaling.keda.sh/paused-scale-out": "0"}, None),
        (BEHAVIOR, {"autoscaling.keda.sh/paused-scale-in": "F"}, BEHAVIOR),
    ],
    ids=[
        "none",
        "copied",
        "paused-scale-in",
        "paused-scale-out",
        "both-without-behavior",
        "scale-in-on-scale-up-only",
        "non-boolean-is-true",
        "false",
        "zero",
        "F",
    ],
)
def test_behavior_is_copied_with_the_pause_overlay(
    behavior: dict[str, Any] | None, annotations: dict[str, str], expected: Any
) -> None:
    so = with_behavior(behavior, annotations)
    before = copy.deepcopy(so.advanced.hpa_behavior)
    assert built_behavior(so) == expected
    assert so.advanced.hpa_behavior == before


def test_the_built_behavior_shares_nothing_with_the_scaled_object() -> None:
    so = with_behavior(BEHAVIOR)
    built = built_behavior(so)
    built["scaleDown"]["policies"][0]["value"] = 99
    built["scaleUp"]["selectPolicy"] = "Min"
    assert so.advanced.hpa_behavior is not None
    assert so.advanced.hpa_behavior.to_json() == BEHAVIOR


@pytest.mark.parametrize(("paused", "bounds"), [("3", (3, 3)), ("0", (1, 1)), ("+7", (7, 7))])
def test_paused_replicas_pins_both_bounds(paused: str, bounds: tuple[int, int]) -> None:
    annotations = {"autoscaling.keda.sh/paused-replicas": paused}
    spec = build(document(annotations=annotations, minReplicaCount=2, maxReplicaCount=9))["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == bounds


@pytest.mark.parametrize("paused", ["three", " 3", "1.5", "9999999999"])
def test_paused_replicas_that_is_not_an_int32_is_an_error(paused: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(document(annotations={"autoscaling.keda.sh/paused-replicas": paused}))
    assert "metadata.annotations.autoscaling.keda.sh/paused-replicas" in str(caught.value)
    assert "ScaledObject apps/echo" in str(caught.value)


def test_an_owner_reference_needs_a_uid() -> None:
    so = parse_scaled_object(document())
    with pytest.raises(ValueError, match="uid"):
        build_hpa(so, bind(so, Inventory()), (), uid="")


# scalingModifiers: the spec shape only.


def modified(**modifiers: str) -> dict[str, Any]:
    triggers = (api("10", name="a"), prometheus("0.5", name="b"), CPU, MEMORY)
    return document(*triggers, advanced={"scalingModifiers": {"formula": "a + b", **modifiers}})


@pytest.mark.parametrize(
    ("modifiers", "target"),
    [
        ({"target": "2"}, averaging("2")),
        ({"target": "2.5", "metricType": "Value"}, {"type": "Value", "value": "2500m"}),
        ({"target": "1.0005"}, averaging("1")),  # cut to milli units, not rounded, as hpa.go
        ({"target": "2000", "metricType": "AverageValue"}, averaging("2k")),
    ],
)
def test_scaling_modifiers_replace_every_external_metric_by_one_composite(
    modifiers: dict[str, str], target: dict[str, str]
) -> None:
    metrics = build(modified(**modifiers))["spec"]["metrics"]
    cpu = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
    }
    # hpa.go keeps Resource entries only (a ContainerResource is dropped) and appends the
    # composite metric after them.
    assert metrics == [cpu, external("composite-metric", target)]


@pytest.mark.parametrize("target", [None, "0", "-1", "abc", "NaN"])
def test_no_composite_metric_without_a_target_above_zero(target: str | None) -> None:
    doc = modified() if target is None else modified(target=target)
    so = parse_scaled_object(doc)
    # The binder refuses such an object, naming the target; the builder on its own keeps
    # hpa.go's rule, so it is given triggers bound without the modifiers.
    with pytest.raises(ConfigError, match=r"advanced\.scalingModifiers\.target"):
        bind_all(so, Inventory())
    binding = bind_all(
        replace(so, advanced=replace(so.advanced, scaling_modifiers=None)), Inventory()
    )
    hpa: dict[str, Any] = build_hpa(so, binding.triggers, binding.resources, uid=UID).to_json()
    metrics = hpa["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["ContainerResource", "External", "External", "Resource"]


def test_empty_scaling_modifiers_are_no_scaling_modifiers() -> None:
    # KEDA's IsUsingModifiers: a ScalingModifiers equal to the zero value is not in use.
    so = parse_scaled_object(document(api()))
    modifiers = ScalingModifiers(metric_type="")
    so = replace(so, advanced=replace(so.advanced, scaling_modifiers=modifiers))
    hpa: dict[str, Any] = build_hpa(so, bind(so, Inventory()), (), uid=UID).to_json()
    metrics = hpa["spec"]["metrics"]
    assert metrics == [external(f"s0-{API_METRIC}", averaging("10"))]


# Whether an existing HPA must be rewritten.

SERVER_DEFAULTED_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    },
    "scaleDown": {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    },
}


def as_stored(hpa: dict[str, Any]) -> dict[str, Any]:
    """``hpa`` as the API server returns it: server fields filled in, behavior defaulted."""
    stored = copy.deepcopy(hpa)
    stored["metadata"].update(
        uid="8e0b",
        resourceVersion="1234",
        creationTimestamp="2026-05-01T12:00:00Z",
        managedFields=[{"manager": "metrics-adapter", "operation": "Apply"}],
    )
    stored["metadata"]["labels"]["added-by-someone-else"] = "x"
    stored["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/note"] = "y"
    stored["spec"]["metrics"][0]["external"]["metric"]["selector"] = SELECTOR
    if "behavior" in stored["spec"]:
        behavior = stored["spec"]["behavior"]
        for direction, defaults in SERVER_DEFAULTED_BEHAVIOR.items():
            behavior[direction] = {**defaults, **behavior.get(direction, {})}
    stored["status"] = {"currentReplicas": 1, "desiredReplicas": 1, "conditions": []}
    return stored


def changed(hpa: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of ``hpa`` with the field at ``path`` set to ``value``, or removed for ``None``."""
    out = copy.deepcopy(hpa)
    *parents, last = path
    node: Any = out
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


DESIRED_HPA = built(
    document(
        api("10"),
        CPU,
        {"type": "memory", "metricType": "AverageValue", "metadata": {"value": "0.5Gi"}},
        labels={"team": "a"},
        annotations={"example.com/owner": "team-a"},
        advanced={
            "horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
            }
        },
    )
)
DESIRED = DESIRED_HPA.to_json()
STORED = as_stored(DESIRED)
EXTERNAL_TARGET = ("spec", "metrics", 0, "external", "target")
BEHAVIOR_DOWN = ("spec", "behavior", "scaleDown")


def test_an_hpa_as_the_server_stores_it_needs_no_update() -> None:
    assert differences(STORED, DESIRED_HPA) == []
    assert not needs_update(STORED, DESIRED_HPA)
    assert differences(DESIRED, DESIRED_HPA) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # The canonical quantities the server writes are the same targets.
        (("spec", "metrics", 2, "resource", "target", "averageValue"), "512Mi", None),
        ((*EXTERNAL_TARGET, "averageValue"), "10000m", None),
        ((*EXTERNAL_TARGET, "averageValue"), "11", "spec.metrics[0].external.target.averageValue"),
        ((*EXTERNAL_TARGET, "type"), "Value", "spec.metrics[0].external.target.type"),
        (
            ("spec", "metrics", 1, "resource", "target", "averageUtilization"),
            61,
            "spec.metrics[1].resource.target.averageUtilization",
        ),
        (("spec", "metrics", 2), None, "spec.metrics"),
        (("spec", "minReplicas"), 2, "spec.minReplicas"),
        (("spec", "maxReplicas"), 50, "spec.maxReplicas"),
        (("spec", "scaleTargetRef", "name"), "other", "spec.scaleTargetRef.name"),
        (
            (*BEHAVIOR_DOWN, "stabilizationWindowSeconds"),
            300,
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
        ),
        ((*BEHAVIOR_DOWN, "selectPolicy"), "Disabled", "spec.behavior.scaleDown.selectPolicy"),
        (("spec", "behavior"), None, "spec.behavior"),
        (("metadata", "labels", "team"), "b", "metadata.labels.team"),
        (
            ("metadata", "labels", "app.kubernetes.io/name"),
            None,
            "metadata.labels.app.kubernetes.io/name",
        ),
        (
            ("metadata", "annotations", "example.com/owner"),
            None,
            "metadata.annotations.example.com/owner",
        ),
        (("metadata", "ownerReferences", 0, "uid"), "another", "metadata.ownerReferences"),
        (("metadata", "ownerReferences"), None, "metadata.ownerReferences"),
    ],
)
def test_what_counts_as_a_difference(
    path: tuple[str | int, ...], value: Any, expected: str | None
) -> None:
    found = differences(changed(STORED, path, value), DESIRED_HPA)
    assert found == ([expected] if expected else [])


def test_no_behavior_is_the_default_behavior() -> None:
    desired = built(document())
    stored = as_stored(desired.to_json())
    assert differences(stored, desired) == []
    stored["spec"]["behavior"] = copy.deepcopy(SERVER_DEFAULTED_BEHAVIOR)
    assert differences(stored, desired) == []
    stored["spec"]["behavior"]["scaleDown"]["selectPolicy"] = "Disabled"
    assert differences(stored, desired) == ["spec.behavior.scaleDown.selectPolicy"]


def test_removing_a_pause_annotation_is_a_difference() -> None:
    paused = built(document(annotations={"autoscaling.keda.sh/paused-scale-in": "true"}))
    unpaused = built(document())
    assert differences(as_stored(paused.to_json()), unpaused) == [
        "spec.behavior.scaleDown.selectPolicy"
    ]
    assert differences(as_stored(unpaused.to_json()), paused) == [
        "metadata.annotations.autoscaling.keda.sh/paused-scale-in",
        "spec.behavior",
    ]


def test_a_tolerance_written_as_a_number_is_the_quantity_the_server_stores() -> None:
    behavior = {"scaleUp": {"tolerance": 0}, "scaleDown": {"tolerance": 0.05}}
    desired = built(document(advanced={"horizontalPodAutoscalerConfig": {"behavior": behavior}}))
    stored = as_stored(desired.to_json())
    stored["spec"]["behavior"]["scaleUp"]["tolerance"] = "0"
    stored["spec"]["behavior"]["scaleDown"]["tolerance"] = "50m"
    assert differences(stored, desired) == []
    stored["spec"]["behavior"]["scaleDown"]["tolerance"] = "100m"
    assert differences(stored, desired) == ["spec.behavior.scaleDown.tolerance"]
