"""A scale target whose ScaledObject writes no apiVersion, on a real control plane: KEDA's
default ``apps/v1`` holds for a Deployment, and for any other kind the controller asks
discovery which group serves it with a /scale subresource (an Argo Rollout here, from a CRD
of its own), so the HPA and /scale calls name the right group; a kind no group serves is
not ready, and says to write the apiVersion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import triggers
from tests.support.controlplane import (
    Adapter,
    ControlPlane,
    condition,
    scalable_kind,
    wait_for,
)
from tests.support.controlplane.cluster_mode import cluster_mode

pytestmark = pytest.mark.e2e

NS = "scale-targets"
KEDA = "keda.sh/v1alpha1"
ROLLOUTS = "argoproj.io/v1alpha1"
SLACK = 30.0
"""A first reconcile, and what a loaded 2-core machine adds to it."""
CRON = triggers.always_cron(3)
ROLLOUT_CRD = scalable_kind("argoproj.io", "Rollout", "rollouts", version="v1alpha1")


def install_rollouts(cp: ControlPlane) -> None:
    cp.apply(ROLLOUT_CRD)
    crd = "rollouts.argoproj.io"
    cp.wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd, "Established")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Adapter]]:
    with cluster_mode(NS, register=False, prepare=install_rollouts) as running:
        yield running


def target_of(name: str, kind: str) -> dict[str, Any]:
    doc = triggers.scaled_object(name, NS, CRON, minReplicaCount=1)
    doc["spec"]["scaleTargetRef"] = {"kind": kind, "name": name}  # no apiVersion
    return doc


def test_a_rollout_without_api_version_is_found_through_discovery(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, _ = cluster
    rollout = {
        "apiVersion": ROLLOUTS,
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 1},
    }
    cp.apply(rollout)
    cp.apply(target_of("web", "Rollout"))
    hpa = wait_for(
        "the HPA",
        lambda: cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-web", NS),
        SLACK,
    )
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": ROLLOUTS,
        "kind": "Rollout",
        "name": "web",
    }
    so = cp.wait_condition(KEDA, "ScaledObject", "web", "Ready", namespace=NS, timeout=SLACK)
    assert so["status"]["scaleTargetKind"] == f"{ROLLOUTS}.Rollout"
    assert so["status"]["originalReplicaCount"] == 1  # read through the Rollout's /scale


def test_a_kind_no_group_serves_is_not_ready_and_says_to_write_the_api_version(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, _ = cluster
    cp.apply(target_of("ghost", "Ghost"))
    ghost = cp.wait_condition(
        KEDA, "ScaledObject", "ghost", "Ready", namespace=NS, status="False", timeout=SLACK
    )
    cond = condition(ghost, "Ready") or {}
    assert (
        "scaleTargetRef.apiVersion: not written, and discovery finds no one version"
        in (cond["message"])
    )
    assert "kind Ghost" in cond["message"] and "write the target's apiVersion" in cond["message"]
