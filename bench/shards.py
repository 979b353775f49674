"""Replicas with ``--shards`` side by side: 1, 2 and 4 replicas on a real control plane, N
ScaledObjects per replica, in one run.

    .venv/bin/python -m bench.shards [--replicas 1 2 4] [--objects-per-replica 10000]
                                     [--interval 30] [--shard-lease-duration 15]
                                     [--seconds 60] [--reads 2000]

For each R, a fresh control plane (the e2e harness's) and R adapter processes in cluster
mode with ``--shards``, sharing one serving pair and a ServiceAccount-token kubeconfig (as
tests/e2e/test_shards.py starts them), then R x N ScaledObjects, each with a metrics-api
trigger on its own URL ``/value/<name>`` of one loopback server that counts requests. The
source reads 0, so nothing is activated: what is measured is the cost of holding and
polling objects, not of a write storm. Targets are Workers (a CRD with /scale and no
controller), minReplicaCount 0; the APIService is not registered.

Once every URL has been asked and the replicas' writes (HPAs, statuses) have stopped:

- each replica's RSS (VmRSS at the end of the window) and CPU s/min over ``--seconds``;
- requests per polling interval at the source over the same window, beside the distinct
  queries (R x N): sharding keeps them equal whatever R;
- reads sent straight to the first replica's secure port with the replicas' ServiceAccount
  token, aiohttp, ``--concurrency`` at a time: objects it polls against objects another
  replica polls (one forwarded hop); p50/p99 of each, in alternating halves;
- with R >= 2, SIGKILL of the last replica: seconds until the survivors' polled shares sum
  to R x N (``shares held``), and until that and every URL asked again at the source
  (``re-owned``). The bound printed beside it is a Lease duration (the dead Lease expires
  unrenewed) plus a polling interval (its objects' next due poll); the survivors also
  reconcile what they gain, 5 objects at a time, before they poll it, which the bound
  leaves out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import aiohttp
import httpx

from bench.adapter import cpu_seconds, metric_url, rss_mb
from bench.footprint import metrics_api
from bench.report import Cell, main, note, percentile, print_table, summary
from metrics_adapter.control.shards import ADDRESS_ANNOTATION, GROUP_LABEL, rendezvous
from tests.support import triggers
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    Adapter,
    AdminClients,
    ControlPlane,
    client_context,
    scalable_kind,
    scalable_object,
    wait_for,
)
from tests.support.controlplane.adapter import adapter_kubeconfig, token_kubeconfig
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.servers import free_ports
from tests.support.value_server import ValueServer

NS = "shards-bench"
METRIC = "s0-metric-api-value"
WORKERS_API = "shards.bench.io/v1"
WORKER_CRD = scalable_kind("shards.bench.io", "Worker", "workers", selector_path=".status.selector")
WRITE_METHODS = ('method="PATCH"', 'method="POST"', 'method="DELETE"')
"""What the controllers write with (a Lease is renewed with PUT, and is not counted)."""
SLACK = 120.0
"""What a busy 2-core machine adds to a wait bounded by design."""


@dataclass
class Group:
    cp: ControlPlane
    replicas: list[Adapter]
    metrics_ports: list[int]
    token: str
    """The replicas' ServiceAccount token: what the benchmark reads the API with."""

    def scrape(self, i: int) -> str:
        url = f"http://127.0.0.1:{self.metrics_ports[i]}/metrics"
        return httpx.get(url, timeout=10).text

    def series(self, i: int, name: str) -> float:
        """Replica ``i``'s sample of ``name`` (with its labels), 0 when it has none yet."""
        for line in self.scrape(i).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def polled(self, i: int) -> int:
        return int(self.series(i, 'metrics_adapter_shard_objects{held="polled"}'))

    def writes(self, i: int) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self.scrape(i).splitlines()
            if line.startswith("rest_client_requests_total{")
            and any(method in line for method in WRITE_METHODS)
        )

    def pid(self, i: int) -> int:
        process = self.replicas[i].process
        assert process is not None and process.process is not None, f"replica {i} is not running"
        return process.process.pid

    def owners(self) -> dict[str, int]:
        """Each member's identity (from the group's Leases) to its replica's index."""
        path = self.cp.path("coordination.k8s.io/v1", "Lease", ADAPTER_NAMESPACE)
        answer = self.cp.client.get(path, params={"labelSelector": GROUP_LABEL})
        answer.raise_for_status()
        by_url = {replica.url: i for i, replica in enumerate(self.replicas)}
        return {
            lease["spec"]["holderIdentity"]: by_url[
                lease["metadata"]["annotations"][ADDRESS_ANNOTATION]
            ]
            for lease in answer.json()["items"]
        }


