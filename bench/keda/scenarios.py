"""The work both systems get, and what is measured of each.

One session per system on its own control plane, with the real 15 s HPA sync: ScaledObjects
scale ``Worker`` custom resources (a /scale subresource and no Pods, as in the soak), each with
a metrics-api trigger, ``pollingInterval: 30`` (KEDA's default), target 10, the YAML a user
writes, the same for both systems. The sets:

- ``live``: one URL of its own each on a source that answers in ``--source-delay`` (50 ms);
- ``cached``: the same, with ``useCachedMetrics: true`` (KEDA then answers the HPA from the
  value of its last poll; we always do);
- ``shared``: one URL for all, on a fast source: one distinct query.

Each object's value is its index times 7, modulo 40, plus 1: replicas from 1 to 4.

What is measured, in order (:mod:`bench.keda.run` runs the event scenarios of
:mod:`bench.keda.events` between the two steps): :func:`small`, reads of each set's metric
through the aggregator (``kubectl get --raw``), one at a time and ``--threads`` at once, and
the requests each source answers per polling interval; :func:`large`, ``live`` grown to
``--objects`` in all, how long until every new object's HPA reads a value (bounded: a system
that cannot keep up is measured on the objects it got to), then the reads, the requests and
the processes' RSS and CPU again; last, every object's value and its HPA's desired replicas,
for the cross-check.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.adapter import metric_url
from bench.footprint import METRIC, metrics_api
from bench.keda.systems import System
from bench.report import note, percentile
from bench.soak import worker, worker_object
from tests.support.controlplane import AdminClients
from tests.support.value_server import ValueServer

NS = "bench"
TARGET = 10
INTERVAL = 30
SETS = ("live", "cached", "shared")


def value_of(path: bytes) -> float:
    """The value a source answers for ``/value/<set>-<index>`` (and 1 for anything else)."""
    index = path.rsplit(b"-", 1)[-1]
    return (int(index) * 7) % 40 + 1 if index.isdigit() else 1.0


TOLERANCE = 0.1
"""The HPA controller's default: a usage ratio within 10% of 1 keeps the replicas it has."""


def expected_replicas(value: float, current: int = 1) -> int:
    """What the HPA must want for an AverageValue target of ``TARGET`` with ``current``
    replicas (a Worker's status says 1, always): within the tolerance it keeps ``current``
    (11 of target 10 is 1 replica, not 2); otherwise the ceiling of the value over the target."""
    ratio = value / (TARGET * current)
    if 1 - TOLERANCE <= ratio <= 1 + TOLERANCE:
        return current
    return max(1, math.ceil(value / TARGET))


def scaled_object(name: str, url: str, *, cached: bool, own: bool = True) -> dict[str, Any]:
    """An object polling its own path of ``url`` (or, not ``own``, the one path all share)."""
    trigger = metrics_api(url, name, own=own)
    trigger["metadata"]["targetValue"] = str(TARGET)
    if cached:
        trigger["useCachedMetrics"] = True
    return worker_object(name, NS, trigger, minReplicaCount=1, pollingInterval=INTERVAL)


@dataclass(frozen=True)
class Reads:
    """Reads through the aggregator: milliseconds of the successful ones, and failures."""

    ms: list[float]
    failed: int

    def pct(self, pct: float) -> float | None:
        return percentile(self.ms, pct) if self.ms else None


@dataclass
class Results:
    """What one system produced: ``figures[(scenario, metric)]`` and, per object, its value
    through the aggregator and its HPA's desired replicas."""

    figures: dict[tuple[str, str], float | None] = field(default_factory=dict)
    values: dict[str, float | None] = field(default_factory=dict)
    desired: dict[str, int | None] = field(default_factory=dict)

    def add(self, scenario: str, metric: str, value: float | None) -> None:
        self.figures[(scenario, metric)] = value
        shown = "-" if value is None else f"{value:.2f}"
        note(f"keda-bench: {scenario} {metric} = {shown}")


