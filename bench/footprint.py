"""Memory and CPU of the adapter (standalone) at 1,000 and 10,000 ScaledObjects, each with a
metrics-api trigger against a local HTTP server.

    .venv/bin/python -m bench.footprint [--objects 1000 10000] [--urls own shared]
                                        [--interval 30] [--seconds 60]

``own``: each ScaledObject polls its own URL (``/value/<i>``), so N distinct queries, N
requests per interval; ``shared``: all poll one URL, one query. After every object has a
value and a settling pause, RSS is VmRSS of /proc/PID/status at the end of the window and
CPU is utime + stime of /proc/PID/stat over the window, per minute.

``--source-delay`` makes the source slow and, with a busy machine, shows overload: the
``behind`` column is the oldest answer the adapter logged while its polls were behind (from
start to end, first values included; ``-``: never behind), and ``failing objects`` those
served as errors at the end, past ``--stale-intervals``.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.adapter import Bench, cpu_seconds, metric_url, rss_mb, scaled_object
from bench.report import Cell, main, note, print_table, summary
from tests.support.controlplane import client_context
from tests.support.value_server import ValueServer

NAMESPACE = "footprint"
METRIC = "s0-metric-api-value"


def metrics_api(url: str, i: int | str, own: bool) -> dict[str, Any]:
    """Object ``i``'s trigger: on its own path of the ValueServer at ``url``, or the shared one."""
    metadata = {
        "url": f"{url}/value/{i}" if own else f"{url}/value",
        "valueLocation": "value",
        "targetValue": "10",
    }
    return {"type": "metrics-api", "metadata": metadata}


def objects(count: int, url: str, own: bool, interval: int) -> Iterator[dict[str, object]]:
    for i in range(count):
        yield scaled_object(f"so-{i}", NAMESPACE, metrics_api(url, i, own), interval)


@contextmanager
def timed(what: str) -> Iterator[None]:
    began = time.monotonic()
    yield
    note(f"footprint: {what} in {time.monotonic() - began:.1f}s")


@dataclass(frozen=True)
class Usage:
    rss_mb: float
    cpu_s_per_min: float
    requests_per_interval: float
    """As the ValueServer counted them."""


def usage(pid: int, source: ValueServer, interval: int, settle: float, seconds: float) -> Usage:
    """After ``settle`` seconds, CPU (utime + stime) over a window of ``seconds``, per minute;
    RSS at its end; the requests ``source`` answered in it, per polling interval."""
    time.sleep(settle)
    cpu, polls, start = cpu_seconds(pid), source.requests, time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu
    polls = source.requests - polls
    return Usage(rss_mb(pid), cpu / window * 60, polls / window * interval)


@dataclass(frozen=True)
class Row:
    objects: int
    own: bool
    interval: int
    ready_s: float | None
    valued_s: float | None
    """None: the last object had no value within --value-timeout."""
    rss_mb: float
    cpu_s_per_min: float
    requests_per_interval: float
    failing: int | None
    behind_s: float | None
    """The oldest answer logged while polls were behind; None: they never were."""

    @property
    def cells(self) -> list[Cell]:
        return [
            self.objects,
            "own URL each" if self.own else "one shared URL",
            self.objects if self.own else 1,
            self.interval,
            round(self.ready_s, 1) if self.ready_s is not None else "never",
            round(self.valued_s, 1) if self.valued_s is not None else "never",
            round(self.rss_mb, 1),
            self.cpu_s_per_min,
            round(self.requests_per_interval, 1),
            self.failing if self.failing is not None else "API down",
            "-" if self.behind_s is None else round(self.behind_s),
        ]


def failing(bench: Bench, base: str, count: int) -> int | None:
    """How many of the objects the API answers with an error rather than a value; None when
    the API itself does not answer."""
    broken = 0
    with httpx.Client(verify=client_context(bench.ca.pem), timeout=5) as client:
        for i in range(count):
            try:
                response = client.get(metric_url(base, NAMESPACE, METRIC, f"so-{i}"))
            except httpx.HTTPError as exc:
                note(f"footprint: the API does not answer so-{i}: {exc}")
                return None
            broken += response.status_code != 200
    return broken


