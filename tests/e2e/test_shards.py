"""Three replicas with ``--shards`` on a real control plane: each object is polled by one
replica only, and a replica killed with SIGKILL hands its share over within a Lease
duration plus a polling interval, with no target scaled down and no lastActiveTime lost.

Every ScaledObject reads a metrics-api URL of its own (``/value/<name>``) from one loopback
server that counts requests by path, so "polled once" is counted where it matters: at the
source. Targets are Workers (a CRD with /scale and no controller), activated to 1 by the
owner's activator (the source reads 5, above the activation threshold 0); the APIService is
not registered, so every change of replicas is an activator's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MetricsSource
from tests.support import triggers
from tests.support.controlplane import (
    Adapter,
    AdminClients,
    ControlPlane,
    create_in_parallel,
    scalable_kind,
    scalable_object,
    wait_for,
)
from tests.support.controlplane.adapter import adapter_kubeconfig, token_kubeconfig
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.servers import free_ports

pytestmark = pytest.mark.e2e

NS = "shards"
REPLICAS = 3
OBJECTS = 150
INTERVAL = 5
LEASE = 3
"""--shard-lease-duration: renewed every 0.4 s, writes fenced 2 s after the last renewal."""
WORKERS_API = "shards.e2e.io/v1"
WORKER_CRD = scalable_kind("shards.e2e.io", "Worker", "workers", selector_path=".status.selector")
SLACK = 60.0
"""What a loaded 2-core machine adds to a few hundred objects' first polls and writes."""
REOWNED_WITHIN = LEASE + INTERVAL + 2 * LEASE * 2 / 15 + 10.0
"""A killed replica's Lease expires LEASE after the others saw its last renewal (seen up to
a round late); its share is polled at the next due poll, within one interval; 10 s for a
loaded machine's late rounds and polls."""


@dataclass
class Group:
    cp: ControlPlane
    replicas: list[Adapter]
    metrics_ports: list[int]
    source: MetricsSource
    stack: ExitStack

    def add_replica(self) -> Adapter:
        """One more replica, on ports of its own, sharing the first one's serving pair (the
        replicas of a Deployment share the serving Secret)."""
        first, i = self.replicas[0], len(self.replicas)
        state = self.cp.state / f"replica-{i}"
        state.mkdir(exist_ok=True)
        secure, metrics = free_ports(2)
        other = Adapter(
            objects=state / "objects",
            state=state,
            pair=first.pair,
            ca_pem=self.cp.ca.pem,
            kubeconfig=adapter_kubeconfig(self.cp),
            args=shard_args(secure, metrics),
            port=secure,
        )
        self.stack.callback(other.stop)
        self.replicas.append(other.start(timeout=60))
        self.metrics_ports.append(metrics)
        return other

    def series(self, i: int, name: str) -> float:
        """One sample of replica ``i``'s /metrics (the first line starting with ``name``)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[i]}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"replica {i}: no {name} in its /metrics")

    def polled(self, i: int) -> int:
        return int(self.series(i, 'metrics_adapter_shard_objects{held="polled"}'))

    def listed(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        response = self.cp.client.get(self.cp.path(api_version, kind, NS), timeout=60)
        response.raise_for_status()
        return list(response.json()["items"])

    def replicas_of_workers(self) -> dict[str, int]:
        return {
            w["metadata"]["name"]: int(w["spec"]["replicas"])
            for w in self.listed(WORKERS_API, "Worker")
        }


def scaled_object(name: str, url: str) -> dict[str, Any]:
    # A long cooldown: an activity missed by a hand-over would not show as a scale-down.
    return triggers.worker_object(name, NS, url, WORKERS_API, INTERVAL, cooldownPeriod=3600)


def shard_args(port: int, metrics_port: int) -> list[str]:
    return [
        "--shards",
        f"--shard-lease-duration={LEASE}",
        f"--shard-address=https://127.0.0.1:{port}",
        f"--metrics-port={metrics_port}",
    ]


@pytest.fixture(scope="module")
def group() -> Iterator[Group]:
    source = MetricsSource()
    source.value = 5
    secure, metrics = free_ports(2)

    def prepare(cp: ControlPlane) -> None:
        token_kubeconfig(cp)
        cp.apply(WORKER_CRD)
        crd = "workers.shards.e2e.io"
        cp.wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd, "Established")

    try:
        with (
            cluster_mode(NS, args=shard_args(secure, metrics), prepare=prepare, port=secure) as (
                cp,
                first,
            ),
            ExitStack() as stack,
        ):
            g = Group(cp, [first], [metrics], source, stack)
            for _ in range(1, REPLICAS):
                g.add_replica()
            yield g
    finally:
        source.close()


def create_all(g: Group) -> None:
    workers = g.cp.path(WORKERS_API, "Worker", NS)
    objects = g.cp.path("keda.sh/v1alpha1", "ScaledObject", NS)
    base = g.source.url.rsplit("/", 1)[0]

    def documents(i: int) -> list[tuple[str, dict[str, Any]]]:
        name = f"w-{i}"
        return [
            (workers, scalable_object(WORKERS_API, "Worker", name, NS, 0)),
            (objects, scaled_object(name, f"{base}/value/{name}")),
        ]

    create_in_parallel(g.cp, OBJECTS, documents)


def all_active(g: Group) -> bool:
    return all(n == 1 for n in g.replicas_of_workers().values())


def test_every_object_is_polled_by_exactly_one_replica(group: Group) -> None:
    g = group
    wait_for(
        f"{REPLICAS} members seen by every replica",
        lambda: all(g.series(i, "metrics_adapter_shard_members") == REPLICAS for i in range(3)),
        SLACK,
        0.5,
    )
    create_all(g)
    wait_for(f"all {OBJECTS} Workers activated to 1", lambda: all_active(g), SLACK + INTERVAL, 1)
    shares = [g.polled(i) for i in range(REPLICAS)]
    assert sum(shares) == OBJECTS, shares
    assert all(share > OBJECTS / REPLICAS / 3 for share in shares), shares
    # At the source: over four intervals, every URL asked about four times, none twelve.
    g.source.hits.clear()
    time.sleep(4 * INTERVAL)
    hits = dict(g.source.hits)
    paths = {f"/value/w-{i}" for i in range(OBJECTS)}
    assert set(hits) == paths
    assert max(hits.values()) <= 5, sorted(hits.items(), key=lambda kv: -kv[1])[:5]
    assert sum(hits.values()) <= OBJECTS * 5


def test_any_replica_answers_through_the_aggregator(group: Group) -> None:
    """The APIService routes to the first replica only: two thirds of the reads are for
    objects another replica polls, and each is answered by one forwarded hop."""
    g = group
    paths = [
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/s0-metric-api-value"
        f"?labelSelector=scaledobject.keda.sh/name=w-{i}"
        for i in range(OBJECTS)
    ]
    values = []
    for path in paths:
        answer = g.cp.client.get(path, timeout=30)
        assert answer.status_code == 200, (path, answer.text[:300])
        values.append(answer.json()["items"][0]["value"])
    assert set(values) == {"5"}
    forwarded = g.series(0, 'metrics_adapter_forwarded_requests_total{result="answered"}')
    assert OBJECTS - g.polled(0) <= forwarded, (forwarded, g.polled(0))


WRITE_METHODS = ("PATCH", "POST", "DELETE")
"""What the controllers write with (a Lease is renewed with PUT)."""
PAUSED_FOR = 2 * LEASE + 2.0
"""Long enough for the others to see the paused replica's Lease expire and take its share."""


