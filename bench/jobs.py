"""Jobs from messages: how long from messages published to a ScaledJob's Jobs existing, on
a real control plane; and what 1,000 polled ScaledJobs cost the adapter, beside 1,000
ScaledObjects.

    .venv/bin/python -m bench.jobs [--parts latency cpu] [--repetitions 10]
                                   [--polling-interval 5] [--objects 1000] [--urls own shared]
                                   [--interval 30] [--seconds 60]

Latency: etcd, kube-apiserver and kube-controller-manager (with its job controller) on
loopback, the adapter in cluster mode, and a moto server for SQS. Each repetition applies the
seed's batch-processor (``queueLength: 20``) with ``pollingInterval`` 5 on a fresh queue,
waits until it is Ready and its first poll has read 0 (its ``status.triggersActivity``),
publishes 100 messages and reads its Jobs (by label) every 50 ms until the first exists and
until the 5 the plan calls for (default strategy: 100 / 20) do; one interval later it counts
them again (the next poll must add none: the 5 are running, their Pods pending), then deletes
the ScaledJob and waits for it and its Jobs (garbage collected) to be gone.

CPU: the adapter standalone with N ScaledJobs, each a metrics-api trigger on its own URL of a
loopback server (or all on one), then with N ScaledObjects alike; CPU and RSS measured as
bench.footprint measures them, after every distinct URL has been asked once.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import footprint
from bench.activation import until
from bench.adapter import Bench, control_plane
from bench.footprint import NAMESPACE, Usage, metrics_api, usage
from bench.report import Cell, main, median, note, percentile, print_table, summary
from metrics_adapter.control.job_manifest import JOB_LABEL
from tests.integration.aws_sqs_queue.helpers import endpoint_metadata, keys_authentication
from tests.support.controlplane import ControlPlane, condition
from tests.support.controlplane.errors import raise_for
from tests.support.moto import MotoServer, make_queue, sqs_client
from tests.support.value_server import ValueServer
from tests.unit.test_crd_schemas import good_job

NS = "bench-jobs"
MESSAGES = 100
QUEUE_LENGTH = 20
EXPECTED_JOBS = math.ceil(MESSAGES / QUEUE_LENGTH)
"""KEDA's default strategy with no Job running: ceil(queue / queueLength), under max 50."""
AUTH = "sqs-keys"
SJ = ("keda.sh/v1alpha1", "ScaledJob")


def scaled_job(
    name: str, namespace: str, trigger: Mapping[str, Any], polling_interval: int
) -> dict[str, Any]:
    """The seed's batch-processor (shared/seeds 002, read by ``good_job``) named ``name``, with
    ``trigger`` and ``polling_interval``. Its ``backoffLimit`` sits where a JobSpec has it: the
    seed indents it under the pod template, which a strict create rejects and any other prunes."""
    doc = good_job()
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"] |= {"pollingInterval": polling_interval, "triggers": [dict(trigger)]}
    return doc


# Latency, on the control plane.


def keys() -> list[dict[str, Any]]:
    """The TriggerAuthentication every repetition's trigger names, and its Secret. (The seed
    says ``identityOwner: operator``, the adapter's own AWS identity; keys from a Secret are
    what a benchmark can hand in, and moto takes any.)"""
    return [
        doc
        | {
            "apiVersion": "v1" if doc["kind"] == "Secret" else SJ[0],
            "metadata": doc["metadata"] | {"namespace": NS},
        }
        for doc in keys_authentication(AUTH, AUTH)
    ]


def sqs_trigger(moto: MotoServer, queue_url: str) -> dict[str, Any]:
    metadata = endpoint_metadata(moto.endpoint, queue_url, queueLength=str(QUEUE_LENGTH))
    return {"type": "aws-sqs-queue", "metadata": metadata, "authenticationRef": {"name": AUTH}}


async def publish(moto: MotoServer, queue_url: str, count: int) -> tuple[float, float]:
    """Send ``count`` messages, ten to a request; the monotonic times of the first send and
    of the last answer (the client is made before, so its start-up is not counted)."""
    async with sqs_client(moto) as sqs:
        began = time.monotonic()
        for start in range(0, count, 10):
            entries = [
                {"Id": str(i), "MessageBody": f"batch {i}"}
                for i in range(start, min(count, start + 10))
            ]
            await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        return began, time.monotonic()


def jobs(cp: ControlPlane, name: str) -> list[str]:
    """The names of ScaledJob ``name``'s Jobs, as KEDA selects them."""
    response = cp.client.get(
        cp.path("batch/v1", "Job", NS), params={"labelSelector": f"{JOB_LABEL}={name}"}
    )
    raise_for(response)
    return [item["metadata"]["name"] for item in response.json()["items"]]


