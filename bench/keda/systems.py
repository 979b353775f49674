"""KEDA v2.20.2 and metrics-adapter, each on a control plane of its own, installed as their
releases install them.

KEDA: its CRDs, ServiceAccount and RBAC from the release's ``config/``; the operator and the
metrics server as plain processes with that ServiceAccount's identity; the operator's gRPC
metrics service on loopback with certificates of a CA made here (mutual TLS, as its
``kedaorg-certs`` Secret would give it); the metrics server registered as
``v1beta1.external.metrics.k8s.io`` with its serving CA in the APIService, reached by the
aggregator through an ExternalName Service (as the e2e harness reaches ours). metrics-adapter:
the e2e harness's cluster mode (deploy/'s CRDs and RBAC, one process).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.adapter import cpu_seconds, rss_mb
from bench.report import note
from tests.support.controlplane import (
    REPO,
    ControlPlane,
    load_manifests,
    register_apiservice,
    wait_for,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.controlplane.pki import serving_pair, write_kubeconfig
from tests.support.controlplane.processes import Process
from tests.support.pki import CertificateAuthority
from tests.support.servers import free_port

KEDA_VERSION = "2.20.2"
KEDA_NAMESPACE = "keda"
KEDA_ACCOUNT = "keda-operator"
KEDA_USER = f"system:serviceaccount:{KEDA_NAMESPACE}:{KEDA_ACCOUNT}"
METRICS_SERVICE = "keda-metrics-apiserver"

Prepare = Callable[[ControlPlane], None]


@dataclass
class System:
    """One autoscaler running on its control plane: what a scenario drives and measures."""

    name: str
    cp: ControlPlane
    processes: list[Process]

    def check(self) -> None:
        """Raise with the end of its log if one of the processes has exited."""
        for process in self.processes:
            process.check()

    @property
    def pids(self) -> list[int]:
        return [p.process.pid for p in self.processes if p.process is not None]

    def rss_mb(self) -> float:
        return sum(rss_mb(pid) for pid in self.pids)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.processes)


def keda_home() -> Path:
    """KEDA's binaries and manifests, built into the cache when absent (hack/build-keda.sh)."""
    script = REPO / "hack" / "build-keda.sh"
    built = subprocess.run([str(script)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(built.stdout.strip().splitlines()[-1])


@contextmanager
def ours(namespace: str, prepare: Prepare, hpa_sync_period: float) -> Iterator[System]:
    """metrics-adapter in cluster mode, one process, registered as the external metrics API."""
    with cluster_mode(
        namespace, prepare=prepare, report=note, final_tail=0, hpa_sync_period=hpa_sync_period
    ) as (cp, adapter):
        assert adapter.process is not None
        yield System("metrics-adapter", cp, [adapter.process])


@contextmanager
def keda(namespace: str, prepare: Prepare, hpa_sync_period: float) -> Iterator[System]:
    """KEDA's operator and metrics server, registered as the external metrics API."""
    home = keda_home()
    with ExitStack() as stack:
        cp = ControlPlane(hpa_sync_period=hpa_sync_period)
        stack.callback(cp.cleanup)
        system = System("KEDA", cp, [])
        try:
            cp.start()
            _install(cp, home)
            cp.ensure_namespace(namespace)
            prepare(cp)
            system.processes += _start(cp, home, stack)
        except BaseException:  # a failing session is reported by its caller, with system.tail
            note(f"{cp.logs()}\n{system.tail(60)}")
            raise
        yield system


def _install(cp: ControlPlane, home: Path) -> None:
    """The CRDs, the namespace, the ServiceAccount and the RBAC of KEDA's release."""
    crds = load_manifests(home / "crds")
    for crd in crds:
        cp.apply(crd)
    for crd in crds:
        name = crd["metadata"]["name"]
        cp.wait_condition(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", name, "Established"
        )
    cp.ensure_namespace(KEDA_NAMESPACE)
    for doc in load_manifests(home / "rbac"):
        cp.apply(doc)


def _grpc_certificates(cp: ControlPlane) -> tuple[Path, Path]:
    """Directories with ``ca.crt``, ``tls.crt`` and ``tls.key`` for the operator's gRPC server
    and the metrics server, its client (mutual TLS: KEDA checks both ends against ca.crt)."""
    ca = CertificateAuthority("keda-grpc")
    hosts = [f"keda-operator.{KEDA_NAMESPACE}.svc", "localhost", "127.0.0.1"]
    found = []
    for role, pair in (
        ("operator", ca.issue("keda-operator", hosts=hosts, usage="server")),
        ("metrics-server", ca.issue(METRICS_SERVICE)),
    ):
        directory = cp.state / "keda-grpc" / role
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.crt").write_bytes(ca.pem)
        pair.write(directory, "tls")
        found.append(directory)
    return found[0], found[1]


def _start(cp: ControlPlane, home: Path, stack: ExitStack) -> list[Process]:
    kubeconfig = cp.state / "keda.kubeconfig"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{KEDA_NAMESPACE}"]
    write_kubeconfig(kubeconfig, cp.url, cp.ca.pem, cp.ca.issue(KEDA_USER, organizations=groups))
    operator_certs, client_certs = _grpc_certificates(cp)
    grpc, probes = free_port(), free_port()
    operator = Process(
        "keda-operator",
        [
            "env",
            f"KUBECONFIG={kubeconfig}",
            f"POD_NAMESPACE={KEDA_NAMESPACE}",
            f"KEDA_CLUSTER_OBJECT_NAMESPACE={KEDA_NAMESPACE}",
            "WATCH_NAMESPACE=",
            str(home / "bin" / "keda"),
            "--leader-elect",
            "--enable-cert-rotation=false",
            f"--cert-dir={operator_certs}",
            f"--metrics-service-bind-address=127.0.0.1:{grpc}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{probes}",
            "--zap-log-level=info",
        ],
        cp.state,
    ).start()
    stack.callback(operator.stop)

    def operator_ready() -> bool:
        operator.check()
        return httpx.get(f"http://127.0.0.1:{probes}/readyz", timeout=2).status_code == 200

    wait_for("KEDA's operator /readyz", operator_ready, 120, 0.5)
    port = free_port()
    serving = serving_pair(METRICS_SERVICE, KEDA_NAMESPACE, cp.ca)
    cert, key = serving.write(cp.state / "pki", METRICS_SERVICE)
    metrics_server = Process(
        METRICS_SERVICE,
        [
            "env",
            "WATCH_NAMESPACE=",  # every namespace; it refuses to start without it
            f"POD_NAMESPACE={KEDA_NAMESPACE}",
            str(home / "bin" / "keda-adapter"),
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--cert-dir={client_certs}",
            f"--kubeconfig={kubeconfig}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--metrics-service-address=127.0.0.1:{grpc}",
            f"--port={free_port()}",
        ],
        cp.state,
    ).start()
    stack.callback(metrics_server.stop)
    _register(cp, home, port)
    return [operator, metrics_server]


def _register(cp: ControlPlane, home: Path, port: int) -> None:
    """KEDA's APIService with the serving CA, routed to ``port`` on loopback."""
    [apiservice] = load_manifests(home / "api-service.yaml")
    began = time.monotonic()
    register_apiservice(cp, apiservice, cp.ca.pem, port, timeout=120)
    note(f"keda: metrics server Available in {time.monotonic() - began:.1f}s")
