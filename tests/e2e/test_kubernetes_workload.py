"""kubernetes-workload on a real control plane: real pods counted, the count served through
external.metrics.k8s.io to the real HPA, one LIST per distinct query, and standalone mode
refusing the trigger by name.

No kubelet runs here, so pods stay ``Pending`` unless the test writes their phase through
the ``status`` subresource, as a kubelet would; a finalizer holds a deleted pod in
``Terminating``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.cli import main
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.pods import KubePods
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import Clients
from scalers.kubernetes_workload import NEEDS_CLUSTER
from tests.e2e.conftest import Registered
from tests.support import controlplane, triggers
from tests.support.controlplane import Adapter, ControlPlane, wait_for
from tests.support.controlplane.adapter import adapter_kubeconfig
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.controlplane.errors import raise_for

pytestmark = pytest.mark.e2e
NS = "workload"
OTHER_NS = "workload-other"
HOLD = "e2e.metrics-adapter/hold"
"""A finalizer of ours: a pod deleted with it stays, Terminating, until the test lets go."""
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
HPA_SYNC = 1.0  # the control plane's --horizontal-pod-autoscaler-sync-period
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
SERVED = 1 + SCALER_TIMEOUT + SLACK
"""A changed count is served within a poll (pollingInterval 1) and the slack."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Adapter]]:
    with cluster_mode(NS, prepare=lambda cp: cp.ensure_namespace(OTHER_NS)) as (cp, adapter):
        yield cp, adapter


def pod(name: str, labels: dict[str, str], namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:e2e"}], **spec},
    }


def create_pod(cp: ControlPlane, doc: dict[str, Any], phase: str = "Pending") -> None:
    raise_for(cp.create(doc))
    if phase != "Pending":
        set_phase(cp, doc, phase)


