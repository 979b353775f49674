"""ScaledJobs on a real control plane: the seed's ``batch-processor`` on a moto queue.

kube-controller-manager runs the job controller (a Job gets its Pod, and finishes when its
Pod does) and the garbage collector (a ScaledJob's Jobs go with it). No scheduler or kubelet
runs, so every Pod stays Pending until a test patches its status as a kubelet would.

Every queue holds 100 visible messages, nothing consumes them, and the seed's trigger has
queueLength 20 and maxReplicaCount 50 (minReplicaCount 0, so M' = 50). So each poll reads
Q = 100, maxValue = min(100 / 20, 50) = 5: maxScale 5 and scaleTo ceil(Q) = 100. The counts
below are worked by hand from KEDA's code (reference keda-scaledjob-webhook-modifiers.md
§1.2), never from the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from tests.integration.aws_sqs_queue.helpers import keys_authentication
from tests.support.controlplane import (
    Adapter,
    ControlPlane,
    condition,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.moto import MotoServer, make_queue
from tests.support.servers import free_port
from tests.unit.test_crd_schemas import good_job

pytestmark = pytest.mark.e2e
T = TypeVar("T")

NS = "batch"  # the seed's namespace
INTERVAL = 2
"""Every ScaledJob's pollingInterval, instead of the seed's 30: eager needs five polls to reach
its bound and every count is then watched over more polls; at 30 s a test would take minutes."""
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen: seconds of
apiserver, controller-manager and adapter work each, late."""
HELD_FOR = 4
"""How many more times the queue is read while a count must stay: by the last read, the
evaluations after the first three have surely run."""
SJ_API, SJ_KIND = "keda.sh/v1alpha1", "ScaledJob"
AUTH = "sqs-keys"  # the TriggerAuthentication and its Secret
PAUSED = "autoscaling.keda.sh/paused"


def poll(polls: int = 1) -> float:
    """The longest until ``polls`` more polls have ended: each at most an interval away (the
    first one: within the start-up spread, at most an interval), ending within the timeout."""
    return polls * (INTERVAL + SCALER_TIMEOUT)


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter
    moto: MotoServer
    metrics_port: int


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    def authentication(cp: ControlPlane) -> None:
        for doc in keys_authentication(AUTH, AUTH):  # moto takes any keys
            api = "v1" if doc["kind"] == "Secret" else SJ_API
            cp.apply(doc | {"apiVersion": api, "metadata": doc["metadata"] | {"namespace": NS}})

    metrics_port = free_port()
    with contextlib.ExitStack() as stack:
        moto = MotoServer()
        stack.callback(moto.cleanup)
        moto.start()
        cp, adapter = stack.enter_context(
            cluster_mode(
                NS,
                args=[f"--metrics-port={metrics_port}"],
                register=False,
                prepare=authentication,
            )
        )
        yield Cluster(cp, adapter, moto, metrics_port)


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    """Every test starts with the adapter running and leaves no bug in its log; its
    ScaledJobs are deleted after it, so the next test's polls are not slowed by them."""
    with cluster.adapter.healthy():
        yield
    for sj in cluster.cp.client.get(f"/apis/{SJ_API}/namespaces/{NS}/scaledjobs").json()["items"]:
        cluster.cp.delete(SJ_API, SJ_KIND, sj["metadata"]["name"], NS)


def seed_job(moto: MotoServer, name: str, **spec: Any) -> tuple[dict[str, Any], Callable[[], int]]:
    """The seed's batch-processor, named ``name``, on a new queue of that name holding 100
    messages, with ``spec`` merged in; and how many times the queue has been read.

    Changed for the loopback only: the queue's URL and endpoint are moto's, the keys come
    from a TriggerAuthentication instead of ``identityOwner: operator`` (the operator's own
    AWS identity), and the polling interval is :data:`INTERVAL`. ``good_job`` also moves the
    seed's ``backoffLimit``, indented under the pod template by mistake, into the JobSpec
    (the CRD's strict schema rejects it where it was)."""
    url = asyncio.run(make_queue(moto, name, visible=100))
    doc = good_job()
    doc["metadata"]["name"] = name
    doc["spec"] |= {"pollingInterval": INTERVAL, **spec}
    [trigger] = doc["spec"]["triggers"]
    del trigger["metadata"]["identityOwner"]
    trigger["metadata"] |= {"queueURL": url, "awsEndpoint": moto.endpoint}
    trigger["authenticationRef"] = {"name": AUTH}
    return doc, lambda: moto.requests("GetQueueAttributes", url)


