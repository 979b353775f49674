"""A bad week in an hour: the adapter in cluster mode on the e2e control plane, holding 5,000
ScaledObjects while their sources flap, the HPA reads, its certificates rotate on a short
lifetime and objects are created and deleted all along.

    .venv/bin/python -m bench soak                # or: python -m bench.soak --help
    .venv/bin/python -m bench.soak --objects 5000 --minutes 60 --flap-every 300 --flap-for 60

Each ScaledObject scales a Worker of its own (a custom resource with a /scale subresource, so
5,000 targets cost no Pods) with a metrics-api trigger on its own URL of one of ``--sources``
loopback HTTP servers, value 3 of target 10: one replica, always. Every ``--flap-every``
seconds the next source answers 503 for ``--flap-for`` seconds. kube-controller-manager's HPA
controller syncs all 5,000 HPAs every ``--hpa-sync`` seconds through the aggregator; beside it
a reader asks for random objects' values the same way (``kubectl get --raw``) and times each
read. The adapter manages its own certificates (``--cert-secret``) with the serving pair valid
``--serving-cert-validity`` seconds and the CA ``--ca-cert-validity``: every renewal goes through
the Secret, the APIService's caBundle and the aggregator. ``--churn-per-minute`` times a minute
the oldest object (ScaledObject and Worker) is deleted and a new one created.

Every ``--sample`` seconds: the adapter's RSS, open file descriptors and CPU, the certificates
in the Secret, how many Workers are off one replica. Per ``--window`` minutes, a table row; at
the end RSS and descriptor growth per hour after ``--warmup`` minutes (a least-squares slope),
the objects that lost their HPA or kept an orphan one, and the summary line ``soak: ...``.
A read that fails while its object's source flaps, or within one polling interval and
``GRACE`` after the flap, is expected (the adapter says it cannot read the source; the HPA
keeps its replicas); any other failed read is an error outside flaps.
"""

from __future__ import annotations