def writes_sent(g: Group, i: int) -> float:
    """What replica ``i`` wrote to kube-apiserver: its POST, PATCH and DELETE requests but
    the TokenReviews and SubjectAccessReviews it POSTs to check who reads its metrics (the
    HPA controller reads throughout, some of it forwarded to this replica)."""
    text = httpx.get(f"http://127.0.0.1:{g.metrics_ports[i]}/metrics", timeout=10).text
    sent = reviews = 0.0
    for line in text.splitlines():
        value = float(line.rsplit(" ", 1)[-1]) if line and not line.startswith("#") else 0.0
        if line.startswith("rest_client_requests_total{") and any(
            f'method="{m}"' in line for m in WRITE_METHODS
        ):
            sent += value
        elif line.startswith(
            ("apiserver_delegated_authn_request_total{", "apiserver_delegated_authz_request_total{")
        ):
            reviews += value
    return sent - reviews


def writes_by_method(g: Group, i: int) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{g.metrics_ports[i]}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith("rest_client_requests_total{")]


def test_a_paused_replica_writes_nothing_when_it_wakes_until_the_hand_over_is_done(
    group: Group,
) -> None:
    """SIGSTOP one replica; meanwhile every source drops to 0, so every owner writes a new
    status (Active False; the cooldown keeps the Workers up). The others take the paused
    replica's share and write those; when it wakes, its polls are overdue and it reads 0
    too, but it writes nothing for a Lease duration: fenced, then waiting as a newcomer."""
    g = group
    victim = g.replicas[1]
    assert victim.process is not None and victim.process.process is not None
    pid = victim.process.process.pid
    others = [i for i in range(REPLICAS) if i != 1]
    before = writes_sent(g, 1)  # all Workers active, nothing changing: it is idle
    before_lines = set(writes_by_method(g, 1))
    os.kill(pid, signal.SIGSTOP)
    try:
        g.source.value = 0
        g.source.hits.clear()
        time.sleep(PAUSED_FOR)
        wait_for(
            "the others polling the paused replica's share",
            lambda: sum(g.polled(i) for i in others) == OBJECTS,
            SLACK,
            0.5,
        )
        # Every source asked again by the others while the victim sleeps.
        wait_for(
            "every object polled during the pause",
            lambda: len(g.source.hits) == OBJECTS,
            INTERVAL + SLACK,
            0.5,
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    woke = time.monotonic()
    samples = []
    while time.monotonic() < woke + LEASE - 0.5:
        samples.append(writes_sent(g, 1))
        time.sleep(0.2)
    if max(samples) != before:
        print(victim.tail(120))
    changed = set(writes_by_method(g, 1)) ^ before_lines
    assert samples and max(samples) == before, (before, samples, sorted(changed))
    wait_for(
        "the paused replica's share back with it",
        lambda: (
            sum(g.polled(i) for i in range(REPLICAS)) == OBJECTS
            and all(g.series(i, "metrics_adapter_shard_members") == REPLICAS for i in range(3))
        ),
        SLACK,
        0.5,
    )
    assert all_active(g), "a Worker was scaled down"
    g.source.value = 5


def test_a_killed_replica_s_share_is_reowned_with_no_scale_down(group: Group) -> None:
    g = group
    victim = g.replicas[-1]
    assert victim.process is not None and victim.process.process is not None
    statuses = {
        so["metadata"]["name"]: so["status"].get("lastActiveTime")
        for so in g.listed("keda.sh/v1alpha1", "ScaledObject")
    }
    assert all(statuses.values()), "every ScaledObject was active and says when"
    g.source.hits.clear()
    os.kill(victim.process.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = range(REPLICAS - 1)
    paths = {f"/value/w-{i}" for i in range(OBJECTS)}

    def reowned() -> bool:
        assert all_active(g), "a Worker was scaled down during the hand-over"
        return set(g.source.hits) >= paths and sum(g.polled(i) for i in survivors) == OBJECTS

    wait_for("the killed replica's share polled again", reowned, REOWNED_WITHIN + SLACK, 0.5)
    took = time.monotonic() - killed
    print(f"re-owned and polled {took:.1f}s after SIGKILL (bound {REOWNED_WITHIN:.1f}s)")
    assert all(g.series(i, "metrics_adapter_shard_members") == REPLICAS - 1 for i in survivors)
    after = {
        so["metadata"]["name"]: so["status"].get("lastActiveTime")
        for so in g.listed("keda.sh/v1alpha1", "ScaledObject")
    }
    assert all(after[name] and after[name] >= before for name, before in statuses.items())
    assert all_active(g)


@dataclass
class Reader:
    """Reads every object's metric through the aggregator, round after round, in a thread,
    recording every answer that is not a 200 with a value."""

    g: Group
    stop: threading.Event = field(default_factory=threading.Event)
    reads: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)

    def run(self) -> None:
        clients = AdminClients(self.g.cp)
        try:
            client = clients.get()
            while not self.stop.is_set():
                for path in metric_paths():
                    answer = client.get(path, timeout=30)
                    self.reads += 1
                    if answer.status_code != 200:
                        self.refused.append((path, answer.status_code, answer.text[:200]))
        finally:
            clients.close()


def metric_paths() -> list[str]:
    return [
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/s0-metric-api-value"
        f"?labelSelector=scaledobject.keda.sh/name=w-{i}"
        for i in range(OBJECTS)
    ]


def live(g: Group) -> list[int]:
    return [
        i
        for i, r in enumerate(g.replicas)
        if r.process is not None
        and r.process.process is not None
        and r.process.process.poll() is None
    ]


def converged(g: Group, members: int) -> bool:
    running = live(g)
    return (
        len(running) == members
        and all(g.series(i, "metrics_adapter_shard_members") == members for i in running)
        and sum(g.polled(i) for i in running) == OBJECTS
    )


def test_three_to_five_to_two_rebalances_with_every_read_answered(group: Group) -> None:
    """After the kill, two replicas: one more makes three, then five, then three stop
    (SIGTERM: each deletes its Lease, its share is taken at once). Ownership rebalances
    each time, the source still sees one request per object per interval, and every read
    through the aggregator (all to the first replica) is answered 200 throughout: a
    hand-over serves the last answer given until the new owner has polled."""
    g = group
    reader = Reader(g)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            g.add_replica()
        wait_for("five members, every object owned once", lambda: converged(g, 5), SLACK, 0.5)
        assert all(g.polled(i) > 0 for i in live(g))
        g.source.hits.clear()
        time.sleep(4 * INTERVAL)
        assert max(dict(g.source.hits).values()) <= 5
        for i in live(g)[2:]:
            g.replicas[i].stop()
        wait_for("two members, every object owned once", lambda: converged(g, 2), SLACK, 0.5)
        time.sleep(2 * INTERVAL)  # reads after the last hand-over
    finally:
        reader.stop.set()
        thread.join(timeout=60)
    assert reader.reads > 2 * OBJECTS
    assert reader.refused == [], reader.refused[:5]
    assert all_active(g), "a Worker was scaled down"