def listed(cp: ControlPlane, path: str, name: str) -> list[dict[str, Any]]:
    response = cp.client.get(path, params={"labelSelector": f"scaledjob.keda.sh/name={name}"})
    response.raise_for_status()
    return list(response.json()["items"])


def jobs(cp: ControlPlane, name: str) -> list[dict[str, Any]]:
    return listed(cp, f"/apis/batch/v1/namespaces/{NS}/jobs", name)


def pods(cp: ControlPlane, name: str) -> list[dict[str, Any]]:
    return listed(cp, f"/api/v1/namespaces/{NS}/pods", name)


def job_names(cp: ControlPlane, name: str) -> set[str]:
    return {j["metadata"]["name"] for j in jobs(cp, name)}


def finished(job: dict[str, Any]) -> str | None:
    """``Complete`` or ``Failed`` once the job controller has finished the Job."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


def set_phase(cp: ControlPlane, pod: dict[str, Any], phase: str) -> None:
    """What a kubelet would report: the Pod started (Ready), or ended."""
    ready = {"type": "Ready", "status": "True" if phase == "Running" else "False"}
    response = cp.client.patch(
        f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/status",
        json={"status": {"phase": phase, "conditions": [ready]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()


def sj_condition(cp: ControlPlane, name: str, kind: str) -> tuple[object, object]:
    found = condition(cp.get(SJ_API, SJ_KIND, name, NS), kind) or {}
    return found.get("status"), found.get("reason")


def events(cp: ControlPlane, name: str) -> list[dict[str, Any]]:
    """The Events about ScaledJob ``name``, in the order they were written (etcd's revision)."""
    selector = f"involvedObject.kind={SJ_KIND},involvedObject.name={name}"
    response = cp.client.get(f"/api/v1/namespaces/{NS}/events", params={"fieldSelector": selector})
    response.raise_for_status()
    return sorted(response.json()["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))


def reasons(cp: ControlPlane, name: str) -> list[tuple[str, str]]:
    return [(e["type"], e["reason"]) for e in events(cp, name)]


def batches(cp: ControlPlane, name: str) -> list[int]:
    """The Jobs each poll created, from its ``KEDAJobsCreated`` Event: "Created N jobs".
    Polls in a row that created as many make one Event counted that many times (``count``),
    as client-go's recorder aggregates them."""
    created = [e for e in events(cp, name) if e["reason"] == "KEDAJobsCreated"]
    return [int(e["message"].split()[1]) for e in created for _ in range(e.get("count") or 1)]


def until(what: str, observe: Callable[[], T], ok: Callable[[T], bool], within: float) -> T:
    """What ``observe`` returns once ``ok`` holds for it; fails with the last one seen."""
    deadline = time.monotonic() + within
    while not ok(seen := observe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g}s; last {seen!r}")
        time.sleep(0.2)
    return seen


def holds(what: str, observe: Callable[[], T], expected: T, polls: Callable[[], float]) -> None:
    """``observe`` keeps returning ``expected`` while the adapter polls :data:`HELD_FOR` more
    times (``polls`` counts them): watched at every poll, not slept through."""
    start, within = polls(), poll(HELD_FOR) + SLACK
    deadline = time.monotonic() + within
    while polls() < start + HELD_FOR:
        assert (seen := observe()) == expected, f"{what}: {seen!r}, not {expected!r}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: fewer than {HELD_FOR} polls within {within:g}s")
        time.sleep(0.2)
    assert (seen := observe()) == expected, f"{what}: {seen!r}, not {expected!r}"


def check_made_by_keda(job: dict[str, Any], sj: dict[str, Any]) -> None:
    """A Job as KEDA's generateJobs makes it (reference §1.3) from the stored ScaledJob."""
    meta, name = job["metadata"], sj["metadata"]["name"]
    assert meta["generateName"] == f"{name}-" and meta["name"].startswith(f"{name}-")
    labels = dict(meta["labels"])
    assert labels.pop("app.kubernetes.io/version")  # the adapter's, where KEDA puts its own
    assert labels == {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": name,
        "app.kubernetes.io/managed-by": "keda-operator",
        "scaledjob.keda.sh/name": name,
    }
    assert meta["annotations"] == {"scaledjob.keda.sh/generation": "1"}
    [owner] = meta["ownerReferences"]
    assert owner == {
        "apiVersion": SJ_API,
        "kind": SJ_KIND,
        "name": name,
        "uid": sj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["scaledjob.keda.sh/name"] == name
    assert template["spec"]["restartPolicy"] == "Never"  # the seed's, kept
    assert job["spec"]["backoffLimit"] == sj["spec"]["jobTargetRef"]["backoffLimit"]
    # The template's containers as written; the API server adds its defaults to a Job's.
    [written] = sj["spec"]["jobTargetRef"]["template"]["spec"]["containers"]
    [container] = template["spec"]["containers"]
    assert {k: container[k] for k in written} == written


STRATEGIES: dict[str, tuple[dict[str, Any], list[int]]] = {
    # Every Pod stays Pending, so every Job is running (R) and pending (P): R = P = Jobs.
    "default": ({}, [5]),  # eff = maxScale - R: 5 - 0 = 5; then 5 - 5 = 0
    "custom": (
        {"customScalingQueueLengthDeduction": 1, "customScalingRunningJobPercentage": "0.5"},
        # eff = min(maxScale - 1 - trunc(R * 0.5), M'): R 0 -> 4; 4 -> 5 - 1 - 2 = 2;
        # 6 -> 5 - 1 - 3 = 1; 7 -> 1; 8 -> 5 - 1 - 4 = 0: 4, 6, 7, 8 Jobs.
        [4, 2, 1, 1],
    ),
    # maxScale + R - P = 5 <= M', so eff = maxScale - P: 5 - 0 = 5; then 5 - 5 = 0.
    "accurate": ({}, [5]),
    # eff = min(M' - R - P, maxScale) = min(50 - 2R, 5) (pending counted twice): 5 a poll
    # until R = 25, where 50 - 50 = 0: 5, 10, 15, 20, 25 Jobs.
    "eager": ({}, [5, 5, 5, 5, 5]),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_the_seed_creates_jobs_poll_by_poll_as_keda_computes(
    cluster: Cluster, strategy: str
) -> None:
    cp = cluster.cp
    extra, expected = STRATEGIES[strategy]
    name = "batch-processor" if strategy == "default" else f"batch-processor-{strategy}"
    # The seed has no scalingStrategy: the default one is the seed's own.
    scaling = {} if strategy == "default" else {"scalingStrategy": {"strategy": strategy, **extra}}
    doc, polled = seed_job(cluster.moto, name, **scaling)
    cp.apply(doc)
    total = sum(expected)
    # One poll per batch, each followed by its evaluation.
    within = poll(len(expected)) + SLACK
    until(f"{total} Jobs", lambda: len(jobs(cp, name)), lambda n: n == total, within)
    holds(f"{total} Jobs", lambda: len(jobs(cp, name)), total, polled)
    assert batches(cp, name) == expected

    sj = cp.get(SJ_API, SJ_KIND, name, NS)
    assert sj is not None
    for job in jobs(cp, name):
        check_made_by_keda(job, sj)
    assert sj_condition(cp, name, "Ready") == ("True", "ScaledJobReady")
    assert sj_condition(cp, name, "Active") == ("True", "ScalerActive")
    assert {("Normal", "ScaledJobReady"), ("Normal", "KEDAJobsCreated")} <= set(reasons(cp, name))


def test_running_pods_are_no_longer_pending_so_accurate_creates_more(cluster: Cluster) -> None:
    cp, name = cluster.cp, "batch-processor-started"
    doc, polled = seed_job(cluster.moto, name, scalingStrategy={"strategy": "accurate"})
    cp.apply(doc)
    until("5 Jobs", lambda: len(jobs(cp, name)), lambda n: n == 5, poll() + SLACK)
    started = until("their 5 Pods", lambda: pods(cp, name), lambda p: len(p) == 5, SLACK)
    for pod in started:
        set_phase(cp, pod, "Running")
    # R 5, P 0: maxScale + R - P = 10 <= M', so eff = maxScale - P = 5 more; then R 10, P 5
    # (the new ones): 5 - 5 = 0.
    until("10 Jobs", lambda: len(jobs(cp, name)), lambda n: n == 10, poll() + SLACK)
    holds("10 Jobs", lambda: len(jobs(cp, name)), 10, polled)


@pytest.mark.parametrize(("phase", "outcome"), [("Succeeded", "Complete"), ("Failed", "Failed")])
def test_finished_jobs_make_room_and_only_the_history_limit_is_kept(
    cluster: Cluster, phase: str, outcome: str
) -> None:
    cp, name = cluster.cp, f"batch-processor-{phase.lower()}"
    doc, polled = seed_job(
        cluster.moto, name, successfulJobsHistoryLimit=2, failedJobsHistoryLimit=2
    )
    doc["spec"]["jobTargetRef"]["backoffLimit"] = 0  # one failed Pod fails its Job
    cp.apply(doc)
    until("5 Jobs", lambda: len(jobs(cp, name)), lambda n: n == 5, poll() + SLACK)
    first = until("their 5 Pods", lambda: pods(cp, name), lambda p: len(p) == 5, SLACK)
    for pod in first[:3]:  # as a kubelet would see them: started, then ended
        set_phase(cp, pod, "Running")
        set_phase(cp, pod, phase)

    def tally() -> tuple[int, int]:
        states = [finished(j) for j in jobs(cp, name)]
        return states.count(None), states.count(outcome)

    # The job controller finishes 3 Jobs: R 2, so default's 5 - 2 = 3 more; the 3 finished
    # are one over the limit of 2, and the oldest is deleted.
    until(f"5 running, 2 {outcome}", tally, lambda t: t == (5, 2), poll() + SLACK)
    holds(f"5 running, 2 {outcome}", tally, (5, 2), polled)
    assert len(jobs(cp, name)) == 7


@pytest.mark.parametrize("rollout", ["immediate", "gradual"])
def test_a_spec_change_rolls_out_per_strategy(cluster: Cluster, rollout: str) -> None:
    cp, name = cluster.cp, f"batch-processor-{rollout}"
    doc, polled = seed_job(cluster.moto, name, rollout={"strategy": rollout})
    cp.apply(doc)
    old = until("5 Jobs", lambda: job_names(cp, name), lambda n: len(n) == 5, poll() + SLACK)
    [container] = doc["spec"]["jobTargetRef"]["template"]["spec"]["containers"]
    container["env"][0] = {"name": "BATCH_SIZE", "value": "200"}
    assert cp.apply(doc)["metadata"]["generation"] == 2

    def generations() -> list[tuple[str, str]]:
        return sorted(
            (
                j["metadata"]["annotations"]["scaledjob.keda.sh/generation"],
                j["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            )
            for j in jobs(cp, name)
        )

    cleanup = {"ScaledJobRolloutCleanupStarted", "ScaledJobRolloutCleanupCompleted"}
    if rollout == "immediate":
        # Generation 1's Jobs are deleted, running or not; R 0, so 5 of generation 2.
        new = [("2", "200")] * 5
        until("5 Jobs of generation 2", generations, lambda g: g == new, poll() + SLACK)
        assert not job_names(cp, name) & old
        assert cleanup <= {reason for _, reason in reasons(cp, name)}
    else:
        holds("generation 1's Jobs", lambda: job_names(cp, name), old, polled)
        assert not cleanup & {reason for _, reason in reasons(cp, name)}


def test_paused_creates_nothing_until_unpaused(cluster: Cluster) -> None:
    cp, name = cluster.cp, "batch-processor-paused"
    doc, polled = seed_job(cluster.moto, name)
    doc["metadata"]["annotations"] = {PAUSED: "true"}
    cp.apply(doc)
    paused = until(
        "Paused=True", lambda: sj_condition(cp, name, "Paused"), lambda c: c[0] == "True", SLACK
    )
    assert paused == ("True", "ScaledJobPaused")
    # The queue is read (100 messages) poll after poll, and no Job is created.
    holds("no Jobs while paused", lambda: len(jobs(cp, name)), 0, polled)

    response = cp.client.patch(
        f"/apis/{SJ_API}/namespaces/{NS}/scaledjobs/{name}",
        json={"metadata": {"annotations": {PAUSED: None}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    until("5 Jobs", lambda: len(jobs(cp, name)), lambda n: n == 5, poll() + SLACK)
    assert sj_condition(cp, name, "Paused") == ("False", "ScaledJobUnpaused")
    written = reasons(cp, name)
    assert written.index(("Normal", "ScaledJobPaused")) < written.index(
        ("Normal", "ScaledJobUnpaused")
    )


def test_deleting_the_scaled_job_garbage_collects_its_jobs(cluster: Cluster) -> None:
    cp, name = cluster.cp, "batch-processor-deleted"
    doc, _ = seed_job(cluster.moto, name)
    cp.apply(doc)
    until("5 Jobs", lambda: len(jobs(cp, name)), lambda n: n == 5, poll() + SLACK)
    until("their 5 Pods", lambda: len(pods(cp, name)), lambda n: n == 5, SLACK)
    cp.delete(SJ_API, SJ_KIND, name, NS)
    # Our finalizer is removed at the next reconcile; then the garbage collector deletes the
    # Jobs through their owner reference, and their Pods through theirs.
    until("ScaledJob gone", lambda: cp.get(SJ_API, SJ_KIND, name, NS), lambda s: s is None, SLACK)

    def left() -> set[str]:
        return job_names(cp, name) | {p["metadata"]["name"] for p in pods(cp, name)}

    until("Jobs and Pods gone", left, lambda names: not names, SLACK)


def scaled_job_errors(cluster: Cluster, name: str) -> float:
    """The adapter's ``keda_scaled_job_errors_total`` of ScaledJob ``name``: failed polls."""
    text = httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics").text
    for line in text.splitlines():
        if line.startswith("keda_scaled_job_errors_total{") and f'scaledJob="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_source_down_creates_nothing_and_deletes_nothing(cluster: Cluster) -> None:
    cp, name = cluster.cp, "batch-processor-unreachable"
    source = MotoServer().start()  # its own: stopped in this test
    try:
        doc, _ = seed_job(source, name)
        cp.apply(doc)
        running = until(
            "5 Jobs", lambda: job_names(cp, name), lambda n: len(n) == 5, poll() + SLACK
        )
        source.stop()
        failed = until(
            "Ready=False",
            lambda: sj_condition(cp, name, "Ready"),
            lambda c: c[0] == "False",
            poll() + SLACK,
        )
        assert failed == ("False", "TriggerError")
        holds(
            "the same 5 Jobs",
            lambda: job_names(cp, name),
            running,
            lambda: scaled_job_errors(cluster, name),
        )
        assert ("Warning", "KEDAScalerFailed") in reasons(cp, name)
    finally:
        source.cleanup()


def test_a_malformed_trigger_is_not_ready_and_the_others_keep_working(cluster: Cluster) -> None:
    cp, bad_name, good_name = cluster.cp, "batch-processor-typo", "batch-processor-sound"
    bad, _ = seed_job(cluster.moto, bad_name)
    bad["spec"]["triggers"][0]["metadata"]["queueLength"] = "abc"
    good, polled = seed_job(cluster.moto, good_name)
    cp.apply(bad)
    cp.apply(good)
    not_ready = until(
        "Ready=False",
        lambda: condition(cp.get(SJ_API, SJ_KIND, bad_name, NS), "Ready") or {},
        lambda c: c.get("status") == "False",
        SLACK,  # at its reconcile, before any poll
    )
    assert not_ready["reason"] == "ScaledJobCheckFailed"
    assert not_ready["message"] == 'triggers[0].metadata.queueLength: "abc" is not a number'
    failed = ("Warning", "ScaledJobCheckFailed")
    until("its Event", lambda: reasons(cp, bad_name), lambda r: failed in r, SLACK)  # just after
    until("5 Jobs", lambda: len(jobs(cp, good_name)), lambda n: n == 5, poll() + SLACK)
    holds(
        "5 Jobs and none",
        lambda: (len(jobs(cp, good_name)), len(jobs(cp, bad_name))),
        (5, 0),
        polled,
    )
