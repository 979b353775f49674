"""The HPA's reads under attack on the secure port, against the same reads just before, in one
run: ``metrics-adapter serve`` as a real process with its default limits, one ScaledObject,
and an attacker process of its own from its own loopback address.

    .venv/bin/python -m bench.attack [--seconds 20] [--kinds slowloris handshake-flood]

For each kind, two phases of ``--seconds``: **baseline** (no attacker) then **attack**
(``python -m tests.support.attack KIND ...``, given a second to ramp up first). In both, the
HPA reads every 20 ms on one kept-alive connection, as the aggregator does, and every tenth
time also on a new connection (the read a full port would refuse). Attacks:

- ``slowloris``: 500 connections from 127.0.0.2, each sending a request head a byte a second,
  reconnecting when dropped;
- ``handshake-flood``: new TLS connections from 127.0.0.3, 8 at a time, as fast as they go.

Errors are reads that got no 200: the goal is none, and a p99 near the baseline's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.adapter import Bench, metric_url, scaled_object
from bench.api import CRON, METRIC
from bench.report import main, median, note, percentile, print_table, summary
from tests.support.pki import client_context

NAMESPACE, NAME = "bench", "worker"
SOURCES = {"slowloris": "127.0.0.2", "handshake-flood": "127.0.0.3"}
EVERY = 0.02
NEW_CONNECTION_EVERY = 10


@dataclass
class Reads:
    kept_alive_ms: list[float] = field(default_factory=list)
    new_connection_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def p99(self, which: list[float]) -> float:
        return percentile(which, 99) if which else float("nan")


def read(client: httpx.Client, url: str, into: list[float], reads: Reads) -> None:
    began = time.perf_counter()
    try:
        ok = client.get(url).status_code == 200
    except httpx.HTTPError:
        ok = False
    if ok:
        into.append((time.perf_counter() - began) * 1000)
    else:
        reads.errors += 1


def hpa_reads(url: str, ca_pem: bytes, seconds: float) -> Reads:
    reads, tls = Reads(), client_context(ca_pem)
    deadline = time.monotonic() + seconds
    with httpx.Client(verify=tls, timeout=10) as kept:
        count = 0
        while time.monotonic() < deadline:
            read(kept, url, reads.kept_alive_ms, reads)
            count += 1
            if count % NEW_CONNECTION_EVERY == 0:
                with httpx.Client(verify=tls, timeout=10) as fresh:
                    read(fresh, url, reads.new_connection_ms, reads)
            time.sleep(EVERY)
    return reads


def attacked(
    kind: str, port: int, ca_file: Path, url: str, ca_pem: bytes, seconds: float
) -> tuple[Reads, str]:
    """The HPA's reads while ``kind`` runs; and what the attacker said it got."""
    argv = [sys.executable, "-m", "tests.support.attack", kind, str(port), SOURCES[kind]]
    attacker = subprocess.Popen(
        [*argv, str(ca_file), str(seconds + 2)], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1)  # ramp up
        reads = hpa_reads(url, ca_pem, seconds)
        out, _ = attacker.communicate(timeout=60)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    return reads, out.strip()


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(prog="bench.attack", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kinds", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    args = parser.parse_args(argv)
    lines, rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-attack-") as tmp:
        bench = Bench(Path(tmp))
        ca_file = bench.work / "ca.crt"
        ca_file.write_bytes(bench.ca.pem)
        with bench.adapter("attack", [scaled_object(NAME, NAMESPACE, CRON)]) as adapter:
            url = metric_url(adapter.url, NAMESPACE, METRIC, NAME)
            bench.wait_value(url)
            port = int(adapter.url.rsplit(":", 1)[1])
            for kind in args.kinds:
                note(f"attack {kind}: baseline {args.seconds:g}s")
                baseline = hpa_reads(url, bench.ca.pem, args.seconds)
                note(f"attack {kind}: under attack {args.seconds:g}s")
                under, said = attacked(kind, port, ca_file, url, bench.ca.pem, args.seconds)
                note(f"attack {kind}: the attacker got {said}")
                for phase, reads in (("baseline", baseline), (kind, under)):
                    rows.append(
                        (
                            phase,
                            len(reads.kept_alive_ms) + len(reads.new_connection_ms),
                            reads.errors,
                            median(reads.kept_alive_ms),
                            reads.p99(reads.kept_alive_ms),
                            reads.p99(reads.new_connection_ms),
                        )
                    )
                lines.append(
                    summary(
                        "attack",
                        kind=kind,
                        hpa_p99_ms=under.p99(under.kept_alive_ms),
                        baseline_p99_ms=baseline.p99(baseline.kept_alive_ms),
                        new_connection_p99_ms=under.p99(under.new_connection_ms),
                        baseline_new_connection_p99_ms=baseline.p99(baseline.new_connection_ms),
                        errors=under.errors,
                        attacker=said.replace(" ", ",") or "-",
                    )
                )
    print_table(
        f"The HPA's reads, {args.seconds:g} s a phase, default limits",
        ["phase", "reads", "errors", "p50 ms", "p99 ms", "p99 ms, new connection"],
        rows,
    )
    return lines


if __name__ == "__main__":
    main(run)