class Session:
    """One system, its sources and its objects."""

    def __init__(self, system: System, args: argparse.Namespace) -> None:
        self.system = system
        self.cp = system.cp
        self.args = args
        slow = args.source_delay
        self.sources = {
            "live": ValueServer(delay=slow, values=value_of),
            "cached": ValueServer(delay=slow, values=value_of),
            "shared": ValueServer(values=value_of),
        }
        self.names: dict[str, list[str]] = {s: [] for s in SETS}
        self.results = Results()
        self._clients = AdminClients(self.cp)

    @contextmanager
    def running(self) -> Iterator[Session]:
        with ExitStack() as stack:
            for source in self.sources.values():
                stack.enter_context(source)
            yield self

    @property
    def client(self) -> httpx.Client:
        """This thread's admin client."""
        return self._clients.get()

    # -- objects ---------------------------------------------------------------------

    def _create(self, doc: dict[str, Any]) -> None:
        name = doc["metadata"]["name"]
        for obj in (worker(name, NS), doc):
            path = self.cp.path(obj["apiVersion"], obj["kind"], NS)
            response = self.client.post(path, json=obj)
            if response.status_code != 201:
                raise RuntimeError(f"creating {obj['kind']} {name}: {response.text[:300]}")

    def grow(self, kind: str, count: int) -> list[str]:
        """Make the set ``kind`` ``count`` objects; return the new names, all read by their HPA."""
        have = len(self.names[kind])
        new = [f"{kind}-{i}" for i in range(have, count)]
        url = self.sources[kind].url
        docs = [scaled_object(n, url, cached=kind == "cached", own=kind != "shared") for n in new]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self._create, docs))
        self.names[kind] += new
        return new

    def hpas(self) -> dict[str, dict[str, Any]]:
        path = self.cp.path("autoscaling/v2", "HorizontalPodAutoscaler", NS)
        items = self.client.get(path, timeout=60).json()["items"]
        return {h["metadata"]["name"].removeprefix("keda-hpa-"): h for h in items}

    def settle(self, names: Sequence[str], timeout: float) -> list[str]:
        """Wait at most ``timeout`` until the HPA of every one of ``names`` has read its value;
        the names whose HPA has, and the seconds it took (or the count at the timeout) in the
        results: a system that cannot keep up is measured on what it got done."""
        began = time.monotonic()
        wanted = set(names)
        read: set[str] = set()
        while time.monotonic() - began < timeout:
            self.system.check()
            hpas = self.hpas()
            read = {n for n in wanted if current_value(hpas.get(n)) is not None}
            if read == wanted:
                break
            time.sleep(2)
        took = time.monotonic() - began
        label = f"{len(wanted)} new objects"
        done = took if read == wanted else None
        self.results.add("setup", f"every HPA read its value, {label}, s", done)
        self.results.add("setup", f"HPAs reading a value at the end, {label}", float(len(read)))
        return [n for n in names if n in read]

    # -- measurements ----------------------------------------------------------------

    def read(self, name: str) -> tuple[float, float | None]:
        """One read of ``name``'s metric through the aggregator: (ms, value or None)."""
        began = time.perf_counter()
        try:
            response = self.client.get(metric_url("", NS, METRIC, name), timeout=30)
        except httpx.HTTPError:
            return (time.perf_counter() - began) * 1000, None
        ms = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            return ms, None
        items = response.json()["items"]
        return ms, quantity(items[0]["value"]) if items else None

    def reads(self, names: Sequence[str], count: int, threads: int) -> Reads:
        """``count`` reads of random ``names``, ``threads`` at a time."""
        rng = random.Random(count * threads)
        chosen = [rng.choice(names) for _ in range(count)]
        with ThreadPoolExecutor(threads) as pool:
            done = list(pool.map(self.read, chosen))
        return Reads([ms for ms, v in done if v is not None], sum(v is None for _, v in done))

    def request_path(self, scenario: str, names: Sequence[str]) -> None:
        for label, threads in (
            ("sequential", 1),
            (f"{self.args.threads} concurrent", self.args.threads),
        ):
            found = self.reads(names, self.args.reads, threads)
            self.results.add(scenario, f"read p50 ms, {label}", found.pct(50))
            self.results.add(scenario, f"read p99 ms, {label}", found.pct(99))
            self.results.add(scenario, f"failed reads, {label}", float(found.failed))

    def upstream(self, scenario: str) -> None:
        """Requests each set's source answers per polling interval, HPA reads included."""
        before = {k: s.requests for k, s in self.sources.items()}
        began = time.monotonic()
        time.sleep(self.args.upstream_window)
        window = time.monotonic() - began
        for kind, source in self.sources.items():
            per_interval = (source.requests - before[kind]) / window * INTERVAL
            queries = 1 if kind == "shared" else len(self.names[kind])
            label = f"{kind}: requests / interval ({queries} distinct queries)"
            self.results.add(scenario, label, per_interval)

    def footprint(self, scenario: str) -> None:
        cpu, began = self.system.cpu_seconds(), time.monotonic()
        time.sleep(self.args.footprint_window)
        minutes = (time.monotonic() - began) / 60
        self.results.add(scenario, "CPU s / min", (self.system.cpu_seconds() - cpu) / minutes)
        self.results.add(scenario, "RSS MiB", self.system.rss_mb())

    def cross_check(self) -> None:
        """Every object's value through the aggregator and its HPA's desired replicas."""
        names = [n for s in SETS for n in self.names[s]]
        with ThreadPoolExecutor(4) as pool:
            values = list(pool.map(self.read, names))
        hpas = self.hpas()
        for name, (_, value) in zip(names, values, strict=True):
            self.results.values[name] = value
            status = (hpas.get(name) or {}).get("status") or {}
            self.results.desired[name] = status.get("desiredReplicas")


def quantity(text: str) -> float:
    """A Kubernetes quantity as the metrics APIs write values: ``23``, ``1500m``, ``2k``."""
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text and text[-1] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


def current_value(hpa: dict[str, Any] | None) -> str | None:
    """The external metric value an HPA last read, if it read one."""
    for metric in ((hpa or {}).get("status") or {}).get("currentMetrics") or []:
        current = (metric.get("external") or {}).get("current") or {}
        value = current.get("averageValue") or current.get("value")
        if value is not None:
            return str(value)
    return None


def small(s: Session) -> None:
    """``--small`` objects of each set: reads of each, and the requests each source sees."""
    began, count = time.monotonic(), s.args.small
    for kind in SETS:
        s.grow(kind, count)
    made = time.monotonic() - began
    note(f"keda-bench: {s.system.name}: {3 * count} objects created in {made:.0f}s")
    s.settle([n for k in SETS for n in s.names[k]], s.args.settle_timeout)
    s.request_path(f"request path, {count} objects", s.names["live"])
    s.request_path(f"request path, {count} objects, useCachedMetrics", s.names["cached"])
    s.request_path(f"request path, {count} objects, one shared URL", s.names["shared"])
    s.upstream(f"upstream, {3 * count} objects")


def large(s: Session) -> None:
    """``live`` grown so that there are ``--objects`` in all: reads, requests, footprint."""
    total = s.args.objects
    new = s.grow("live", total - 2 * s.args.small)
    unread = set(new) - set(s.settle(new, s.args.settle_timeout))
    live = [n for n in s.names["live"] if n not in unread]
    s.request_path(f"request path, {total} objects", live)
    s.upstream(f"upstream, {total} objects")
    s.footprint(f"footprint, {total} objects")