def polled_empty(cp: ControlPlane, name: str) -> bool:
    """Ready, and a poll has read the trigger inactive (no message yet)."""
    found = cp.get(*SJ, name, NS)
    if (condition(found, "Ready") or {}).get("status") != "True":
        return False
    activity = ((found or {}).get("status") or {}).get("triggersActivity") or {}
    return bool(activity) and not any(a.get("isActive") for a in activity.values())


@dataclass(frozen=True)
class Timing:
    publish_s: float
    first_s: float
    all_s: float
    later: int
    """Jobs one polling interval after all existed: the next poll must create none."""


def repetition(cp: ControlPlane, moto: MotoServer, name: str, interval: int) -> Timing:
    queue = asyncio.run(make_queue(moto, name))
    cp.apply(scaled_job(name, NS, sqs_trigger(moto, queue), interval))
    until(f"{name} Ready, its first poll read", lambda: polled_empty(cp, name), 60)
    if jobs(cp, name):
        raise RuntimeError(f"{name} has Jobs before any message: {jobs(cp, name)}")
    began, sent = asyncio.run(publish(moto, queue, MESSAGES))
    first = until(f"{name}'s first Job", lambda: len(jobs(cp, name)) >= 1, 60)
    done = until(f"{name}'s {EXPECTED_JOBS} Jobs", lambda: len(jobs(cp, name)) >= EXPECTED_JOBS, 60)
    time.sleep(interval + 1)
    later = len(jobs(cp, name))
    cp.delete(*SJ, name, NS)
    until(
        f"{name} and its Jobs gone",
        lambda: cp.get(*SJ, name, NS) is None and not jobs(cp, name),
        60,
    )
    return Timing(sent - began, first - began, done - began, later)


def problems(log: str) -> list[str]:
    """The adapter's WARNING and ERROR lines (text format: time, level, message)."""
    return [line for line in log.splitlines() if line[13:20].rstrip() in ("WARNING", "ERROR")]


def latency(args: argparse.Namespace) -> str:
    timings: list[Timing] = []
    moto = MotoServer().start()
    try:
        with control_plane(NS, "jobs") as (cp, adapter):
            for doc in keys():
                cp.apply(doc)
            for i in range(args.repetitions):
                timing = repetition(cp, moto, f"batch-{i}", args.polling_interval)
                note(
                    f"jobs: repetition {i + 1}: first Job in {timing.first_s:.2f}s, "
                    f"{EXPECTED_JOBS} in {timing.all_s:.2f}s, {timing.later} one interval later"
                )
                timings.append(timing)
            logged = problems(adapter.tail(10**6))
    finally:
        moto.cleanup()
    for line in logged:
        note(f"jobs: adapter log: {line}")
    print_table(
        f"Jobs from messages, pollingInterval {args.polling_interval}s, {MESSAGES} messages, "
        f"queueLength {QUEUE_LENGTH} (so {EXPECTED_JOBS} Jobs)",
        (
            "repetition",
            "publish s",
            "first Job s",
            f"{EXPECTED_JOBS} Jobs s",
            "Jobs 1 interval later",
        ),
        [
            [i + 1, round(t.publish_s, 2), round(t.first_s, 2), round(t.all_s, 2), t.later]
            for i, t in enumerate(timings)
        ],
    )
    firsts, alls = [t.first_s for t in timings], [t.all_s for t in timings]
    print_table(
        f"Jobs from messages over {len(timings)} repetitions",
        ("step", "p50 s", "p95 s", "min s", "max s"),
        [
            [what, median(found), percentile(found, 95), min(found), max(found)]
            for what, found in (
                ("first message -> first Job", firsts),
                (f"-> {EXPECTED_JOBS} Jobs", alls),
            )
        ],
    )
    return summary(
        "jobs",
        first_p50_s=median(firsts),
        first_p95_s=percentile(firsts, 95),
        all_p50_s=median(alls),
        all_p95_s=percentile(alls, 95),
        polling_interval_s=args.polling_interval,
        repetitions=len(timings),
        jobs_expected=EXPECTED_JOBS,
        jobs_most=max(t.later for t in timings),
        adapter_log_problems=len(logged),
    )


# CPU, standalone.

KINDS = ("ScaledJob", "ScaledObject")