def shard_flags(port: int, metrics_port: int, args: argparse.Namespace) -> list[str]:
    return [
        "--shards",
        f"--shard-lease-duration={args.shard_lease_duration}",
        f"--shard-address=https://127.0.0.1:{port}",
        f"--metrics-port={metrics_port}",
        f"--kube-api-qps={args.kube_api_qps:g}",
        f"--kube-api-burst={args.kube_api_burst}",
        "--log-level=warning",
    ]


@contextmanager
def group(count: int, args: argparse.Namespace) -> Iterator[Group]:
    """A control plane and ``count`` replicas with ``--shards``, all seeing ``count`` members."""
    ports = free_ports(2 * count)
    secure, metrics = ports[:count], ports[count:]
    tokens: list[str] = []

    def prepare(cp: ControlPlane) -> None:
        tokens.append(token_kubeconfig(cp))
        cp.apply(WORKER_CRD)
        crd = "workers.shards.bench.io"
        cp.wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd, "Established")

    began = time.monotonic()
    with (
        cluster_mode(
            NS,
            args=shard_flags(secure[0], metrics[0], args),
            register=False,
            prepare=prepare,
            report=note,
            final_tail=0,
            hpa_sync_period=15.0,  # kube-controller-manager's default, not the tests' 1 s
            port=secure[0],
        ) as (cp, first),
        ExitStack() as stack,
    ):
        replicas = [first]
        for i in range(1, count):
            state = cp.state / f"replica-{i}"
            state.mkdir(exist_ok=True)
            other = Adapter(
                objects=state / "objects",
                state=state,
                pair=first.pair,  # replicas share the serving Secret
                ca_pem=cp.ca.pem,
                kubeconfig=adapter_kubeconfig(cp),
                args=shard_flags(secure[i], metrics[i], args),
                port=secure[i],
            )
            stack.callback(other.stop)
            replicas.append(other.start(timeout=60))
        g = Group(cp, replicas, metrics, tokens[0])
        wait_for(
            f"{count} members seen by every replica",
            lambda: all(
                g.series(i, "metrics_adapter_shard_members") == count for i in range(count)
            ),
            SLACK,
            0.5,
        )
        note(f"shards: R={count}: control plane and replicas up in {time.monotonic() - began:.0f}s")
        yield g


def scaled_object(name: str, source: ValueServer, interval: int) -> dict[str, object]:
    doc = triggers.scaled_object(
        name,
        NS,
        metrics_api(source.url, name, own=True),
        minReplicaCount=0,
        maxReplicaCount=3,
        pollingInterval=interval,
    )
    doc["spec"]["scaleTargetRef"] = {"apiVersion": WORKERS_API, "kind": "Worker", "name": name}
    return doc


