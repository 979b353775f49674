"""KEDA and metrics-adapter side by side: ``make bench-keda`` (``python -m bench keda``).

    .venv/bin/python -m bench keda [--objects 1000] [--small 100] [--only keda|ours]

Every scenario of :mod:`bench.keda.scenarios` runs on KEDA v2.20.2 (operator and metrics
server) on a fresh loopback control plane, which is then torn down, and the same on
metrics-adapter on another. One table with both systems' figures (``ratio`` is KEDA's figure
over ours: every figure here is better lower, so above 1 means we do better), a summary line
per figure, and the cross-check: for every object, the value each system serves through the
aggregator and the replicas its HPA wants, against each other and against the source.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack

from bench.activation_sources import Nats
from bench.keda import events
from bench.keda.scenarios import (
    NS,
    Results,
    Session,
    expected_replicas,
    large,
    small,
    value_of,
)
from bench.keda.systems import KEDA_VERSION, keda, ours
from bench.report import Cell, main, note, print_table, summary
from bench.soak import install_workers
from tests.support.kafka import KafkaBroker, ensure_jars

HPA_SYNC = 15.0
"""kube-controller-manager's default: both systems are read as a cluster reads them."""


def measure(which: str, nats: Nats, broker: KafkaBroker, args: argparse.Namespace) -> Results:
    start = keda if which == "keda" else ours
    began = time.monotonic()
    with start(NS, install_workers, HPA_SYNC) as system:
        note(f"keda-bench: {system.name} ready in {time.monotonic() - began:.0f}s")
        try:
            with Session(system, args).running() as s:
                small(s)
                # The event scenarios before the large set, each removing its objects after
                # it: they measure each system at a few hundred objects, not saturated.
                events.outage(system, args, s.results)
                events.nats_upstream(system, nats, args, s.results)
                events.kafka_upstream(system, broker, args, s.results)
                events.wake(system, nats, which, args, s.results)
                large(s)
                s.cross_check()
                return s.results
        except BaseException:
            note(system.tail())
            raise


def ratio(theirs: float | None, mine: float | None) -> float | None:
    if theirs is None or mine is None or mine == 0:
        return None
    return theirs / mine


def disagreements(measured: dict[str, Results]) -> list[tuple[str, str, str]]:
    """Objects whose value through the aggregator, or whose HPA's desired replicas, differ
    from what the source says, per system (two systems that both match it agree): (system,
    kind of difference, the line that says it). The kinds: ``no value`` (the API answered
    none), ``HPA not computed`` (its status wants 0 or nothing yet), ``value`` (another
    value than the source's), ``replicas`` (the right value, other replicas)."""
    found = []
    names = sorted({n for results in measured.values() for n in results.values})
    for name in names:
        truth = 1.0 if name.startswith("shared") else value_of(f"/value/{name}".encode())
        want = expected_replicas(truth)
        for system, results in measured.items():
            value, desired = results.values.get(name), results.desired.get(name)
            if (value, desired) == (truth, want):
                continue
            if value is None:
                kind = "no value"
            elif value != truth:
                kind = "value"
            elif not desired:
                kind = "HPA not computed"
            else:
                kind = "replicas"
            line = (
                f"{name}: {system} serves {value} and its HPA wants {desired}; "
                f"the source says {truth:g}, so {want}"
            )
            found.append((system, kind, line))
    return found


def report(theirs: Results, mine: Results, args: argparse.Namespace) -> list[str]:
    keys = list(dict.fromkeys([*theirs.figures, *mine.figures]))
    rows: list[list[Cell]] = []
    lines = []
    for scenario, metric in keys:
        k, o = theirs.figures.get((scenario, metric)), mine.figures.get((scenario, metric))
        r = ratio(k, o)
        rows.append([scenario, metric, k, o, r])
        lines.append(
            summary(
                "keda",
                scenario=scenario.replace(" ", "_"),
                metric=metric.replace(" ", "_"),
                keda=k if k is not None else "-",
                ours=o if o is not None else "-",
                ratio=r if r is not None else "-",
            )
        )
    print_table(
        f"KEDA v{KEDA_VERSION} and metrics-adapter, the same ScaledObjects on the same loopback "
        f"control plane (HPA sync {HPA_SYNC:g}s, pollingInterval 30s, source delay "
        f"{args.source_delay * 1000:g} ms); ratio = KEDA / ours, above 1 is better for us",
        ("scenario", "figure", "KEDA", "metrics-adapter", "ratio"),
        rows,
    )
    measured = {n: r for n, r in (("KEDA", theirs), ("metrics-adapter", mine)) if r.values}
    differ = disagreements(measured)
    checked = len({n for r in measured.values() for n in r.values})
    note(f"keda-bench: cross-check of {checked} objects: {len(differ)} differences")
    kinds = Counter((system, kind) for system, kind, _ in differ)
    for (system, kind), count in sorted(kinds.items()):
        examples = [line for s, k, line in differ if (s, k) == (system, kind)][:5]
        note(f"keda-bench: {system}: {count} x {kind}, e.g. " + " | ".join(examples))
    for system in measured:
        fields = {k.replace(" ", "_"): n for (s, k), n in sorted(kinds.items()) if s == system}
        lines.append(
            summary(
                "keda",
                scenario="cross-check",
                system=system.replace(" ", "_"),
                objects=checked,
                differ=sum(fields.values()),
                **fields,
            )
        )
    return lines


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1000, help="in the large scenarios")
    parser.add_argument("--small", type=int, default=100, help="objects in each small set")
    parser.add_argument("--source-delay", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--reads", type=int, default=200, help="reads per measurement")
    parser.add_argument("--threads", type=int, default=8, help="concurrent readers")
    parser.add_argument("--upstream-window", type=float, default=60, help="seconds counted")
    parser.add_argument("--footprint-window", type=float, default=60, help="seconds measured")
    parser.add_argument(
        "--settle-timeout", type=float, default=300, help="for every HPA of a set to read"
    )
    parser.add_argument("--outage", type=float, default=120, help="seconds the source is down")
    parser.add_argument("--outage-objects", type=int, default=5)
    parser.add_argument("--nats-triggers", type=int, default=200)
    parser.add_argument("--kafka-triggers", type=int, default=200)
    parser.add_argument(
        "--kafka-version", default="3.6.0", help="the triggers' version (KEDA's default: 1.0.0)"
    )
    parser.add_argument("--repetitions", type=int, default=10, help="bursts per interval")
    parser.add_argument("--seed", type=int, default=None, help="of the bursts' phases")
    parser.add_argument("--only", choices=["keda", "ours"], help="run one system")
    args = parser.parse_args(argv)
    if args.objects < 3 * args.small:
        parser.error("--objects must be at least 3 x --small")
    args.hpa_sync = HPA_SYNC
    with ExitStack() as stack:
        nats = Nats()
        nats.start(stack)
        broker = KafkaBroker(ensure_jars())
        stack.callback(broker.cleanup)
        broker.start()
        events.prepare_kafka(broker)
        theirs = measure("keda", nats, broker, args) if args.only != "ours" else Results()
        mine = measure("ours", nats, broker, args) if args.only != "keda" else Results()
    return report(theirs, mine, args)


if __name__ == "__main__":
    main(run)