def valued(bench: Bench, url: str, timeout: float) -> bool:
    """Whether ``url`` gets a value within ``timeout``: the last object has been polled."""
    try:
        bench.wait_value(url, timeout)
    except TimeoutError as exc:
        note(f"footprint: {exc}")
        return False
    return True


def measure(bench: Bench, count: int, own: bool, args: argparse.Namespace) -> Row:
    interval = args.interval
    flags = [f"--scaler-timeout={args.scaler_timeout}"] if args.scaler_timeout else []
    # Info: the backlog's end is logged at info ("polls caught up ..."), and steady polling
    # logs nothing at all.
    flags.append("--log-level=info")
    name = f"{count}-{'own' if own else 'shared'}-{args.scaler_timeout or 'default'}"
    with ValueServer(delay=args.source_delay) as source:
        docs = objects(count, source.url, own, interval)
        began = time.monotonic()
        wait = args.value_timeout
        with bench.adapter(name, docs, flags, wait, require_ready=False) as adapter:
            all_valued = None
            if adapter.ready_s is None:
                note(f"footprint: {name}: /readyz did not answer within {wait:g}s")
            else:
                last = metric_url(adapter.url, NAMESPACE, METRIC, f"so-{count - 1}")
                if valued(bench, last, max(1.0, wait - adapter.ready_s)):
                    all_valued = time.monotonic() - began
            used = usage(adapter.pid, source, interval, args.settle, args.seconds)
            broken = failing(bench, adapter.url, count)
            behind = oldest_behind(adapter.process.log())
    return Row(
        count,
        own,
        interval,
        adapter.ready_s,
        all_valued,
        used.rss_mb,
        used.cpu_s_per_min,
        used.requests_per_interval,
        broken,
        behind,
    )


BEHIND = re.compile(r"oldest answer (?:was )?(\d+)s old|at worst (\d+)s")


def oldest_behind(log: str) -> float | None:
    """The oldest answer in the adapter's backlog lines (``polls behind``, ``still behind``,
    ``caught up``); None when it logged none."""
    ages = [float(a or b) for a, b in BEHIND.findall(log)]
    return max(ages, default=None)


HEADERS = (
    "objects",
    "URLs",
    "distinct queries",
    "interval s",
    "ready s",
    "all valued s",
    "RSS MiB",
    "CPU s / min",
    "requests / interval",
    "failing objects",
    "behind s",
)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--urls", nargs="+", choices=["own", "shared"], default=["own", "shared"])
    parser.add_argument("--interval", type=int, default=30, help="pollingInterval (KEDA's default)")
    parser.add_argument("--seconds", type=float, default=60, help="the measured window")
    parser.add_argument("--settle", type=float, default=10, help="pause after every value")
    parser.add_argument(
        "--value-timeout", type=float, default=120, help="for /readyz and the last object's value"
    )
    parser.add_argument(
        "--scaler-timeout", type=float, help="the adapter's --scaler-timeout (default: its own)"
    )
    parser.add_argument(
        "--source-delay",
        type=float,
        default=0.0,
        help="seconds the source takes to answer each request (a slow source)",
    )
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        bench = Bench(Path(tmp))
        for count in args.objects:
            for urls in args.urls:
                with timed(f"{count} objects, {urls} URLs"):
                    rows.append(measure(bench, count, urls == "own", args))
    print_table(
        f"Adapter footprint, standalone, metrics-api triggers, window {args.seconds:g}s "
        f"after every object has a value (+{args.settle:g}s)",
        HEADERS,
        [r.cells for r in rows],
    )
    # The summary: the most objects, each on its own URL when that was measured.
    last = max(rows, key=lambda r: (r.objects, r.own))
    return [
        summary(
            "footprint",
            objects=last.objects,
            urls="own" if last.own else "shared",
            rss_mb=round(last.rss_mb, 1),
            cpu_s_per_min=last.cpu_s_per_min,
            # Figures of an adapter whose objects fail are not its footprint: say so.
            failing=last.failing if last.failing is not None else "api-down",
        )
    ]


if __name__ == "__main__":
    main(run)
