"""`metrics-adapter explain --namespace e2e` against the real control plane: objects listed
from the cluster, values read through the aggregator from the registered adapter, the
target's /scale, the HPA's status, an adapter error as a trigger's error, and a user who
may not list Secrets.

The registered adapter serves ``worker`` and ``queue`` from its files; the same
ScaledObjects are created in the cluster so that the command lists them, with ``ghost``,
which the adapter does not serve (its value is the adapter's 404). A ScaledJob with one Job
of its own shows its value polled from here and its Jobs counted from the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.cli import main
from metrics_adapter.control.hpa import build_hpa
from metrics_adapter.model.keda import parse_scaled_object
from tests.e2e.conftest import NAMESPACE, Registered, cron_object, metric_name
from tests.support import controlplane
from tests.support.controlplane import ControlPlane
from tests.support.controlplane.pki import write_kubeconfig

pytestmark = pytest.mark.e2e

SO = "keda.sh/v1alpha1", "ScaledObject"
SJ = "keda.sh/v1alpha1", "ScaledJob"
JOB_LABEL = "scaledjob.keda.sh/name"
HPA = "autoscaling/v2", "HorizontalPodAutoscaler"
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def in_cluster(registered: Registered) -> Iterator[Registered]:
    """worker (Deployment at 7, the cron's value, so the HPA holds it; and its HPA),
    queue (no Deployment) and ghost as ScaledObjects of the cluster."""
    cp = registered.cp
    ghost = cron_object("ghost", 2)
    cp.apply(controlplane.deployment("worker", NAMESPACE, 7))
    try:
        for doc in (registered.worker, registered.queue, ghost):
            cp.apply(doc)
        stored = cp.get(*SO, "worker", NAMESPACE)
        assert stored is not None
        so = parse_scaled_object(stored)
        hpa = build_hpa(so, bind(so, Inventory()), [], uid=stored["metadata"]["uid"])
        cp.apply(hpa.to_json())
        cp.wait_condition(*HPA, "keda-hpa-worker", "ScalingActive", namespace=NAMESPACE)
        yield registered
    finally:
        cp.delete(*HPA, "keda-hpa-worker", NAMESPACE)
        for name in ("worker", "queue", "ghost"):
            cp.delete(*SO, name, NAMESPACE)
        cp.delete("apps/v1", "Deployment", "worker", NAMESPACE)


def serve_queue(registered: Registered, value: int) -> None:
    """Set the source and wait until the adapter (polling every second) serves ``value``."""
    registered.source.value = value
    path = registered.metric_path(registered.queue)

    def served() -> bool:
        answer = registered.cp.client.get(path)
        return answer.status_code == 200 and answer.json()["items"][0]["value"] == str(value)

    controlplane.wait_for(f"{path} at {value}", served, 15)


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(["explain", "--namespace", NAMESPACE, *args]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_json_reads_values_through_the_aggregator(
    in_cluster: Registered, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = in_cluster.cp
    serve_queue(in_cluster, 30)
    out, err = explain(capsys, "--kubeconfig", str(cp.kubeconfig), "-o", "json")
    assert err == ""
    reports = {r["scaled_object"]: r for r in json.loads(out)}
    assert set(reports) == {"e2e/worker", "e2e/queue", "e2e/ghost"}

    worker = reports["e2e/worker"]
    (cron,) = worker["triggers"]
    assert (worker["current_replicas"], worker["replicas_from"]) == (7, "/scale")
    assert (cron["metric"], cron["value"], cron["active"]) == (
        metric_name(in_cluster.worker),
        7,
        True,
    )
    assert (cron["activation"], cron["replicas"]) == ("replicas 7 > 0", 7)
    assert cron["formula"] == "7/(1 * 7) within 10%: keep 7"
    assert worker["hpa_status"].startswith("keda-hpa-worker: current ")
    assert "ScalingActive=True ValidMetricFound" in worker["hpa_status"]

    queue = reports["e2e/queue"]
    (api,) = queue["triggers"]
    assert (api["value"], api["target"], api["formula"]) == (30, 10, "ceil(30 / 10) = 3")
    assert queue["current_replicas"] == 1  # no Deployment: minReplicaCount
    assert queue["replicas_from"].startswith("minReplicaCount (no /scale: 404 NotFound")
    assert queue["hpa_status"] == "keda-hpa-queue: not found"
    assert queue["hpa"] == f"keda-hpa-queue would compute 3: {api['metric']}: ceil(30 / 10) = 3"

    (unserved,) = reports["e2e/ghost"]["triggers"]
    assert unserved["value"] is None and unserved["active"] is None
    assert unserved["error"].startswith("404 NotFound: ")
    assert "ScaledObject e2e/ghost not found" in unserved["error"]
    assert reports["e2e/ghost"]["decision"].startswith("unknown, stays at 1")


def test_text_is_the_same_table(in_cluster: Registered, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = explain(capsys, "--kubeconfig", str(in_cluster.cp.kubeconfig))
    assert "e2e/worker -> Deployment/worker (min 1, max 10, now 7 from /scale)" in out
    row = next(line for line in out.splitlines() if "0:cron" in line and "keep 7" in line)
    for cell in (metric_name(in_cluster.worker), " 7 ", "1 (AverageValue)", "replicas 7 > 0"):
        assert cell in row
    assert "  HPA status: keda-hpa-worker: current " in out
    assert "  HPA status: keda-hpa-queue: not found" in out
    assert f"  error: {metric_name(in_cluster.worker)}: 404 NotFound: " in out


def test_poll_asks_the_sources_from_here(
    in_cluster: Registered, capsys: pytest.CaptureFixture[str]
) -> None:
    in_cluster.source.value = 45
    args = ("--kubeconfig", str(in_cluster.cp.kubeconfig), "--poll", "-o", "json")
    reports = {r["scaled_object"]: r for r in json.loads(explain(capsys, *args)[0])}
    assert reports["e2e/queue"]["triggers"][0]["value"] == 45
    # ghost is bound and polled here: a cron needs no adapter.
    assert reports["e2e/ghost"]["triggers"][0]["value"] == 2


@pytest.fixture
def viewer(in_cluster: Registered, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a user who may read everything explain lists but Secrets (and,
    without a ClusterRole, ClusterTriggerAuthentications)."""
    cp = in_cluster.cp
    rules: list[dict[str, Any]] = [
        {"apiGroups": ["keda.sh"], "resources": ["*"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "list"]},
        {"apiGroups": ["autoscaling"], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get", "list"]},
    ]
    role = {"name": "explain-viewer", "namespace": NAMESPACE}
    cp.apply({"apiVersion": RBAC, "kind": "Role", "metadata": role, "rules": rules})
    binding = {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": role,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["name"]},
        "subjects": [{"kind": "User", "name": "explain-viewer"}],
    }
    cp.apply(binding)
    path = tmp_path / "viewer.kubeconfig"
    write_kubeconfig(path, cp.url, cp.ca.pem, cp.ca.issue("explain-viewer"))
    try:
        yield path
    finally:
        cp.delete(RBAC, "RoleBinding", role["name"], NAMESPACE)
        cp.delete(RBAC, "Role", role["name"], NAMESPACE)


def test_a_user_who_may_not_list_secrets_gets_a_warning_and_the_rest(
    viewer: Path, capsys: pytest.CaptureFixture[str], in_cluster: Registered
) -> None:
    wait_allowed(in_cluster.cp)
    out, err = explain(capsys, "--kubeconfig", str(viewer), "-o", "json")
    [secrets] = [line for line in err.splitlines() if "list Secrets in e2e: 403 Forbidden" in line]
    assert secrets.startswith("metrics-adapter explain: warning: ")
    assert "continuing without them" in secrets
    assert "list ClusterTriggerAuthentications: 403 Forbidden" in err
    reports = {r["scaled_object"]: r for r in json.loads(out)}
    assert reports["e2e/worker"]["triggers"][0]["value"] == 7
    assert reports["e2e/worker"]["hpa_status"].startswith("keda-hpa-worker: current ")


def wait_allowed(cp: ControlPlane) -> None:
    """RBAC reaches the authorizer's cache a moment after the RoleBinding is written."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "explain-viewer",
            "resourceAttributes": {
                "namespace": NAMESPACE,
                "group": "keda.sh",
                "resource": "scaledobjects",
                "verb": "list",
            },
        },
    }

    def allowed() -> bool:
        answer = cp.client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
        return bool(answer.json().get("status", {}).get("allowed"))

    controlplane.wait_for("RBAC to allow explain-viewer", allowed, 10)


@pytest.fixture
def crunch(in_cluster: Registered) -> Iterator[Registered]:
    """The ScaledJob ``crunch`` (metrics-api on the test's source, target 10, at most 10
    Jobs) and one Job of its own, which no node will ever run: running, and pending."""
    cp = in_cluster.cp
    template = {
        "metadata": {"labels": {JOB_LABEL: "crunch"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"},
    }
    trigger = {
        "type": "metrics-api",
        "metadata": {"url": in_cluster.source.url, "valueLocation": "value", "targetValue": "10"},
    }
    sj = {
        "apiVersion": SJ[0],
        "kind": SJ[1],
        "metadata": {"name": "crunch", "namespace": NAMESPACE},
        "spec": {
            "jobTargetRef": {"template": template},
            "maxReplicaCount": 10,
            "triggers": [trigger],
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "crunch-1", "namespace": NAMESPACE, "labels": {JOB_LABEL: "crunch"}},
        "spec": {"template": template},
    }
    try:
        cp.apply(sj)
        cp.apply(job)
        yield in_cluster
    finally:
        cp.delete(*SJ, "crunch", NAMESPACE)
        gone = cp.client.delete(
            cp.path("batch/v1", "Job", NAMESPACE, "crunch-1"),
            params={"propagationPolicy": "Background"},  # its Pod too
        )
        assert gone.status_code in (200, 202, 404), gone.text


def test_a_scaled_job_is_polled_from_here_and_its_jobs_counted(
    crunch: Registered, capsys: pytest.CaptureFixture[str]
) -> None:
    crunch.source.value = 45
    out, err = explain(capsys, "--kubeconfig", str(crunch.cp.kubeconfig), "-o", "json")
    assert err == ""
    found = json.loads(out)
    assert {r["scaled_object"] for r in found if "scaled_object" in r} >= {"e2e/worker"}
    (report,) = [r for r in found if r.get("kind") == "ScaledJob"]
    assert report["scaled_job"] == "e2e/crunch"
    assert report["triggers"][0]["value"] == 45  # no adapter serves it: polled from here
    assert (report["running"], report["pending"]) == (1, 1)
    assert report["jobs_from"] == f"Jobs and Pods labelled {JOB_LABEL}=crunch"
    # default: min(scaleTo 45, maxScale ceil(45 / 10) = 5 - running 1) = 4
    assert report["jobs_to_create"] == 4
    assert report["decision"] == (
        "would create 4 Jobs for e2e/crunch: queue 45, target 10, running 1, pending 1, "
        "strategy default"
    )
