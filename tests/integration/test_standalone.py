"""The real `metrics-adapter serve --scaledobjects DIR` process against a real nats-server:
a ScaledObject's metric served and its activation decided; a ScaledJob's Jobs computed and
logged (standalone counts no running Jobs)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import jetstream
from tests.support.nats import NatsServer
from tests.support.servers import free_ports

pytestmark = pytest.mark.integration

ECHO_WORKER = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: echo-worker
  namespace: event-demo
spec:
  scaleTargetRef:
    name: echo-worker
  minReplicaCount: 0
  maxReplicaCount: 5
  pollingInterval: 1
  cooldownPeriod: 60
  triggers:
  - type: nats-jetstream
    metadata:
      natsServerMonitoringEndpoint: "{endpoint}"
      account: "$G"
      stream: JOBS
      consumer: echo-workers
      lagThreshold: "10"
      activationLagThreshold: "0"
"""

INTERVAL = 1  # ECHO_WORKER's pollingInterval
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it
SERVED_WITHIN = 4 * (INTERVAL + SCALER_TIMEOUT)
"""A change at the source is served after the next poll, at most an interval away and ending
within the scaler timeout; four polls' worth for a loaded machine."""

BROKEN = ECHO_WORKER.replace("name: echo-worker", "name: broken").replace(
    'lagThreshold: "10"', 'lagThreshold: "ten"'
)

THUMBNAILER = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata:
  name: thumbnailer
  namespace: media
spec:
  jobTargetRef:
    template:
      spec:
        containers:
        - name: thumbnailer
          image: thumbnailer:1
        restartPolicy: Never
  pollingInterval: 1
  maxReplicaCount: 4
  triggers:
  - type: nats-jetstream
    metadata:
      natsServerMonitoringEndpoint: "{endpoint}"
      account: "$G"
      stream: MEDIA
      consumer: thumbnailers
      lagThreshold: "10"