def create_all(g: Group, names: Sequence[str], source: ValueServer, interval: int) -> None:
    """A Worker at 0 and its ScaledObject for each name, 4 at a time as admin."""
    clients = AdminClients(g.cp)
    workers = g.cp.path(WORKERS_API, "Worker", NS)
    objects = g.cp.path("keda.sh/v1alpha1", "ScaledObject", NS)

    def create(name: str) -> None:
        client = clients.get()
        for path, doc in (
            (workers, scalable_object(WORKERS_API, "Worker", name, NS, 0)),
            (objects, scaled_object(name, source, interval)),
        ):
            answer = client.post(path, json=doc, timeout=60)
            if answer.status_code != 201:
                raise RuntimeError(
                    f"create {path}/{name}: {answer.status_code} {answer.text[:300]}"
                )

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, names))
    finally:
        clients.close()


def wait_quiet(g: Group, timeout: float, quiet: float = 5.0) -> None:
    """Until no replica has sent a write for ``quiet`` seconds: the objects' HPAs and first
    statuses are written, paced by --kube-api-qps, and would otherwise count as load."""
    last: list[float] = []
    since = time.monotonic()

    def settled() -> bool:
        nonlocal last, since
        now = [g.writes(i) for i in range(len(g.replicas))]
        if now != last:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= quiet

    wait_for("the replicas' writes to stop", settled, timeout, 1.0)


@dataclass(frozen=True)
class Usage:
    rss_mb: list[float]
    cpu_s_per_min: list[float]
    requests_per_interval: float


def usage(g: Group, source: ValueServer, interval: int, seconds: float) -> Usage:
    count = len(g.replicas)
    cpu = [cpu_seconds(g.pid(i)) for i in range(count)]
    requests, start = source.requests, time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - start
    used = [(cpu_seconds(g.pid(i)) - cpu[i]) / window * 60 for i in range(count)]
    polls = (source.requests - requests) / window * interval
    return Usage([rss_mb(g.pid(i)) for i in range(count)], used, polls)