import argparse
import base64
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from bench.adapter import cpu_seconds, metric_url, rss_mb
from bench.footprint import METRIC, metrics_api
from bench.report import Cell, main, note, percentile, print_table, summary
from tests.support import triggers
from tests.support.controlplane import (
    Adapter,
    AdminClients,
    ControlPlane,
    scalable_kind,
    scalable_object,
    wait_for,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.controlplane.processes import log_path
from tests.support.value_server import ValueServer

NS = "soak"
WORKERS = "soak.bench.io/v1"
SECRET = "metrics-adapter-certs"
"""The Secret deploy/rbac.yaml ships empty for a self-managed adapter to fill."""
GRACE = 15.0
"""Seconds after a flap's end plus one polling interval in which a failed read is expected:
the poll that finds the source back, and its way through the aggregator."""
WORKER_CRD = scalable_kind("soak.bench.io", "Worker", "workers", selector_path=".status.selector")


def worker(name: str, namespace: str = NS) -> dict[str, Any]:
    """A scale target at one replica."""
    return scalable_object(WORKERS, "Worker", name, namespace, 1)


def worker_object(
    name: str, namespace: str, trigger: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    """A ScaledObject with one trigger, as a user writes it, scaling the Worker of its name."""
    doc = triggers.scaled_object(name, namespace, trigger, **spec)
    doc["spec"]["scaleTargetRef"] = {"apiVersion": WORKERS, "kind": "Worker", "name": name}
    return doc


def scaled_object(name: str, source: ValueServer, interval: int) -> dict[str, Any]:
    trigger = metrics_api(source.url, name, own=True)
    return worker_object(name, NS, trigger, minReplicaCount=1, pollingInterval=interval)


@dataclass(frozen=True)
class Read:
    at: float
    seconds: float
    status: int
    """The HTTP status; 0 when no answer came."""
    source: int

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Sample:
    at: float
    rss_mb: float
    fds: int
    cpu_s: float
    serving: frozenset[int]
    """Serial numbers of every serving certificate seen in the Secret so far."""
    cas: frozenset[int]
    workers_off_one: int


@dataclass
class Flaps:
    """Which source fails when: each flap is (source, start, end)."""

    done: list[tuple[int, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, source: int, start: float, end: float) -> None:
        with self.lock:
            self.done.append((source, start, end))

    def explains(self, source: int, at: float, interval: float) -> bool:
        """Whether a failed read of ``source``'s object at ``at`` is one a flap explains."""
        with self.lock:
            return any(
                s == source and start <= at <= end + interval + GRACE for s, start, end in self.done
            )


@dataclass
class Objects:
    """The ScaledObjects alive now, oldest first, and which source each polls."""

    interval: int
    alive: dict[str, tuple[int, float]] = field(default_factory=dict)
    """name -> (source, when created)."""
    retiring: set[str] = field(default_factory=set)
    """About to be deleted: the reader leaves them alone."""
    created: int = 0
    deleted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, source: int) -> None:
        with self.lock:
            self.alive[name] = (source, time.monotonic())
            self.created += 1

    def settled(self) -> list[tuple[str, int]]:
        """Objects polled at least once by now, not about to go."""
        cutoff = time.monotonic() - self.interval - GRACE
        with self.lock:
            alive = self.alive.items()
            return [(n, s) for n, (s, at) in alive if at < cutoff and n not in self.retiring]

    def retire_oldest(self) -> str | None:
        with self.lock:
            for name in self.alive:
                if name not in self.retiring:
                    self.retiring.add(name)
                    return name
        return None

    def remove(self, name: str) -> None:
        with self.lock:
            del self.alive[name]
            self.retiring.discard(name)
            self.deleted += 1


class Soak:
    def __init__(self, cp: ControlPlane, adapter: Adapter, args: argparse.Namespace) -> None:
        self.cp = cp
        self.adapter = adapter
        self.args = args
        self.sources = [ValueServer() for _ in range(args.sources)]
        self.objects = Objects(args.interval)
        self.flaps = Flaps()
        self.reads: list[Read] = []
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self._clients = AdminClients(cp)

    @property
    def client(self) -> httpx.Client:
        """This thread's admin client."""
        return self._clients.get()

    def create(self, index: int) -> None:
        name, source = f"so-{index}", index % len(self.sources)
        for doc in (worker(name), scaled_object(name, self.sources[source], self.args.interval)):
            response = self.client.post(self.cp.path(doc["apiVersion"], doc["kind"], NS), json=doc)
            if response.status_code != 201:
                raise RuntimeError(f"creating {doc['kind']} {name}: {response.text[:300]}")
        self.objects.add(name, source)

    def delete(self, name: str) -> None:
        for api_version, kind in (("keda.sh/v1alpha1", "ScaledObject"), (WORKERS, "Worker")):
            response = self.client.delete(self.cp.path(api_version, kind, NS, name))
            if response.status_code not in (200, 202, 404):
                raise RuntimeError(f"deleting {kind} {name}: {response.text[:300]}")
        self.objects.remove(name)

    # -- the threads -------------------------------------------------------------------

    def flap(self) -> None:
        """Each source in turn fails for ``--flap-for`` seconds every ``--flap-every``."""
        turn = 0
        while not self.stop.wait(self.args.flap_every - self.args.flap_for):
            index = turn % len(self.sources)
            start = time.monotonic()
            self.sources[index].failing = True
            self.stop.wait(self.args.flap_for)
            self.sources[index].failing = False
            self.flaps.add(index, start, time.monotonic())
            turn += 1

    def churn(self) -> None:
        """The oldest object retires; one churn step later it is deleted, and a new one made."""
        pause = 60.0 / self.args.churn_per_minute
        index, retired = self.args.objects, None
        while not self.stop.wait(pause):
            if retired is not None:
                self.delete(retired)
            retired = self.objects.retire_oldest()
            self.create(index)
            index += 1

    def read(self) -> None:
        """What the HPA does, ``--reads-per-second`` times a second, timed."""
        pause = 1.0 / self.args.reads_per_second
        while not self.stop.wait(pause):
            settled = self.objects.settled()
            if not settled:
                continue
            name, source = random.choice(settled)
            url = metric_url("", NS, METRIC, name)
            began = time.monotonic()
            try:
                status = self.client.get(url, timeout=10).status_code
            except httpx.HTTPError:
                status = 0
            self.reads.append(Read(began, time.monotonic() - began, status, source))

    def failed(self, reads: Sequence[Read]) -> tuple[int, int]:
        """Failed reads a flap explains, and the others."""
        failed = [r for r in reads if not r.ok]
        explained = [r for r in failed if self.flaps.explains(r.source, r.at, self.args.interval)]
        return len(explained), len(failed) - len(explained)

    def unexplained(self) -> Counter[int]:
        """The statuses of failed reads no flap explains."""
        interval = self.args.interval
        return Counter(
            r.status
            for r in self.reads
            if not r.ok and not self.flaps.explains(r.source, r.at, interval)
        )

    # -- what is measured -----------------------------------------------------------------

    def certificates(self) -> tuple[set[int], set[int]]:
        """Serial numbers of the serving certificate and the CAs in the Secret now."""
        secret = self.cp.get("v1", "Secret", SECRET, "keda") or {}
        data = secret.get("data") or {}
        if "tls.crt" not in data:
            return set(), set()
        serving = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        cas = x509.load_pem_x509_certificates(base64.b64decode(data["ca.crt"]))
        return {serving.serial_number}, {c.serial_number for c in cas}

    def workers_off_one(self) -> int:
        items = self.cp.client.get(self.cp.path(WORKERS, "Worker", NS)).json()["items"]
        return sum((w.get("spec") or {}).get("replicas") != 1 for w in items)

    def sample(self, serving: set[int], cas: set[int]) -> Sample:
        assert self.adapter.process is not None
        self.adapter.process.check()  # the adapter never restarts in a soak
        assert self.adapter.process.process is not None
        pid = self.adapter.process.process.pid
        now_serving, now_cas = self.certificates()
        serving |= now_serving
        cas |= now_cas
        return Sample(
            time.monotonic(),
            rss_mb(pid),
            len(list(Path(f"/proc/{pid}/fd").iterdir())),
            cpu_seconds(pid),
            frozenset(serving),
            frozenset(cas),
            self.workers_off_one(),
        )

    def count(self, api_version: str, kind: str) -> set[str]:
        items = self.cp.client.get(self.cp.path(api_version, kind, NS)).json()["items"]
        return {i["metadata"]["name"] for i in items}

    # -- the run -----------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[None]:
        with ExitStack() as stack:
            for source in self.sources:
                stack.enter_context(source)
            yield
            self.stop.set()

    def populate(self) -> None:
        began = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.create, range(self.args.objects)))
        note(f"soak: {self.args.objects} objects created in {time.monotonic() - began:.0f}s")
        last = metric_url("", NS, METRIC, f"so-{self.args.objects - 1}")
        wait_for(
            "a value for the last object through the aggregator",
            lambda: self.client.get(last).status_code == 200,
            600,
            1.0,
        )
        note(f"soak: every object has a value after {time.monotonic() - began:.0f}s")

    def measure(self) -> float:
        """Run the threads for ``--minutes``, sampling; the time it began."""
        threads = [
            threading.Thread(target=self._guarded(t), daemon=True, name=t.__name__)
            for t in (self.flap, self.churn, self.read)
        ]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        serving: set[int] = set()
        cas: set[int] = set()
        end = began + self.args.minutes * 60
        try:
            while time.monotonic() < end and not self.stop.is_set():
                self.samples.append(self.sample(serving, cas))
                last = self.samples[-1]
                note(
                    f"soak: {(last.at - began) / 60:5.1f} min rss={last.rss_mb:.1f}MiB "
                    f"fds={last.fds} reads={len(self.reads)} objects={len(self.objects.alive)} "
                    f"serving_certs={len(last.serving)} cas={len(last.cas)}"
                )
                self.stop.wait(min(self.args.sample, max(0.0, end - time.monotonic())))
        except KeyboardInterrupt:
            note("soak: interrupted; reporting what was measured")
        self.stop.set()
        for thread in threads:
            thread.join(self.args.flap_for + 30)
        self.samples.append(self.sample(serving, cas))
        return began

    def _guarded(self, body: Any) -> Any:
        def run() -> None:
            try:
                body()
            except Exception as exc:  # a broken thread ends the soak, loudly
                note(f"soak: {body.__name__} failed: {exc!r}")
                self.stop.set()
                raise

        return run


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per hour; 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


