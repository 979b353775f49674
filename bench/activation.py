"""Wake from zero on a real control plane: first message published -> the target's ``/scale``
at 1 ("first") and at the 5 the burst needs ("all"), at the seed's ``pollingInterval: 30``
with kube-controller-manager's default 15 s HPA sync, per source, wake hints on and off.

    .venv/bin/python -m bench.activation [--sources nats-jetstream,redis,kafka,...]
                                         [--hints on,off] [--repetitions 10] [--seed S]
                                         [--polling-interval 30] [--hpa-sync 15]

etcd, kube-apiserver and kube-controller-manager run on loopback (the e2e harness, here with
``--horizontal-pod-autoscaler-sync-period=15s``, the default of real clusters), the adapter
in cluster mode registered as the external metrics API, and each chosen source's real server
(:mod:`bench.activation_sources`). The burst is the seed's echo-worker: 50 messages, target
10 per replica, 0 to 5 replicas; SQS, which cannot tell of new work without receiving it, is
the polling baseline.

Each case (a source, hints on or off) runs its repetitions concurrently, to keep the wall
time sane: each has its own Deployment at 0, its own queue (stream, list, topic, queue) and
its own ScaledObject. Once every one of them is Ready and its first poll has read the queue
empty, each repetition publishes its burst at its own random phase of the polling interval
(uniform over one interval), as work arrives at an object idle for hours. One list of the
namespace's Deployments every 50 ms reads every target's ``spec.replicas`` (what ``/scale``
answers). Hints on and off are two runs of the adapter (``--wake-hints`` /
``--no-wake-hints``) on the same control plane and servers.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from bench.activation_sources import SOURCES, Source
from bench.report import main, note, percentile, print_table, summary
from tests.support.controlplane import Adapter, ControlPlane, condition, deployment, wait_for
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.triggers import scaled_object

NS = "bench-activation"
MESSAGES = 50
WANTED = 5
"""ceil(50 / 10), under maxReplicaCount 5: the replicas the burst needs."""
PROBE_SECONDS = 0.05
HINT_FLAGS = {"on": "--wake-hints", "off": "--no-wake-hints"}
SLACK = 60.0
"""Beyond a polling interval and two HPA syncs, how long a repetition may take before it
counts as missed: a loaded 2-core machine's seconds of apiserver and adapter work."""


def until(what: str, probe: Callable[[], bool], timeout: float) -> float:
    """The monotonic time ``probe`` first held, read every 50 ms."""
    return wait_for(what, lambda: time.monotonic() if probe() else None, timeout, PROBE_SECONDS)


def p(values: list[float], pct: float) -> float | None:
    return percentile(values, pct) if values else None


@dataclass(frozen=True, slots=True)
class Case:
    source: str
    hints: str
    first: list[float]
    all: list[float]
    missed: int

    def line(self, interval: int, hpa_sync: float) -> str:
        return summary(
            "activation",
            source=self.source,
            polling_interval_s=interval,
            hpa_sync_s=f"{hpa_sync:g}",
            hints=self.hints,
            first_p50_s=p(self.first, 50),
            first_p95_s=p(self.first, 95),
            all_p50_s=p(self.all, 50),
            all_p95_s=p(self.all, 95),
            repetitions=len(self.first) + self.missed,
            missed=self.missed,
        )


@contextmanager
def cluster(hpa_sync: float, hints: str) -> Iterator[tuple[ControlPlane, Adapter]]:
    began = time.monotonic()
    with cluster_mode(
        NS,
        args=[HINT_FLAGS[hints]],
        report=note,
        final_tail=0,
        hpa_sync_period=hpa_sync,
    ) as (cp, adapter):
        note(f"activation: control plane and adapter ready in {time.monotonic() - began:.1f}s")
        yield cp, adapter


def with_hints(adapter: Adapter, hints: str) -> None:
    """Run the adapter with wake hints ``on`` or ``off`` (a restart on the same port)."""
    wanted = HINT_FLAGS[hints]
    if wanted in adapter.args:
        return
    adapter.args = [a for a in adapter.args if a not in HINT_FLAGS.values()] + [wanted]
    adapter.restart()


def echo_worker(source: Source, name: str, interval: int) -> dict[str, Any]:
    """The seed's echo-worker on ``name``'s queue, with the seed's ``pollingInterval`` (30
    unless told) and a cooldown no repetition outlives."""
    return scaled_object(
        name,
        NS,
        source.trigger(name),
        minReplicaCount=0,
        maxReplicaCount=WANTED,
        pollingInterval=interval,
        cooldownPeriod=600,
    )