def set_phase(cp: ControlPlane, doc: dict[str, Any], phase: str) -> None:
    """Write the pod's phase as its kubelet would, through the status subresource."""
    meta = doc["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
    response = cp.client.patch(
        path,
        content=f'{{"status": {{"phase": "{phase}"}}}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    raise_for(response)


def pod_lists(cp: ControlPlane) -> float:
    """kube-apiserver's own count of namespaced LISTs of pods: only kubernetes-workload
    makes them here (every controller, and the Jobs' watch, lists cluster-wide)."""
    text = cp.client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'resource="pods"' in line
            and 'verb="LIST"' in line
            and 'scope="namespace"' in line
            and 'subresource=""' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def workload(name: str, namespace: str, metadata: dict[str, str], **spec: Any) -> dict[str, Any]:
    trigger = {"type": "kubernetes-workload", "metadata": metadata}
    return triggers.scaled_object(name, namespace, trigger, pollingInterval=1, **spec)


async def test_one_list_per_distinct_selector_and_namespace(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, _ = cluster
    listed = cp.client.get("/apis/keda.sh/v1alpha1/scaledobjects").json()
    assert listed["items"] == [], "another ScaledObject's polls would be counted too"
    for i, phase in enumerate(["Pending", "Running", "Succeeded"]):
        create_pod(cp, pod(f"share-{i}", {"app": "share", "tier": "a"}), phase)
    create_pod(cp, pod("share-x", {"app": "share", "tier": "a"}, OTHER_NS), "Running")
    same = [  # one selector, spelled three ways: one query
        {"podSelector": "app=share,tier in (a,b)", "value": "1"},
        {"podSelector": " tier in (b, a) , app = share ", "value": "5"},
        {"podSelector": "tier in (a,b),app=share", "value": "2", "groupByNode": "true"},
    ]
    docs = [workload(f"share-{i}", NS, m) for i, m in enumerate(same)]
    docs.append(workload("share-other", OTHER_NS, same[0]))  # another namespace: its own
    store = MetricStore()
    async with await KubeClient.connect(adapter_kubeconfig(cp)) as kube:  # the adapter's RBAC
        poller = Poller(store, Clients(SCALER_TIMEOUT, pods=KubePods(kube)), Telemetry())
        bound: list[BoundTrigger] = []
        for doc in docs:
            so = parse_scaled_object(doc)
            poller.set_triggers(so.ref, bind(so, Inventory()))
            bound += poller.triggers(so.ref)
        assert poller.query_count == 2
        before = pod_lists(cp)
        for query in {b.scaler.query for b in bound}:
            await poller.poll(query)
    wait_for("the apiserver to count the LISTs", lambda: pod_lists(cp) >= before + 2, SLACK)
    assert pod_lists(cp) == before + 2  # not one per trigger: 4
    values = [triggers.reading(store, b).value for b in bound]
    assert values == [2, 2, 0, 1]  # Pending and Running count; unscheduled pods are on no node


def metric_value(cp: ControlPlane, so: str, metric: str) -> httpx.Response:
    return cp.client.get(
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/{metric}",
        params={"labelSelector": f"scaledobject.keda.sh/name={so}"},
    )


def served(cp: ControlPlane, so: str, metric: str) -> str | None:
    response = metric_value(cp, so, metric)
    return str(response.json()["items"][0]["value"]) if response.status_code == 200 else None


def wait_served(cp: ControlPlane, so: str, metric: str, value: str) -> None:
    wait_for(f"{metric} of {so} to be {value}", lambda: served(cp, so, metric) == value, SERVED)


def test_the_count_is_served_to_the_hpa(cluster: tuple[ControlPlane, Adapter]) -> None:
    cp, adapter = cluster
    with adapter.healthy():
        counted = {"app": "worker", "role": "counted"}
        create_pod(cp, pod("pending", counted))  # not scheduled: counted, on no node
        create_pod(cp, pod("running-a", counted, nodeName="node-a"), "Running")
        create_pod(cp, pod("running-b", counted, nodeName="node-b"), "Running")
        create_pod(cp, pod("done", counted, nodeName="node-c"), "Succeeded")
        create_pod(cp, pod("failed", counted, nodeName="node-d"), "Failed")
        create_pod(cp, pod("elsewhere", {"app": "worker", "role": "other"}), "Running")
        held = pod("terminating", counted)  # unscheduled: gone once its finalizer is
        held["metadata"]["finalizers"] = [HOLD]
        create_pod(cp, held, "Running")
        raise_for(cp.client.delete(f"/api/v1/namespaces/{NS}/pods/terminating"))
        terminating = cp.get("v1", "Pod", "terminating", NS) or {}
        assert terminating["metadata"]["deletionTimestamp"]  # held by its finalizer

        cp.apply(controlplane.deployment("w", NS, 1))
        doc = workload(
            "w",
            NS,
            {"podSelector": "app=worker,role in (counted)", "value": "2"},
            minReplicaCount=1,
            maxReplicaCount=10,
        )
        by_node = {"podSelector": "role=counted,app=worker", "value": "10", "groupByNode": "true"}
        doc["spec"]["triggers"].append({"type": "kubernetes-workload", "metadata": by_node})
        cp.apply(doc)

        # pending, running-a, running-b and the terminating pod, as KEDA counts them
        wait_served(cp, "w", f"s0-workload-{NS}", "4")
        wait_served(cp, "w", f"s1-workload-{NS}", "2")  # node-a, node-b: its own query
        hpa = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-w", NS)
        assert hpa is not None
        (first, _) = hpa["spec"]["metrics"]
        assert first["external"]["target"] == {"type": "AverageValue", "averageValue": "2"}
        wait_for("the HPA's 2 replicas (4 pods / 2)", lambda: cp.replicas("w", NS) == 2, SLACK)

        for i in range(4):  # 8 pods: the HPA scales up to 4
            create_pod(cp, pod(f"more-{i}", counted))
        wait_served(cp, "w", f"s0-workload-{NS}", "8")
        wait_for("the HPA's 4 replicas", lambda: cp.replicas("w", NS) == 4, HPA_SYNC + SLACK)

        set_phase(cp, pod("running-a", counted), "Succeeded")  # finished: no longer counted
        wait_served(cp, "w", f"s0-workload-{NS}", "7")
        wait_served(cp, "w", f"s1-workload-{NS}", "1")

        release = cp.client.patch(
            f"/api/v1/namespaces/{NS}/pods/terminating",
            content='{"metadata": {"finalizers": null}}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        raise_for(release)
        wait_served(cp, "w", f"s0-workload-{NS}", "6")


def test_standalone_mode_refuses_the_trigger_by_name(registered: Registered) -> None:
    doc = workload("pods", "e2e", {"podSelector": "app=worker", "value": "2"}, minReplicaCount=1)
    path = registered.adapter.objects / "pods.yaml"
    registered.write(doc)
    try:
        registered.restart()

        def refused() -> str | None:
            response = registered.cp.client.get(registered.metric_path(doc))
            message = str(response.json().get("message", ""))
            return message if response.status_code == 503 and "cluster" in message else None

        message = wait_for("the trigger's error", refused, SERVED)
        assert NEEDS_CLUSTER in message
    finally:
        path.unlink(missing_ok=True)
        registered.restart()


def test_explain_poll_counts_the_pods_from_here(
    cluster: tuple[ControlPlane, Adapter], capsys: pytest.CaptureFixture[str]
) -> None:
    """``explain --namespace --poll`` polls from the user's machine with the user's
    kubeconfig: the trigger counts the pods there, as the adapter would."""
    cp, _ = cluster
    explained = {"app": "explained"}
    for name in ("explained-a", "explained-b"):
        create_pod(cp, pod(name, explained, OTHER_NS))
    create_pod(cp, pod("explained-done", explained, OTHER_NS), "Succeeded")
    cp.apply(workload("explained", OTHER_NS, {"podSelector": "app=explained", "value": "1"}))
    args = ["--namespace", OTHER_NS, "--kubeconfig", str(cp.kubeconfig), "--poll", "-o", "json"]
    assert main(["explain", *args]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    (counted,) = report["triggers"]
    assert (counted["value"], counted["error"]) == (2, None)