async def read(
    base: str,
    lists: tuple[Sequence[str], Sequence[str]],
    token: str,
    ca_pem: bytes,
    concurrency: int,
    rounds: int,
) -> tuple[list[float], list[float], int]:
    """Read the two lists of paths (direct, forwarded) in ``rounds`` alternating parts,
    ``concurrency`` at a time: the seconds of each 200 of each list, and how many were not."""
    timings: tuple[list[float], list[float]] = ([], [])
    failed = 0
    connector = aiohttp.TCPConnector(ssl=client_context(ca_pem), limit=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def reader(work: Iterator[str], into: list[float]) -> None:
            nonlocal failed
            for path in work:
                began = time.perf_counter()
                async with session.get(base + path) as answer:
                    await answer.read()
                    if answer.status == 200:
                        into.append(time.perf_counter() - began)
                    else:
                        failed += 1

        for part in range(rounds):
            for which in (0, 1):
                work = iter(lists[which][part::rounds])
                await asyncio.gather(*(reader(work, timings[which]) for _ in range(concurrency)))
    return timings[0], timings[1], failed


@dataclass(frozen=True)
class Reads:
    direct_ms: tuple[float, float] | None
    forwarded_ms: tuple[float, float] | None
    failed: int
    forwarded_seen: int
    """What the first replica counted as forwarded and answered while it was read."""


def reads(g: Group, names: Sequence[str], args: argparse.Namespace) -> Reads:
    """Direct and forwarded reads at the first replica: which object is whose from the
    group's Leases and the same rendezvous hash the replicas use."""
    owners = g.owners()
    members = list(owners)
    mine: list[str] = []
    others: list[str] = []
    for name in names:
        owner = rendezvous(f"{NS}/{name}", members)
        (mine if owner is not None and owners[owner] == 0 else others).append(name)
    if len(mine) != g.polled(0):
        note(f"shards: replica 0 polls {g.polled(0)}, the hash gives it {len(mine)}")

    def paths(chosen: list[str], count: int) -> list[str]:
        if not chosen:
            return []
        return [metric_url("", NS, METRIC, chosen[i % len(chosen)]) for i in range(count)]

    base = g.replicas[0].url
    warm = (paths(mine, 200), paths(others, 200))
    asyncio.run(read(base, warm, g.token, g.cp.ca.pem, args.concurrency, 1))
    answered = 'metrics_adapter_forwarded_requests_total{result="answered"}'
    before = g.series(0, answered)
    direct, forwarded, failed = asyncio.run(
        read(
            base,
            (paths(mine, args.reads), paths(others, args.reads)),
            g.token,
            g.cp.ca.pem,
            args.concurrency,
            2,
        )
    )
    seen = int(g.series(0, answered) - before)
    if seen < len(forwarded):
        note(f"shards: {len(forwarded)} reads of others' objects, {seen} counted as forwarded")

    def p50_p99(seconds: list[float]) -> tuple[float, float] | None:
        if not seconds:
            return None
        return percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000

    return Reads(p50_p99(direct), p50_p99(forwarded), failed, seen)


@dataclass(frozen=True)
class Reowned:
    held_s: float
    """From the SIGKILL until the survivors' shares add up to every object: the dead Lease
    expired, and the gained objects were reconciled (5 at a time) and handed to the poller."""
    asked_s: float
    """Until every URL was asked at the source again: polled by the new owners."""


def reown(g: Group, source: ValueServer, total: int, args: argparse.Namespace) -> Reowned:
    """SIGKILL the last replica; seconds until the survivors' shares add up to every object,
    and until every URL was asked again at the source."""
    survivors = range(len(g.replicas) - 1)
    source.paths.clear()
    os.kill(g.pid(len(g.replicas) - 1), signal.SIGKILL)
    killed = time.monotonic()
    held: float | None = None
    asked: float | None = None

    def reowned() -> bool:
        nonlocal held, asked
        if held is None and sum(g.polled(i) for i in survivors) == total:
            held = time.monotonic() - killed
        if asked is None and len(source.paths) >= total:
            asked = time.monotonic() - killed
        return held is not None and asked is not None

    bound = args.shard_lease_duration + args.interval
    wait_for("the killed replica's share polled again", reowned, bound + SLACK, 0.25)
    assert held is not None and asked is not None
    return Reowned(held, asked)


@dataclass(frozen=True)
class Row:
    replicas: int
    objects: int
    created_s: float
    polled_s: float
    shares: list[int]
    usage: Usage
    reads: Reads
    reowned: Reowned | None


def measure(count: int, args: argparse.Namespace) -> Row:
    total = count * args.objects_per_replica
    names = [f"w-{i}" for i in range(total)]
    with ValueServer(values=lambda path: 0) as source, group(count, args) as g:
        began = time.monotonic()
        create_all(g, names, source, args.interval)
        created = time.monotonic() - began
        note(f"shards: R={count}: {total} Workers and ScaledObjects created in {created:.0f}s")
        wait_for(
            f"every one of {total} URLs asked at the source",
            lambda: len(source.paths) >= total and sum(g.polled(i) for i in range(count)) == total,
            # A new object is bound in its reconcile, which then waits for its writes (a
            # finalizer, an HPA, a status) at --kube-api-qps: 5 at a time, the last of a
            # replica's N is bound after about N x 3 / qps seconds.
            args.interval + SLACK + total / 50 + 3 * args.objects_per_replica / args.kube_api_qps,
            1.0,
        )
        polled = time.monotonic() - began
        note(f"shards: R={count}: every object polled {polled:.0f}s after the first create")
        wait_quiet(g, SLACK + total / args.kube_api_qps * 4)
        time.sleep(args.settle)
        shares = [g.polled(i) for i in range(count)]
        used = usage(g, source, args.interval, args.seconds)
        note(f"shards: R={count}: window done, reading the API")
        got = reads(g, names, args)
        took = reown(g, source, total, args) if count > 1 else None
        if took is not None:
            note(
                f"shards: R={count}: share of the killed replica held again in "
                f"{took.held_s:.1f}s, every URL asked again in {took.asked_s:.1f}s"
            )
    return Row(count, total, created, polled, shares, used, got, took)


def per_replica(rows: Sequence[Row]) -> list[list[Cell]]:
    return [
        [
            row.replicas,
            i,
            row.shares[i],
            row.objects,
            round(row.usage.rss_mb[i], 1),
            row.usage.cpu_s_per_min[i],
        ]
        for row in rows
        for i in range(row.replicas)
    ]


def per_group(rows: Sequence[Row], bound: int) -> list[list[Cell]]:
    def ms(pair: tuple[float, float] | None, which: int) -> Cell:
        return None if pair is None else pair[which]

    return [
        [
            row.replicas,
            row.objects,
            round(row.polled_s),
            row.objects,
            round(row.usage.requests_per_interval),
            round(max(row.usage.rss_mb), 1),
            max(row.usage.cpu_s_per_min),
            ms(row.reads.direct_ms, 0),
            ms(row.reads.direct_ms, 1),
            ms(row.reads.forwarded_ms, 0),
            ms(row.reads.forwarded_ms, 1),
            row.reads.failed,
            None if row.reowned is None else round(row.reowned.held_s, 1),
            None if row.reowned is None else round(max(row.reowned.held_s, row.reowned.asked_s), 1),
            None if row.reowned is None else bound,
        ]
        for row in rows
    ]


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--objects-per-replica", type=int, default=10000)
    parser.add_argument("--interval", type=int, default=30, help="pollingInterval (KEDA's default)")
    parser.add_argument(
        "--shard-lease-duration", type=int, default=15, help="the adapter's default"
    )
    parser.add_argument("--seconds", type=float, default=60, help="the measured window")
    parser.add_argument("--settle", type=float, default=10, help="pause before the window")
    parser.add_argument("--reads", type=int, default=2000, help="reads of each kind")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--kube-api-qps",
        type=float,
        default=100,
        help="each replica's (the adapter's default is 20): the first HPAs and statuses of "
        "R x N new objects are written at this pace before the window",
    )
    parser.add_argument("--kube-api-burst", type=int, default=50)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for count in args.replicas:
        began = time.monotonic()
        rows.append(measure(count, args))
        note(f"shards: R={count} done in {time.monotonic() - began:.0f}s")
    n, interval = args.objects_per_replica, args.interval
    print_table(
        f"Each replica, {n} ScaledObjects per replica, metrics-api on an own URL each, "
        f"pollingInterval {interval}; window {args.seconds:g}s once all are polled and "
        "their writes are done",
        ("replicas", "replica", "polled", "watched", "RSS MiB", "CPU s / min"),
        per_replica(rows),
    )
    bound = args.shard_lease_duration + interval
    print_table(
        f"The group: reads at replica 0, aiohttp -c{args.concurrency}, {args.reads} of each "
        f"kind; SIGKILL of the last replica, --shard-lease-duration {args.shard_lease_duration}",
        (
            "replicas",
            "ScaledObjects",
            "all polled s",
            "distinct queries",
            "requests / interval",
            "max RSS MiB",
            "max CPU s / min",
            "direct p50 ms",
            "direct p99 ms",
            "forwarded p50 ms",
            "forwarded p99 ms",
            "failed reads",
            "shares held s",
            "re-owned s",
            "bound s",
        ),
        per_group(rows, bound),
    )
    return [
        summary(
            "shards",
            replicas=row.replicas,
            objects=row.objects,
            distinct=row.objects,
            requests_per_interval=round(row.usage.requests_per_interval),
            rss_mb_max=round(max(row.usage.rss_mb), 1),
            cpu_s_per_min_max=max(row.usage.cpu_s_per_min),
            forwarded_p99_ms=row.reads.forwarded_ms[1] if row.reads.forwarded_ms else "-",
            reown_s=(
                round(max(row.reowned.held_s, row.reowned.asked_s), 1) if row.reowned else "-"
            ),
        )
        for row in rows
    ]


if __name__ == "__main__":
    main(run)