@dataclass(frozen=True)
class Window:
    start_min: float
    reads: list[Read]
    samples: list[Sample]
    first: Sample
    """The sample before the window: CPU and certificates are counted from it."""

    def read_ms(self, pct: float) -> float | None:
        """A percentile of the successful reads' times; None when there was none."""
        times = [r.seconds * 1000 for r in self.reads if r.ok]
        return percentile(times, pct) if times else None

    def cells(self, failed: tuple[int, int]) -> list[Cell]:
        """The row, given the failed reads a flap explains and the others."""
        last = self.samples[-1]
        minutes = (last.at - self.first.at) / 60
        p50, p99 = self.read_ms(50), self.read_ms(99)
        return [
            f"{self.start_min:.0f}-{self.start_min + minutes:.0f}",
            len(self.reads),
            "-" if p50 is None else p50,
            "-" if p99 is None else p99,
            *failed,
            round(last.rss_mb, 1),
            last.fds,
            (last.cpu_s - self.first.cpu_s) / minutes if minutes else 0.0,
            len(last.serving - self.first.serving),
            len(last.cas - self.first.cas),
            max(s.workers_off_one for s in self.samples),
        ]


HEADERS = (
    "minutes",
    "reads",
    "read p50 ms",
    "read p99 ms",
    "failed in flaps",
    "failed outside flaps",
    "RSS MiB",
    "open fds",
    "CPU s / min",
    "new serving certs",
    "new CAs",
    "Workers off 1 replica",
)


