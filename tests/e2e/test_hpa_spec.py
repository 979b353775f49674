"""The HPA :func:`~metrics_adapter.control.hpa.build_hpa` makes, on a real kube-apiserver and the
real HPA controller.

Each ScaledObject is first created through the CRD, and the HPA is built from the object the
API server returns, so its owner reference carries a real uid. The harness runs no
garbage-collector controller (``CONTROLLERS`` in tests/support/controlplane/cluster.py), so
deleting a ScaledObject cannot collect its HPA here; the tests check the owner reference that
would make it happen instead.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind, bind_all
from metrics_adapter.control.hpa import build_hpa, differences
from metrics_adapter.kube.autoscaling import HorizontalPodAutoscaler
from metrics_adapter.model.keda import ScaledObject, parse_scaled_object
from tests.e2e.conftest import NAMESPACE, Registered, scaled_object
from tests.e2e.test_hpa import deployment, wait_replicas
from tests.support.controlplane import ControlPlane, condition
from tests.support.controlplane.errors import raise_for

pytestmark = pytest.mark.e2e

HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
SO = ("keda.sh/v1alpha1", "ScaledObject")
FIELD_MANAGER = "metrics-adapter"
METRICS_API = {"url": "http://127.0.0.1:1/value", "valueLocation": "value", "targetValue": "10"}
PROMETHEUS = {"serverAddress": "http://127.0.0.1:1", "query": "sum(up)", "threshold": "0.5"}
FAST = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
    },
}


def spec_object(
    name: str,
    *triggers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    advanced: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc = scaled_object(name, triggers[0])
    doc["spec"]["triggers"] = list(triggers)
    doc["metadata"]["labels"] = {"team": "shop", "internal": "x"}
    doc["metadata"]["annotations"] = {
        "scaledobject.keda.sh/hpa-excluded-labels": "internal",
        **(annotations or {}),
    }
    if advanced:
        doc["spec"]["advanced"] = advanced
    return doc


CASES = {
    "external-only": spec_object(
        "spec-external",
        {"type": "metrics-api", "metadata": METRICS_API},
        {"type": "prometheus", "metricType": "Value", "metadata": PROMETHEUS},
    ),
    "external-and-cpu": spec_object(
        "spec-cpu",
        {"type": "metrics-api", "metadata": METRICS_API},
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
        {
            "type": "memory",
            "metricType": "AverageValue",
            "metadata": {"value": "0.5Gi", "containerName": "worker"},
        },
    ),
    "behavior-paused-scale-in": spec_object(
        "spec-behavior",
        {"type": "metrics-api", "metadata": METRICS_API},
        annotations={"autoscaling.keda.sh/paused-scale-in": "true"},
        advanced={"horizontalPodAutoscalerConfig": {"name": "custom-hpa", "behavior": FAST}},
    ),
    "scaling-modifiers": spec_object(
        "spec-composite",
        {"type": "metrics-api", "name": "a", "metadata": METRICS_API},
        {"type": "prometheus", "name": "b", "metadata": PROMETHEUS},
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
        advanced={"scalingModifiers": {"formula": "a + b", "target": "2.5"}},
    ),
}


def created(cp: ControlPlane, doc: dict[str, Any]) -> ScaledObject:
    """``doc`` created through the CRD, parsed as the API server returns it (with its uid)."""
    return parse_scaled_object(cp.apply(doc))


def built(so: ScaledObject) -> HorizontalPodAutoscaler:
    binding = bind_all(so, Inventory())
    return build_hpa(so, binding.triggers, binding.resources, uid=so.meta.uid)


def apply(cp: ControlPlane, hpa: HorizontalPodAutoscaler) -> tuple[dict[str, Any], list[str]]:
    """Server-side apply of ``hpa`` with fieldValidation=Strict, as the controller will write
    it: the stored object, and the ``Warning`` headers of the answer."""
    response = cp.client.patch(
        cp.path(*HPA, NAMESPACE, hpa.meta.name),
        params={"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"},
        content=json.dumps(hpa.to_json()),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    raise_for(response)
    return dict(response.json()), response.headers.get_list("warning")


@contextlib.contextmanager
def cleanup(cp: ControlPlane, *objects: tuple[str, str, str]) -> Iterator[None]:
    try:
        yield
    finally:
        for api_version, kind, name in objects:
            cp.delete(api_version, kind, name, NAMESPACE)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_built_hpa_is_accepted_as_is(registered: Registered, case: str) -> None:
    cp, doc = registered.cp, CASES[case]
    so = created(cp, doc)
    hpa = built(so)
    with cleanup(cp, (*HPA, hpa.meta.name), (*SO, so.ref.name)):
        stored, warnings = apply(cp, hpa)
        assert warnings == []
        # The server's defaults and canonical quantities are no reason to write again.
        assert differences(stored, hpa) == []
        owners = [o.to_json() for o in hpa.meta.owner_references]
        assert stored["metadata"]["ownerReferences"] == owners
        assert stored["metadata"]["labels"]["team"] == "shop"
        assert "internal" not in stored["metadata"]["labels"]
        metrics = stored["spec"]["metrics"]
        if case == "external-and-cpu":
            assert [m["type"] for m in metrics] == ["ContainerResource", "External", "Resource"]
            # Written as 0.5Gi, stored as the server (and KEDA's MustParse) writes it.
            assert metrics[0]["containerResource"]["target"]["averageValue"] == "512Mi"
        if case == "behavior-paused-scale-in":
            assert stored["metadata"]["name"] == "custom-hpa"
            assert stored["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"
            assert stored["spec"]["behavior"]["scaleUp"]["selectPolicy"] == "Max"  # defaulted
        if case == "scaling-modifiers":
            composite = metrics[-1]["external"]
            assert composite["metric"]["name"] == "composite-metric"
            assert composite["target"] == {"type": "AverageValue", "averageValue": "2500m"}


def test_unpausing_scale_in_converges_after_one_server_side_apply(registered: Registered) -> None:
    cp = registered.cp
    doc = spec_object(
        "spec-unpause",
        {"type": "metrics-api", "metadata": METRICS_API},
        annotations={"autoscaling.keda.sh/paused-scale-in": "true"},
    )
    so = created(cp, doc)
    hpa = built(so)
    with cleanup(cp, (*HPA, hpa.meta.name), (*SO, so.ref.name)):
        stored, _ = apply(cp, hpa)
        assert stored["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"

        del doc["metadata"]["annotations"]["autoscaling.keda.sh/paused-scale-in"]
        unpaused = built(created(cp, doc))
        assert unpaused.behavior is None  # so the HPA written has none
        assert differences(stored, unpaused) != []
        stored, warnings = apply(cp, unpaused)
        assert warnings == []
        # The apply removes our rules and the defaults the server had filled in around them.
        assert "behavior" not in stored["spec"]
        assert differences(stored, unpaused) == []


def test_the_built_hpa_scales_on_the_adapter_values(registered: Registered) -> None:
    """The adapter's ``worker`` (cron, always 7 replicas) with the HPA we build, not one written
    by hand. Its cluster copy adds a fast behavior, which the adapter does not read."""
    cp = registered.cp
    doc = copy.deepcopy(registered.worker)
    doc["spec"]["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": FAST}}
    so = created(cp, doc)
    hpa = built(so)
    name = hpa.meta.name
    assert name == "keda-hpa-worker"
    with cleanup(cp, (*HPA, name), ("apps/v1", "Deployment", "worker"), (*SO, "worker")):
        assert cp.apply(deployment("worker"))["spec"]["replicas"] == 1
        stored, warnings = apply(cp, hpa)
        assert warnings == []
        autoscaler = cp.wait_condition(*HPA, name, "ScalingActive", namespace=NAMESPACE)
        assert (condition(autoscaler, "ScalingActive") or {})["reason"] == "ValidMetricFound"
        wait_replicas(cp, "worker", 7)
        [current] = (cp.get(*HPA, name, NAMESPACE) or {})["status"]["currentMetrics"]
        assert current["external"]["metric"]["name"] == bind(so, Inventory())[0].metric_name

        owner = cp.get(*SO, "worker", NAMESPACE) or {}
        assert stored["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "name": "worker",
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
