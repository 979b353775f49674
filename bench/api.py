"""API load: the adapter (standalone, N ScaledObjects, values polled) against a bare FastAPI
route on the same uvicorn and TLS settings, side by side in one run, with wrk.

    .venv/bin/python -m bench.api [--objects 10 10000] [--rounds 3] [--seconds 10]

Each round runs wrk against ours, then the bare app; figures are medians over rounds and the
ratio is taken within each round, so machine noise mostly cancels.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.adapter import METRICS_PATH, Bench, metric_url, scaled_object
from bench.report import main, median, note, print_table, summary
from tests.support import triggers
from tests.support.controlplane import wait_for
from tests.support.controlplane.processes import Process
from tests.support.servers import free_port

NAMESPACE = "bench"
METRIC = "s0-cron-UTC-0011x-xxxxx"
CRON = triggers.always_cron(5)
PATH = f"{METRICS_PATH}/{NAMESPACE}/{METRIC}"
LUA = """
local n = {objects}
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", "{path}?labelSelector=scaledobject.keda.sh%2Fname%3Dso-" .. i)
end
"""
WRK_INSTALL = "apt-get install -y wrk (Debian's package)"


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, script: Path, seconds: int, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _latency(out, "50%"), _latency(out, "99%"))


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def bare_app(bench: Bench) -> Iterator[str]:
    """bench/bare_app.py on the adapter's serving pair, ready."""
    cert, key = bench.files()
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare_app", str(port), str(cert), str(key)]
    process = Process("bare-app", argv, bench.work / "bare").start()
    url = f"https://127.0.0.1:{port}"

    def ready() -> bool:
        process.check()
        return bench.get(f"{url}{PATH}").status_code == 200

    try:
        wait_for(url, ready, 60)
        yield url
    finally:
        process.stop()


def measure(
    bench: Bench, objects: int, rounds: int, seconds: int, connections: int
) -> tuple[int, Result, Result, float]:
    docs = (scaled_object(f"so-{i}", NAMESPACE, CRON) for i in range(objects))
    script = bench.work / f"load-{objects}.lua"
    script.write_text(LUA.format(objects=objects, path=PATH))
    results: list[tuple[Result, Result]] = []
    with bench.adapter(f"objects-{objects}", docs) as ours, bare_app(bench) as bare:
        bench.wait_value(metric_url(ours.url, NAMESPACE, METRIC, f"so-{objects - 1}"))
        wrk(ours.url, script, 2, connections)  # warm both
        wrk(bare, script, 2, connections)
        for i in range(rounds):
            note(f"api: {objects} objects, round {i + 1}/{rounds}")
            results.append(
                (
                    wrk(ours.url, script, seconds, connections),
                    wrk(bare, script, seconds, connections),
                )
            )
    fields = ("rps", "p50_ms", "p99_ms")
    mine = Result(*(median(getattr(r[0], f) for r in results) for f in fields))
    ceiling = Result(*(median(getattr(r[1], f) for r in results) for f in fields))
    return objects, mine, ceiling, median(r[0].rps / r[1].rps for r in results)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit(f"bench.api needs wrk: {WRK_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        bench = Bench(Path(tmp))
        found = [
            measure(bench, n, args.rounds, args.seconds, args.connections) for n in args.objects
        ]
    print_table(
        f"API load: wrk -t1 -c{args.connections}, HTTPS keep-alive, {args.rounds} rounds of "
        f"{args.seconds}s, medians; ratio taken within each round",
        (
            "objects",
            "ours req/s",
            "ours p50 ms",
            "ours p99 ms",
            "bare req/s",
            "bare p50 ms",
            "bare p99 ms",
            "ours/bare",
        ),
        [
            [n, round(a.rps), a.p50_ms, a.p99_ms, round(b.rps), b.p50_ms, b.p99_ms, ratio]
            for n, a, b, ratio in found
        ],
    )
    return [
        summary(
            "api",
            objects=n,
            rps=round(a.rps),
            p99_ms=a.p99_ms,
            ratio_vs_bare=ratio,
        )
        for n, a, _, ratio in found
    ]


if __name__ == "__main__":
    main(run)