def windows(soak: Soak, began: float, minutes: float) -> list[Window]:
    found: list[Window] = []
    samples = soak.samples
    start = began
    while start < samples[-1].at - 1:
        end = start + minutes * 60
        inside = [s for s in samples if start < s.at <= end]
        before = [s for s in samples if s.at <= start] or samples[:1]
        if inside:
            reads = [r for r in soak.reads if start <= r.at < end]
            found.append(Window((start - began) / 60, reads, inside, before[-1]))
        start = end
    return found


def log_problems(adapter: Adapter) -> int:
    """Lines of the adapter's log that say a bug, not a source: none is the goal."""
    text = log_path(adapter.state, "metrics-adapter").read_text(errors="replace")
    return text.count("failed unexpectedly") + text.count("Traceback")


def report(soak: Soak, began: float, args: argparse.Namespace) -> str:
    rows = windows(soak, began, args.window)
    print_table(
        f"Soak: {args.objects} ScaledObjects, pollingInterval {args.interval}s, HPA sync "
        f"{args.hpa_sync:g}s, a source of {args.sources} down {args.flap_for:g}s every "
        f"{args.flap_every:g}s, {args.churn_per_minute:g} objects replaced a minute, serving "
        f"certificate valid {args.serving_cert_validity:g}s and CA {args.ca_cert_validity:g}s",
        HEADERS,
        [w.cells(soak.failed(w.reads)) for w in rows],
    )
    after = [s for s in soak.samples if s.at - began >= args.warmup * 60]
    rss_growth = slope_per_hour([(s.at, s.rss_mb) for s in after])
    fd_growth = slope_per_hour([(s.at, float(s.fds)) for s in after])
    deadline = time.monotonic() + 120  # the garbage collector deletes orphaned HPAs
    while True:
        expected = set(soak.objects.alive)
        hpas = {
            n.removeprefix("keda-hpa-")
            for n in soak.count("autoscaling/v2", "HorizontalPodAutoscaler")
        }
        scaled = soak.count("keda.sh/v1alpha1", "ScaledObject")
        if hpas == expected or time.monotonic() > deadline:
            break
        time.sleep(5)
    lost = len(expected - hpas) + len(expected - scaled)
    orphans = len(hpas - expected)
    if lost or orphans:
        note(f"soak: lost {sorted(expected - hpas)[:10]}, orphans {sorted(hpas - expected)[:10]}")
    explained, outside = soak.failed(soak.reads)
    if outside:
        note(f"soak: failed reads outside flaps, by status: {dict(soak.unexplained())}")
    worst = [p99 for w in rows if (p99 := w.read_ms(99)) is not None]
    last = soak.samples[-1]
    return summary(
        "soak",
        objects=args.objects,
        minutes=round((last.at - began) / 60, 1),
        rss_start_mb=after[0].rss_mb if after else 0.0,
        rss_end_mb=last.rss_mb,
        rss_growth_mb_per_h=rss_growth,
        fd_growth_per_h=fd_growth,
        read_p99_ms_worst_window=max(worst, default=0.0),
        reads=len(soak.reads),
        errors_outside_flaps=outside,
        errors_in_flaps=explained,
        flaps=len(soak.flaps.done),
        serving_certs=len(last.serving),
        cas=len(last.cas),
        replaced=soak.objects.deleted,
        lost_objects=lost,
        orphan_hpas=orphans,
        workers_scaled=max(s.workers_off_one for s in soak.samples),
        log_bugs=log_problems(soak.adapter),
    )