def scaled_jobs(count: int, url: str, own: bool, interval: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield scaled_job(f"sj-{i}", NAMESPACE, metrics_api(url, i, own), interval)


@dataclass(frozen=True)
class CpuRow:
    kind: str
    objects: int
    own: bool
    interval: int
    ready_s: float | None
    polled_s: float | None
    """Until every distinct URL was asked; None: not within --value-timeout."""
    usage: Usage
    warned_before: int
    """WARNING and ERROR lines the adapter logged before the window, and in it."""
    warned_in: int

    @property
    def cells(self) -> list[Cell]:
        return [
            f"{self.kind}s",
            self.objects,
            "own URL each" if self.own else "one shared URL",
            self.interval,
            round(self.ready_s, 1) if self.ready_s is not None else "never",
            round(self.polled_s, 1) if self.polled_s is not None else "never",
            round(self.usage.rss_mb, 1),
            self.usage.cpu_s_per_min,
            round(self.usage.requests_per_interval, 1),
            self.warned_before,
            self.warned_in,
        ]


def measure(bench: Bench, kind: str, count: int, own: bool, args: argparse.Namespace) -> CpuRow:
    build = scaled_jobs if kind == "ScaledJob" else footprint.objects
    name = f"{kind}-{count}-{'own' if own else 'shared'}"
    queries = count if own else 1
    with ValueServer() as source:
        docs = build(count, source.url, own, args.interval)
        began = time.monotonic()
        with bench.adapter(name, docs, (), args.value_timeout) as adapter:
            try:
                polled: float | None = until(
                    f"{name}: {queries} paths asked",
                    lambda: len(source.paths) >= queries,
                    args.value_timeout,
                )
            except TimeoutError as exc:
                note(f"jobs: {exc}")
                polled = None
            time.sleep(args.settle)
            before = problems(adapter.process.log())
            used = usage(adapter.pid, source, args.interval, 0, args.seconds)
            logged = problems(adapter.process.log())
    for line in logged[:3] + logged[len(before) :][:5]:
        note(f"jobs: {name}: adapter log: {line}")
    polled_s = polled - began if polled is not None else None
    warned = (len(before), len(logged) - len(before))
    return CpuRow(kind, count, own, args.interval, adapter.ready_s, polled_s, used, *warned)


HEADERS = (
    "kind",
    "objects",
    "URLs",
    "interval s",
    "ready s",
    "all polled s",
    "RSS MiB",
    "CPU s / min",
    "requests / interval",
    "warnings before",
    "warnings in window",
)


def cpu(args: argparse.Namespace) -> str:
    rows: list[CpuRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        bench = Bench(Path(tmp))
        for urls in args.urls:
            for kind in KINDS:
                began = time.monotonic()
                rows.append(measure(bench, kind, args.objects, urls == "own", args))
                note(f"jobs: {args.objects} {kind}s, {urls} URLs: {time.monotonic() - began:.0f}s")
    print_table(
        f"Adapter footprint, standalone, metrics-api triggers, window {args.seconds:g}s after "
        f"every URL was asked (+{args.settle:g}s)",
        HEADERS,
        [r.cells for r in rows],
    )
    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    print_table(
        "ScaledJobs / ScaledObjects, measured one after the other",
        ("URLs", "CPU ratio", "RSS ratio"),
        [
            [
                "own URL each" if sj.own else "one shared URL",
                sj.usage.cpu_s_per_min / so.usage.cpu_s_per_min,
                sj.usage.rss_mb / so.usage.rss_mb,
            ]
            for sj, so in pairs
        ],
    )
    sj, so = max(pairs, key=lambda pair: pair[0].own)  # each on its own URL when measured
    return summary(
        "jobs-cpu",
        scaled_jobs=sj.objects,
        urls="own" if sj.own else "shared",
        cpu_s_per_min=sj.usage.cpu_s_per_min,
        rss_mb=round(sj.usage.rss_mb, 1),
        scaled_objects_cpu_s_per_min=so.usage.cpu_s_per_min,
        scaled_objects_rss_mb=round(so.usage.rss_mb, 1),
        ratio=sj.usage.cpu_s_per_min / so.usage.cpu_s_per_min,
        log_warnings_in_window=sj.warned_in,
    )


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--parts", nargs="+", choices=["latency", "cpu"], default=["latency", "cpu"]
    )
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--polling-interval", type=int, default=5, help="of the latency part")
    parser.add_argument("--objects", type=int, default=1000, help="of each kind, CPU part")
    parser.add_argument("--urls", nargs="+", choices=["own", "shared"], default=["own"])
    parser.add_argument("--interval", type=int, default=30, help="pollingInterval, CPU part")
    parser.add_argument("--seconds", type=float, default=60, help="the measured CPU window")
    parser.add_argument("--settle", type=float, default=10, help="pause before the window")
    parser.add_argument("--value-timeout", type=float, default=120, help="for /readyz and polls")
    args = parser.parse_args(argv)
    lines = []
    if "latency" in args.parts:
        lines.append(latency(args))
    if "cpu" in args.parts:
        lines.append(cpu(args))
    return lines


if __name__ == "__main__":
    main(run)
