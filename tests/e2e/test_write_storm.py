"""5,000 ScaledObjects become active at once: the writes are paced by the write budget
(--kube-api-qps, --kube-api-burst), kube-apiserver refuses none (no 429), every target is
scaled and every status says Active; and a cluster where nothing changes gets no writes.

The targets are Workers (a CRD with /scale and no controller: no Pods); every ScaledObject
reads one metrics-api URL, so polling is one request per interval and the writes are all
there is to measure. The APIService is not registered: the HPAs find no metrics and leave
the Workers alone, so every change of replicas is the activator's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from metrics_adapter.control.controller import ACTIVATION_WORKERS
from tests.e2e.conftest import MetricsSource
from tests.support import triggers
from tests.support.controlplane import (
    Adapter,
    ControlPlane,
    condition,
    create_in_parallel,
    scalable_kind,
    scalable_object,
    wait_for,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

NS = "storm"
OBJECTS = 5000
QPS, BURST = 100, 50
"""The budget under test: low enough that eight activations at once on loopback would
exceed it many times over without it."""
INTERVAL = 30
WORKERS_API = "storm.e2e.io/v1"
WORKER_CRD = scalable_kind("storm.e2e.io", "Worker", "workers", selector_path=".status.selector")
WRITES_PER_ACTIVATION = 3
"""/scale, the Event KEDAScaleTargetActivated, the status (Active, lastActiveTime)."""
SLACK = 120.0
"""What a loaded 2-core machine adds: apiserver, etcd and adapter work late, for minutes of
writes at 5,000 objects."""
WRITE_METHODS = ("PATCH", "POST", "DELETE")
"""The verbs that spend the budget (the Lease renews with PUT, outside it)."""


@dataclass
class Storm:
    cp: ControlPlane
    adapter: Adapter
    source: MetricsSource
    metrics_port: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(monotonic time, writes sent, writes answered 429), from the adapter's /metrics."""

    def counts(self) -> tuple[float, float]:
        """Writes the adapter sent so far, and how many were answered 429."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        writes = throttled = 0.0
        for line in text.splitlines():
            if not line.startswith("rest_client_requests_total{"):
                continue
            value = float(line.rsplit(" ", 1)[1])
            if any(f'method="{m}"' in line for m in WRITE_METHODS):
                writes += value
            if 'code="429"' in line:
                throttled += value
        return writes, throttled

    def apiserver_429s(self) -> float:
        """Requests kube-apiserver answered 429, from anyone, from its own /metrics."""
        text = self.cp.client.get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("apiserver_request_total{") and 'code="429"' in line
        )

    def activations(self) -> int:
        """KEDAScaleTargetActivated Events in the namespace (one per ScaledObject)."""
        events = self.listed("v1", "Event")
        return sum(e.get("reason") == "KEDAScaleTargetActivated" for e in events)

    def listed(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        response = self.cp.client.get(self.cp.path(api_version, kind, NS), timeout=120)
        response.raise_for_status()
        return list(response.json()["items"])


def worker(name: str) -> dict[str, Any]:
    """A scale target at zero replicas."""
    return scalable_object(WORKERS_API, "Worker", name, NS, 0)


def scaled_object(name: str, url: str) -> dict[str, Any]:
    return triggers.worker_object(
        name, NS, triggers.metrics_api_trigger(url), WORKERS_API, INTERVAL
    )


@pytest.fixture(scope="module")
def storm() -> Iterator[Storm]:
    source = MetricsSource()
    metrics_port = free_port()
    args = [
        f"--metrics-port={metrics_port}",
        f"--kube-api-qps={QPS}",
        f"--kube-api-burst={BURST}",
    ]

    def prepare(cp: ControlPlane) -> None:
        cp.apply(WORKER_CRD)
        crd = "workers.storm.e2e.io"
        cp.wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd, "Established")

    try:
        with cluster_mode(NS, args=args, register=False, prepare=prepare, hpa_sync_period=15) as (
            cp,
            adapter,
        ):
            yield Storm(cp, adapter, source, metrics_port)
    finally:
        source.close()


def create_all(storm: Storm) -> None:
    workers = storm.cp.path(WORKERS_API, "Worker", NS)
    objects = storm.cp.path("keda.sh/v1alpha1", "ScaledObject", NS)

    def documents(i: int) -> list[tuple[str, dict[str, Any]]]:
        name = f"w-{i}"
        return [(workers, worker(name)), (objects, scaled_object(name, storm.source.url))]

    create_in_parallel(storm.cp, OBJECTS, documents)


def ready_count(storm: Storm) -> int:
    return sum(
        (condition(so, "Ready") or {}).get("status") == "True"
        for so in storm.listed("keda.sh/v1alpha1", "ScaledObject")
    )


def until_writes_stop(storm: Storm, quiet: float, timeout: float) -> float:
    """Wait until the adapter has sent no write for ``quiet`` seconds; the writes so far."""
    last, since = storm.counts()[0], time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(5)
        writes = storm.counts()[0]
        if writes != last:
            last, since = writes, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return writes
    raise AssertionError(f"the adapter still writes after {timeout:g}s (last count {last})")


def sampling(storm: Storm, stop: threading.Event) -> None:
    while not stop.is_set():
        writes, throttled = storm.counts()
        storm.samples.append((time.monotonic(), writes, throttled))
        stop.wait(1.0)


def fastest(samples: list[tuple[float, float, float]], window: float) -> float:
    """The most writes sent in any span of at least ``window`` seconds between two samples,
    above what the budget allows in that span."""
    worst = float("-inf")
    for i, (t0, w0, _) in enumerate(samples):
        for t1, w1, _ in samples[i + 1 :]:
            if t1 - t0 >= window:
                worst = max(worst, (w1 - w0) - (QPS * (t1 - t0) + BURST))
                break
    return worst


def test_five_thousand_activations_at_once_are_paced_refused_none_and_converge(
    storm: Storm,
) -> None:
    began = time.monotonic()
    create_all(storm)
    created = time.monotonic()
    # Each new object: its finalizer, its HPA and its status, paced by the same budget.
    setup_writes = 3 * OBJECTS / QPS
    wait_for(
        f"all {OBJECTS} ScaledObjects Ready",
        lambda: ready_count(storm) == OBJECTS,
        setup_writes + INTERVAL + SLACK,
        5.0,
    )
    # Nothing changes (every source reads 0, every Worker is at 0): no write at all for two
    # polling intervals, at 5,000 objects.
    idle = until_writes_stop(storm, 2 * INTERVAL + 5, setup_writes + SLACK)
    throttled_before = storm.counts()[1]
    refused_before = storm.apiserver_429s()
    print(
        f"\nstorm: {OBJECTS} objects created in {created - began:.0f}s, ready and quiet "
        f"after {time.monotonic() - began:.0f}s ({idle:.0f} writes)"
    )

    stop = threading.Event()
    sampler = threading.Thread(target=sampling, args=(storm, stop), daemon=True)
    sampler.start()
    flipped = time.monotonic()
    storm.source.value = 50  # every ScaledObject active at its next poll
    storm_writes = WRITES_PER_ACTIVATION * OBJECTS / QPS
    try:
        wait_for(
            f"all {OBJECTS} Workers scaled from zero",
            lambda: all(w["spec"]["replicas"] >= 1 for w in storm.listed(WORKERS_API, "Worker")),
            INTERVAL + storm_writes + SLACK,
            5.0,
        )
        scaled = time.monotonic() - flipped
        wait_for(
            f"all {OBJECTS} ScaledObjects Active",
            lambda: all(
                (condition(so, "Active") or {}).get("status") == "True"
                for so in storm.listed("keda.sh/v1alpha1", "ScaledObject")
            ),
            INTERVAL + storm_writes + SLACK,
            5.0,
        )
        active = time.monotonic() - flipped
        # The Events go in the background, after every /scale and status.
        wait_for(
            f"{OBJECTS} KEDAScaleTargetActivated Events",
            lambda: storm.activations() == OBJECTS,
            storm_writes + SLACK,
            5.0,
        )
        told = time.monotonic() - flipped
    finally:
        stop.set()
        sampler.join(15)
    sent = storm.samples[-1][1] - storm.samples[0][1]
    print(
        f"storm: every Worker scaled in {scaled:.0f}s, every status Active in {active:.0f}s, "
        f"every Event out in {told:.0f}s; "
        f"{sent:.0f} writes; over any span of 5 s or more, at most "
        f"{fastest(storm.samples, 5.0):+.0f} writes beside what the budget allows"
    )

    assert storm.counts()[1] == throttled_before, "writes answered 429"
    assert storm.apiserver_429s() == refused_before, "kube-apiserver answered 429"
    # Paced: in any 5 s, no more than the budget allows, and the writes in flight when a
    # span began (one per activation worker) counted in it.
    assert fastest(storm.samples, 5.0) <= ACTIVATION_WORKERS, storm.samples[:20]
    assert sent >= WRITES_PER_ACTIVATION * OBJECTS * 0.9  # the writes were made, and counted