def self_managed(cp: ControlPlane, adapter: Adapter, args: argparse.Namespace) -> None:
    """The adapter restarted to make its own certificates with short lives: it fills the
    Secret and writes its CA into the registered APIService's caBundle."""
    adapter.stop()
    adapter.self_managed = True
    adapter.args += [
        f"--cert-secret={SECRET}",
        "--webhook-configuration=",
        f"--serving-cert-validity={args.serving_cert_validity:g}",
        f"--ca-cert-validity={args.ca_cert_validity:g}",
    ]
    adapter.start()


def install_workers(cp: ControlPlane) -> None:
    cp.apply(WORKER_CRD)
    crd = "workers.soak.bench.io"
    cp.wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd, "Established")


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=60, help="measured, after setup")
    parser.add_argument("--warmup", type=float, default=10, help="minutes left out of growth")
    parser.add_argument("--window", type=float, default=10, help="minutes per table row")
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--interval", type=int, default=30, help="pollingInterval")
    parser.add_argument("--hpa-sync", type=float, default=15, help="the HPA controller's, s")
    parser.add_argument("--sources", type=int, default=4, help="HTTP servers, flapping in turn")
    parser.add_argument("--flap-every", type=float, default=300, help="seconds between flaps")
    parser.add_argument("--flap-for", type=float, default=60, help="seconds a flap lasts")
    parser.add_argument("--churn-per-minute", type=float, default=30)
    parser.add_argument("--reads-per-second", type=float, default=5)
    parser.add_argument("--serving-cert-validity", type=float, default=600)
    parser.add_argument("--ca-cert-validity", type=float, default=1800)
    args = parser.parse_args(argv)
    began = time.monotonic()
    with cluster_mode(
        NS,
        prepare=install_workers,
        report=note,
        final_tail=0,
        hpa_sync_period=args.hpa_sync,
    ) as (cp, adapter):
        note(f"soak: control plane and adapter ready in {time.monotonic() - began:.0f}s")
        self_managed(cp, adapter, args)
        soak = Soak(cp, adapter, args)
        with soak.running():
            soak.populate()
            measured = soak.measure()
            return [report(soak, measured, args)]


if __name__ == "__main__":
    main(run)
