"""The adapter as the benchmarks run it: ``metrics-adapter serve --scaledobjects DIR`` as a real
process on a free loopback port, with ScaledObjects the benchmark generates and the flags it
needs (the e2e harness's Adapter takes none), stopped for sure by the harness's process code;
or in cluster mode on the e2e harness's control plane (:func:`control_plane`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.report import note
from tests.support import triggers
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    Adapter,
    ControlPlane,
    client_context,
    serving_pair,
    wait_for,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.controlplane.processes import Process
from tests.support.pki import CertificateAuthority, KeyPair
from tests.support.servers import free_port

METRICS_PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces"


def scaled_object(
    name: str, namespace: str, trigger: Mapping[str, Any], polling_interval: int = 30
) -> dict[str, Any]:
    """A ScaledObject with one trigger, as a user writes it."""
    return triggers.scaled_object(
        name, namespace, trigger, minReplicaCount=1, pollingInterval=polling_interval
    )


def write_objects(directory: Path, docs: Iterable[Mapping[str, Any]]) -> int:
    """Write ``docs`` as one ``List`` (JSON is YAML: 10,000 objects are written in
    milliseconds, where PyYAML's dumper takes seconds); returns how many."""
    items = list(docs)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "objects.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    return len(items)


@contextmanager
def control_plane(namespace: str, who: str) -> Iterator[tuple[ControlPlane, Adapter]]:
    """etcd, kube-apiserver and kube-controller-manager on loopback (the e2e harness), the
    adapter in cluster mode as its ServiceAccount, registered as the external metrics API,
    and ``namespace``; on an error, the tails of their logs on stderr."""
    began = time.monotonic()
    with cluster_mode(namespace, report=note, final_tail=0) as (cp, adapter):
        note(f"{who}: control plane and adapter ready in {time.monotonic() - began:.1f}s")
        yield cp, adapter


def metric_url(base: str, namespace: str, metric: str, so: str) -> str:
    selector = f"scaledobject.keda.sh%2Fname%3D{so}"
    return f"{base}{METRICS_PATH}/{namespace}/{metric}?labelSelector={selector}"


class Bench:
    """One serving identity per benchmark run: the adapter's pair, also lent to the bare app."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ca = CertificateAuthority("bench")
        self.pair: KeyPair = serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, self.ca)

    def files(self) -> tuple[Path, Path]:
        """The pair as PEM files, for a server other than the adapter."""
        return self.pair.write(self.work / "pki", "bench")

    def get(self, url: str) -> httpx.Response:
        with httpx.Client(verify=client_context(self.ca.pem), timeout=5) as client:
            return client.get(url)

    @contextmanager
    def adapter(
        self,
        name: str,
        docs: Iterable[Mapping[str, Any]],
        flags: Sequence[str] = (),
        timeout: float = 300,
        require_ready: bool = True,
    ) -> Iterator[Running]:
        """The adapter serving ``docs`` (in its own directory ``name``), ready (/readyz): or,
        without ``require_ready``, however far it got within ``timeout`` (``ready_s`` None)."""
        state = self.work / name
        write_objects(state / "objects", docs)
        cert, key = self.files()
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "metrics_adapter",
            "serve",
            f"--scaledobjects={state / 'objects'}",
        ]
        argv += [f"--secure-port={port}", "--metrics-port=0", f"--tls-cert-file={cert}"]
        argv += [f"--tls-private-key-file={key}", "--log-level=warning", *flags]
        began = time.monotonic()
        process = Process("adapter", argv, state).start()
        url = f"https://127.0.0.1:{port}"
        try:
            try:
                self.wait_ready(url, process, timeout)
                ready: float | None = time.monotonic() - began
            except TimeoutError:
                if require_ready:
                    raise
                ready = None
            yield Running(url, process, ready)
        finally:
            process.stop()

    def wait_ready(self, url: str, process: Process, timeout: float) -> None:
        def ready() -> bool:
            process.check()
            return self.get(f"{url}/readyz").status_code == 200

        wait_for(f"the adapter on {url}", ready, timeout, 0.1)

    def wait_value(self, url: str, timeout: float = 300) -> None:
        """Until ``url`` answers 200: the object's trigger has been polled at least once."""
        wait_for(url, lambda: self.get(url).status_code == 200, timeout, 0.2)


@dataclass(frozen=True)
class Running:
    url: str
    process: Process
    ready_s: float | None
    """From start to /readyz answering 200; None when it did not within the timeout."""

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def tail(self, lines: int = 30) -> str:
        return self.process.tail(lines)


def cpu_seconds(process_id: int) -> float:
    """utime + stime of a process so far, from /proc/PID/stat (in clock ticks)."""
    fields = Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" of comm: state is field 3 of stat(5), so utime (14) and stime (15) are 11, 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(process_id: int) -> float:
    """VmRSS from /proc/PID/status, in MiB."""
    for line in Path(f"/proc/{process_id}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{process_id}/status")


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))
