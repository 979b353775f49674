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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from metrics_adapter.tls import self_signed_pair
from tests.support.serving import free_port

# Always inside the window: the next end (each minute) comes before the next start (Jan 1).
CRON_SO = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: so-{i}, namespace: bench}}
spec:
  scaleTargetRef: {{name: w-{i}}}
  minReplicaCount: 1
  triggers:
  - type: cron
    metadata: {{timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "5"}}
"""
PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/s0-cron-UTC-0011x-xxxxx"
LUA = """
local n = {objects}
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", "{path}?labelSelector=scaledobject.keda.sh%2Fname%3Dso-" .. i)
end
"""


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
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _latency(out, "50%"), _latency(out, "99%"))


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def process(args: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("w") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(ready_url, verify=False, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[:4]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(objects: int, rounds: int, seconds: int, connections: int, work: Path) -> str:
    directory = work / f"objects-{objects}"
    directory.mkdir()
    (directory / "objects.yaml").write_text(
        "---\n".join(CRON_SO.format(i=i) for i in range(objects))
    )
    cert, key = self_signed_pair(work / "certs")
    script = work / f"load-{objects}.lua"
    script.write_text(LUA.format(objects=objects, path=PATH))
    ours_port, bare_port = free_port(), free_port()
    ours_url, bare_url = f"https://127.0.0.1:{ours_port}", f"https://127.0.0.1:{bare_port}"
    ours = [
        sys.executable,
        "-m",
        "metrics_adapter",
        "serve",
        "--scaledobjects",
        str(directory),
        "--secure-port",
        str(ours_port),
        "--metrics-port",
        "0",
        "--tls-cert-file",
        str(cert),
        "--tls-private-key-file",
        str(key),
        "--log-level",
        "warning",
    ]
    bare = [sys.executable, "-m", "bench.bare_app", str(bare_port), str(cert), str(key)]
    last = f"{PATH}?labelSelector=scaledobject.keda.sh%2Fname%3Dso-{objects - 1}"
    results: list[tuple[Result, Result]] = []
    with (
        process(ours, f"{ours_url}{last}", work / "ours.log"),
        process(bare, f"{bare_url}{PATH}", work / "bare.log"),
    ):
        wrk(ours_url, script, 2, connections)  # warm both
        wrk(bare_url, script, 2, connections)
        for _ in range(rounds):
            results.append(
                (
                    wrk(ours_url, script, seconds, connections),
                    wrk(bare_url, script, seconds, connections),
                )
            )
    med = statistics.median
    fields = ("rps", "p50_ms", "p99_ms")
    mine = Result(*(med(getattr(r[0], f) for r in results) for f in fields))
    ceiling = Result(*(med(getattr(r[1], f) for r in results) for f in fields))
    ratio = med(r[0].rps / r[1].rps for r in results)
    print(
        f"objects={objects:>6}  ours: {mine.rps:8.0f} req/s p50 {mine.p50_ms:.2f} ms "
        f"p99 {mine.p99_ms:.2f} ms   bare: {ceiling.rps:8.0f} req/s p50 {ceiling.p50_ms:.2f} ms "
        f"p99 {ceiling.p99_ms:.2f} ms   ratio {ratio:.2f}",
        flush=True,
    )
    return (
        f"api: objects={objects} rps={mine.rps:.0f} p99_ms={mine.p99_ms:.2f} "
        f"ratio_vs_bare={ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench.api needs wrk: apt-get install wrk")
    print(
        f"wrk -t1 -c{args.connections}, HTTPS keep-alive, {args.rounds} rounds of "
        f"{args.seconds}s, medians",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        summaries = [
            run(n, args.rounds, args.seconds, args.connections, Path(tmp)) for n in args.objects
        ]
    for line in summaries:
        print(line)


if __name__ == "__main__":
    main()
