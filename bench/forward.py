"""One forwarded hop: reads answered by the owner directly against the same reads sent to a
non-owner replica that forwards them to the owner, side by side in one run, with wrk.

    .venv/bin/python -m bench.forward [--objects 1000] [--rounds 3] [--seconds 10]

Two processes on loopback, each serving the adapter's routes over TLS with one self-signed
pair naming a Service (as replicas do): the owner, whose MetricStore holds every object's
value, and the non-owner, whose Route names the owner for every object. No auth gate on
either (bench.gate measures that). Each round runs wrk against the owner, then the non-owner;
figures are medians over rounds, and the ratio is taken within each round.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from bench.api import LUA, WRK_INSTALL, Result, wrk
from bench.report import main, median, note, print_table, summary
from tests.support.controlplane import wait_for
from tests.support.controlplane.processes import Process
from tests.support.servers import free_ports

NAMESPACE = "bench"
METRIC = "s0-cron"
PATH = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{METRIC}"


def serve(role: str, port: int, cert: str, key: str, objects: int, owner_url: str) -> None:
    """One replica, in this process (``python -m bench.forward --serve ...``)."""
    from metrics_adapter.api.app import Health, create_app
    from metrics_adapter.api.forward import Forwarder, Peer
    from metrics_adapter.metrics.store import MetricStore
    from metrics_adapter.model.keda import ObjectRef
    from metrics_adapter.server import server_config

    store = MetricStore()
    if role == "owner":
        now = datetime.now(UTC)
        for i in range(objects):
            ref = ObjectRef(NAMESPACE, f"so-{i}")
            store.register(ref, [METRIC])
            store.record_value(ref, METRIC, i, True, now)
    forward = None
    if role == "forwarder":
        peer = Peer("owner", owner_url)

        class Everything:
            def owner(self, namespace: str, name: str) -> Peer | None:
                return peer

            def watched(self, namespace: str, name: str) -> bool:
                return True

        anchor = Path(cert).read_bytes()
        forward = (Everything(), Forwarder("forwarder", lambda: anchor))
    app = create_app(store, Health(loaded=True, poller_running=lambda: True), forward=forward)
    config = server_config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=90,
    )
    uvicorn.Server(config).run()


@contextmanager
def replicas(work: Path, objects: int) -> Iterator[tuple[str, str]]:
    """The owner's and the non-owner's URLs, both answering the last object's read."""
    from metrics_adapter.api.tls import self_signed_pair

    cert, key = self_signed_pair(work / "certs", ["metrics-adapter.keda.svc"])
    owner_port, forwarder_port = free_ports(2)
    owner_url = f"https://127.0.0.1:{owner_port}"
    forwarder_url = f"https://127.0.0.1:{forwarder_port}"
    started: list[Process] = []
    try:
        for role, port in (("owner", owner_port), ("forwarder", forwarder_port)):
            argv = [sys.executable, "-m", "bench.forward", "--serve", role, str(port)]
            argv += [str(cert), str(key), str(objects), owner_url]
            started.append(Process(role, argv, work).start())
        query = f"labelSelector=scaledobject.keda.sh%2Fname%3Dso-{objects - 1}"

        def ready() -> bool:
            for process in started:
                process.check()
            got = httpx.get(f"{forwarder_url}{PATH}?{query}", verify=False, timeout=5)
            return got.status_code == 200

        wait_for("both replicas", ready, 60)
        yield owner_url, forwarder_url
    finally:
        for process in started:
            process.stop()


def measure(
    work: Path, objects: int, rounds: int, seconds: int, connections: int
) -> tuple[Result, Result, float]:
    script = work / "load.lua"
    script.write_text(LUA.format(objects=objects, path=PATH))
    results: list[tuple[Result, Result]] = []
    with replicas(work, objects) as (owner, forwarder):
        wrk(owner, script, 2, connections)  # warm both, the forwarder's pool included
        wrk(forwarder, script, 2, connections)
        for i in range(rounds):
            note(f"forward: round {i + 1}/{rounds}")
            results.append(
                (
                    wrk(owner, script, seconds, connections),
                    wrk(forwarder, script, seconds, connections),
                )
            )
    fields = ("rps", "p50_ms", "p99_ms")
    direct = Result(*(median(getattr(r[0], f) for r in results) for f in fields))
    hop = Result(*(median(getattr(r[1], f) for r in results) for f in fields))
    return direct, hop, median(r[1].rps / r[0].rps for r in results)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit(f"bench.forward needs wrk: {WRK_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        direct, hop, ratio = measure(
            Path(tmp), args.objects, args.rounds, args.seconds, args.connections
        )
    print_table(
        f"One forwarded hop: wrk -t1 -c{args.connections}, HTTPS keep-alive, {args.objects} "
        f"objects, {args.rounds} rounds of {args.seconds}s, medians; ratio within each round",
        ("path", "req/s", "p50 ms", "p99 ms"),
        [
            ["owner, directly", round(direct.rps), direct.p50_ms, direct.p99_ms],
            ["non-owner, one hop", round(hop.rps), hop.p50_ms, hop.p99_ms],
        ],
    )
    return [
        summary(
            "forward",
            objects=args.objects,
            direct_rps=round(direct.rps),
            direct_p99_ms=direct.p99_ms,
            hop_rps=round(hop.rps),
            hop_p50_ms=hop.p50_ms,
            hop_p99_ms=hop.p99_ms,
            ratio_hop_vs_direct=ratio,
        )
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        role, port, cert, key, objects, owner_url = sys.argv[2:8]
        serve(role, int(port), cert, key, int(objects), owner_url)
    else:
        main(run)