def settled(cp: ControlPlane, names: Sequence[str]) -> bool:
    """Every ScaledObject Ready, and inactive: its first poll read the queue empty."""
    items = cp.client.get(f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects").json()
    found = {o["metadata"]["name"]: o for o in items.get("items") or []}

    def status(name: str, kind: str) -> str | None:
        return (condition(found.get(name) or {}, kind) or {}).get("status")

    return all(status(n, "Ready") == "True" and status(n, "Active") == "False" for n in names)


def replicas(cp: ControlPlane) -> dict[str, int]:
    """Every Deployment of the namespace: its ``spec.replicas``, as ``/scale`` reads it."""
    response = cp.client.get(f"/apis/apps/v1/namespaces/{NS}/deployments")
    response.raise_for_status()
    return {
        d["metadata"]["name"]: int(d["spec"].get("replicas") or 0)
        for d in response.json().get("items") or []
    }


def run_case(
    cp: ControlPlane,
    source: Source,
    hints: str,
    args: argparse.Namespace,
    rng: random.Random,
    ready_timeout: float | None = None,
) -> Case:
    """``args.repetitions`` bursts of the seed's echo-worker; ``ready_timeout``: how long every
    object may take to be Ready with its first poll read (a polling interval and ``SLACK``
    unless told)."""
    tag = f"{source.name.split('-')[0]}-{hints}"
    names = [f"{tag}-{i}" for i in range(args.repetitions)]
    for name in names:
        source.prepare(name)
        cp.apply(deployment(name, NS, 0))
        cp.apply(echo_worker(source, name, args.polling_interval))
    first_poll = ready_timeout or args.polling_interval + SLACK  # one interval, then a poll
    wait_for(f"{tag}: Ready, first poll read 0", lambda: settled(cp, names), first_poll, 0.5)

    published: dict[str, float] = {}
    failures: list[str] = []

    def publish(name: str) -> None:
        published[name] = time.monotonic()
        try:
            source.publish(name, MESSAGES)
        except Exception as exc:  # reported below, on the main thread
            failures.append(f"{name}: publishing failed: {exc!r}")

    timers = [
        threading.Timer(rng.uniform(0, args.polling_interval), publish, (name,)) for name in names
    ]
    for timer in timers:
        timer.start()
    first: dict[str, float] = {}
    full: dict[str, float] = {}
    deadline = time.monotonic() + args.polling_interval * 2 + 2 * args.hpa_sync + SLACK
    try:
        while len(full) < len(names) and time.monotonic() < deadline and not failures:
            counts = replicas(cp)
            now = time.monotonic()
            for name in names:
                count, at = counts.get(name, 0), published.get(name)
                if at is None:
                    if count:
                        failures.append(f"{name} left 0 replicas before any message")
                    continue
                if count >= 1:
                    first.setdefault(name, now - at)
                if count >= WANTED:
                    full.setdefault(name, now - at)
            time.sleep(PROBE_SECONDS)
    finally:
        for timer in timers:
            timer.cancel()
        for name in names:
            cp.delete("keda.sh/v1alpha1", "ScaledObject", name, NS)
            cp.delete("apps/v1", "Deployment", name, NS)
    if failures:
        raise RuntimeError("; ".join(failures))
    for name in names:
        note(
            f"activation: {source.name} hints={hints} {name}: first "
            f"{_seconds(first.get(name))}, all {_seconds(full.get(name))}"
        )
    missed = len(names) - len(full)
    return Case(source.name, hints, list(first.values()), list(full.values()), missed)


def _seconds(value: float | None) -> str:
    return "missed" if value is None else f"{value:.2f}s"


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated")
    parser.add_argument("--hints", default="on,off", help="on, off or both (on,off)")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--polling-interval", type=int, default=30)
    parser.add_argument("--hpa-sync", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sources.split(",") if s.strip()]
    modes = [h.strip() for h in args.hints.split(",") if h.strip()]
    unknown = [s for s in chosen if s not in SOURCES] + [h for h in modes if h not in HINT_FLAGS]
    if unknown:
        parser.error(f"unknown {unknown[0]!r}: sources {', '.join(SOURCES)}; hints on, off")
    rng = random.Random(args.seed)
    cases: list[Case] = []
    with ExitStack() as stack:
        sources = [SOURCES[name]() for name in chosen]
        for source in sources:
            began = time.monotonic()
            source.start(stack)
            note(f"activation: {source.name} started in {time.monotonic() - began:.1f}s")
        cp, adapter = stack.enter_context(cluster(args.hpa_sync, modes[0]))
        for source in sources:
            for doc in source.documents(NS):
                cp.apply(doc)
        for hints in modes:
            with_hints(adapter, hints)
            for source in sources:
                cases.append(run_case(cp, source, hints, args, rng))
    cases.sort(key=lambda c: (chosen.index(c.source), modes.index(c.hints)))
    print_table(
        f"Activation: {MESSAGES} messages, target 10 per replica, pollingInterval "
        f"{args.polling_interval}s, HPA sync {args.hpa_sync:g}s, {args.repetitions} "
        "repetitions per case, seconds from the first message published",
        ("source", "hints", "first p50", "first p95", "all p50", "all p95", "all max", "missed"),
        [
            [
                c.source,
                c.hints,
                p(c.first, 50),
                p(c.first, 95),
                p(c.all, 50),
                p(c.all, 95),
                max(c.all) if c.all else None,
                c.missed,
            ]
            for c in cases
        ],
    )
    return [c.line(args.polling_interval, args.hpa_sync) for c in cases]


if __name__ == "__main__":
    main(run)