"""
BROKEN_JOB = THUMBNAILER.replace("name: thumbnailer\n  namespace", "name: broken-job\n  namespace")
BROKEN_JOB = BROKEN_JOB.replace('lagThreshold: "10"', 'lagThreshold: "ten"')


class Adapter:
    def __init__(self, directory: Path, log: Path) -> None:
        self.port, self.metrics_port = free_ports(2)
        self.log_path = log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metrics_adapter",
                "serve",
                "--scaledobjects",
                str(directory),
                "--secure-port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--cert-dir",
                str(directory.parent / "certs"),
                "--log-format",
                "json",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.cert = directory.parent / "certs" / "apiserver.crt"
        self.client = httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"adapter not ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        self.client.close()
        self.process.terminate()
        code = self.process.wait(timeout=15)
        self._log.close()
        return code


@pytest.fixture
def adapter(tmp_path: Path, nats_server: NatsServer) -> Iterator[Adapter]:
    directory = tmp_path / "objects"
    directory.mkdir()
    endpoint = nats_server.monitoring_endpoint
    (directory / "echo-worker.yaml").write_text(ECHO_WORKER.format(endpoint=endpoint))
    (directory / "broken.yaml").write_text(BROKEN.format(endpoint=endpoint))
    running = Adapter(directory, tmp_path / "adapter.log")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


@pytest.fixture
def job_adapter(tmp_path: Path, nats_server: NatsServer) -> Iterator[Adapter]:
    directory = tmp_path / "objects"
    directory.mkdir()
    endpoint = nats_server.monitoring_endpoint
    (directory / "thumbnailer.yaml").write_text(THUMBNAILER.format(endpoint=endpoint))
    (directory / "broken-job.yaml").write_text(BROKEN_JOB.format(endpoint=endpoint))
    running = Adapter(directory, tmp_path / "adapter.log")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def wait_for(predicate: object, timeout: float = SERVED_WITHIN) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


METRIC = (
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/event-demo/s0-nats-jetstream-JOBS"
    "?labelSelector=scaledobject.keda.sh%2Fname%3Decho-worker"
)


def test_standalone_serves_lag_and_decides_activation(
    adapter: Adapter, nats_server: NatsServer
) -> None:
    asyncio.run(
        jetstream.prepare(
            nats_server.url, "JOBS", "jobs", ["echo-workers"], publish=50, workqueue=True
        )
    )

    def value() -> str | None:
        response = adapter.client.get(METRIC)
        return response.json()["items"][0]["value"] if response.status_code == 200 else None

    wait_for(lambda: value() == "50")
    # A poll may land while the 50 messages are still being published: activation then
    # wakes to what that poll saw, and the next poll's HPA proposal takes it to 5.
    activated = re.compile(
        r"would scale event-demo/echo-worker from 0 to \d+: s0-nats-jetstream-JOBS lag \d+ > 0"
    )
    wait_for(lambda: activated.search(adapter.log()) is not None)
    wait_for(lambda: "ceil(50 / 10) = 5" in adapter.log())

    metrics = httpx.get(f"http://127.0.0.1:{adapter.metrics_port}/metrics").text
    assert (
        'keda_scaler_metrics_value{metric="s0-nats-jetstream-JOBS",namespace="event-demo",'
        'scaledObject="echo-worker",scaler="natsJetStreamScaler",triggerIndex="0",'
        'type="scaledobject"} 50.0'
    ) in metrics
    assert 'keda_scaler_active{metric="s0-nats-jetstream-JOBS"' in metrics
    assert "keda_build_info{" in metrics
    assert (
        'keda_scaled_object_errors_total{namespace="event-demo",scaledObject="broken"} 1.0'
        in metrics
    )

    # The broken object is reported with its field, and did not stop the good one.
    assert 'triggers[0].metadata.lagThreshold: \\"ten\\" is not a number' in adapter.log()
    broken = adapter.client.get(METRIC.replace("echo-worker", "broken"))
    assert broken.status_code == 503
    assert '"ten" is not a number' in broken.json()["message"]

    # Drained: the value follows, and scale-to-zero waits for the cooldown.
    asyncio.run(jetstream.consume(nats_server.url, "JOBS", "echo-workers", fetch=50, ack=50))
    wait_for(lambda: value() == "0")
    wait_for(
        lambda: (
            "event-demo/echo-worker is inactive: s0-nats-jetstream-JOBS lag 0 <= 0; "
            "cooldown: " in adapter.log()
        )
    )
    assert "would scale event-demo/echo-worker from 5 to 0" not in adapter.log()
    assert adapter.stop() == 0


def scaler_errors(adapter: Adapter) -> float:
    """``keda_scaler_detail_errors_total`` of the echo-worker's trigger: failed polls."""
    metrics = httpx.get(f"http://127.0.0.1:{adapter.metrics_port}/metrics").text
    series = 'keda_scaler_detail_errors_total{metric="s0-nats-jetstream-JOBS"'
    lines = [line for line in metrics.splitlines() if line.startswith(series)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_source_down_gives_503_and_never_a_zero(adapter: Adapter, nats_server: NatsServer) -> None:
    asyncio.run(jetstream.prepare(nats_server.url, "JOBS", "jobs", ["echo-workers"], publish=8))
    wait_for(lambda: adapter.client.get(METRIC).status_code == 200)
    # A loaded machine may time a poll out before this point; only what follows counts.
    before_stop = len(adapter.log())
    nats_server.stop()
    wait_for(lambda: adapter.client.get(METRIC).status_code == 503)
    body = adapter.client.get(METRIC).json()
    assert "encountered error" in body["message"]
    # Two more failing polls, to show the warning is not repeated while the state holds.
    failed = scaler_errors(adapter)
    wait_for(lambda: scaler_errors(adapter) >= failed + 2)
    assert "would scale event-demo/echo-worker from 5 to 0" not in adapter.log()
    assert "from 1 to 0" not in adapter.log()
    assert adapter.log()[before_stop:].count("trigger failing") == 1  # once per change of state


def test_standalone_logs_the_jobs_a_scaled_job_would_create(
    job_adapter: Adapter, nats_server: NatsServer
) -> None:
    assert "loaded 0 ScaledObjects and 2 ScaledJobs (1 not ready), 1 distinct queries" in (
        job_adapter.log()
    )
    asyncio.run(jetstream.prepare(nats_server.url, "MEDIA", "media", ["thumbnailers"], publish=45))
    # ceil(45 / 10) = 5, capped at maxReplicaCount 4; no Jobs counted standalone.
    wait_for(
        lambda: (
            "would create 4 Jobs for media/thumbnailer: queue 45, target 10, running 0, "
            "pending 0, strategy default" in job_adapter.log()
        )
    )
    assert (
        "ScaledJob media/thumbnailer is active: s0-nats-jetstream-MEDIA lag 45 > 0"
        in job_adapter.log()
    )

    metrics = httpx.get(f"http://127.0.0.1:{job_adapter.metrics_port}/metrics").text
    assert (
        'keda_scaler_metrics_value{metric="s0-nats-jetstream-MEDIA",namespace="media",'
        'scaledObject="thumbnailer",scaler="natsJetStreamScaler",triggerIndex="0",'
        'type="scaledjob"} 45.0'
    ) in metrics
    assert 'keda_scaled_job_errors_total{namespace="media",scaledJob="broken-job"} 1.0' in metrics
    assert 'triggers[0].metadata.lagThreshold: \\"ten\\" is not a number' in job_adapter.log()
    # Served to no HPA: KEDA serves no ScaledJob metric either.
    served = job_adapter.client.get(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/media/s0-nats-jetstream-MEDIA"
        "?labelSelector=scaledobject.keda.sh%2Fname%3Dthumbnailer"
    )
    assert served.status_code == 404

    asyncio.run(jetstream.consume(nats_server.url, "MEDIA", "thumbnailers", fetch=45, ack=45))
    wait_for(
        lambda: (
            "ScaledJob media/thumbnailer is inactive: s0-nats-jetstream-MEDIA lag 0 <= 0"
            in job_adapter.log()
        )
    )
    assert job_adapter.stop() == 0
