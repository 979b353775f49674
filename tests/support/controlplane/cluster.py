"""etcd, kube-apiserver and kube-controller-manager on free loopback ports.

RBAC is on, with the front-proxy flags the aggregator needs, and the deployment, replicaset, job,
serviceaccount and HPA controllers run with a 1 s HPA sync unless told otherwise
(shared/reference/control-plane.md §3). Nothing dials beyond loopback: the Service range only
hands out addresses and the Endpoints reconciler is off.

``with_node=True`` adds kube-scheduler and a kubelet on containerd (:mod:`.node`): pods run in a
network namespace of the cluster's own, the apiserver authorizes the kubelet as a node
(``Node,RBAC``) and the aggregator dials pod IPs (``--enable-aggregator-routing``).

Deliberately left at their defaults: the ``HPAScaleToZero`` gate stays off, as on the
clusters users run (KEDA takes the 0 <-> 1 step itself, the HPA never sees 0), and every
default admission plugin stays on, ServiceAccount included, since the serviceaccount
controller creates the ``default`` ServiceAccount that pods need.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.controlplane.api import KubeApi
from tests.support.controlplane.binaries import ensure_binaries
from tests.support.controlplane.node import Node
from tests.support.controlplane.pki import write_cluster_pki, write_kubeconfig
from tests.support.controlplane.processes import Process, logs, wait_for
from tests.support.pki import CertificateAuthority, KeyPair, client_context
from tests.support.servers import free_ports

CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "serviceaccount-controller",
    "garbage-collector-controller",  # deleting a ScaledObject deletes its HPA (ownerReference)
    "job-controller",  # a ScaledJob's Jobs get Pods, and finish when their Pods do
)
NODE_CONTROLLERS = (
    # Services get EndpointSlices (and Endpoints): the aggregator routes to their pod IPs.
    "endpoints-controller",
    "endpointslice-controller",
    # Every namespace gets kube-root-ca.crt, which each pod's ServiceAccount volume mounts.
    "root-ca-certificate-publisher-controller",
    # Lifts the not-ready taint the kubelet registers with once the Node is Ready.
    "node-lifecycle-controller",
)


@dataclass
class ControlPlane(KubeApi):
    """etcd + kube-apiserver + kube-controller-manager in ``state`` (a temp dir by default)."""

    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="controlplane-")))
    detach: bool = False
    hpa_sync_period: float = 1.0
    """kube-controller-manager's ``--horizontal-pod-autoscaler-sync-period`` in seconds: 1 s
    keeps tests fast; ``bench.activation`` runs the real default, 15 s."""
    with_node: bool = False
    """Also run kube-scheduler and a kubelet on containerd (:mod:`.node`), so pods run; the
    apiserver then authorizes the kubelet as a node and routes the aggregator to pod IPs."""
    node: Node | None = None
    timings: dict[str, float] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    url: str = ""
    ca: CertificateAuthority = field(default_factory=lambda: CertificateAuthority("kubernetes"))
    _client: httpx.Client | None = None
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    _etcd_port: int = 0

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    def start(self, timeout: float = 120) -> ControlPlane:
        began = time.monotonic()
        try:
            bin_dir = ensure_binaries()
            self._mark("binaries", began)
            self._start(bin_dir, timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = round(time.monotonic() - began, 2)
        return self

    def _mark(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.timings[phase] = round(now - since, 2)
        return now

    def _start(self, bin_dir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(deadline - time.monotonic(), 1.0)

        t = time.monotonic()
        admin = write_cluster_pki(self.ca, self.pki)
        etcd_port, peer_port, api_port = free_ports(3)
        self.url = f"https://127.0.0.1:{api_port}"
        write_kubeconfig(self.kubeconfig, self.url, self.ca.pem, admin)
        kcm_kubeconfig = self.state / "kube-controller-manager.kubeconfig"
        kcm_user = self.ca.issue("system:kube-controller-manager")
        write_kubeconfig(kcm_kubeconfig, self.url, self.ca.pem, kcm_user)
        t = self._mark("pki", t)

        etcd = self._spawn("etcd", bin_dir, self._etcd_flags(etcd_port, peer_port))
        self._etcd_port = etcd_port
        wait_for("etcd /health", lambda: _etcd_healthy(etcd, etcd_port), left(), 0.05)
        t = self._mark("etcd", t)

        apiserver = self._spawn(
            "kube-apiserver", bin_dir, self._apiserver_flags(api_port, etcd_port)
        )
        wait_for("kube-apiserver /readyz", lambda: self._ready(apiserver), left(), 0.1)
        wait_for(
            "ConfigMap kube-system/extension-apiserver-authentication",
            lambda: self.get(
                "v1", "ConfigMap", "extension-apiserver-authentication", "kube-system"
            ),
            left(),
        )
        t = self._mark("kube-apiserver", t)

        kcm = self._spawn("kube-controller-manager", bin_dir, self._kcm_flags(kcm_kubeconfig))

        def hpa_account() -> dict[str, Any] | None:
            kcm.check()
            return self.get("v1", "ServiceAccount", "horizontal-pod-autoscaler", "kube-system")

        wait_for("ServiceAccount kube-system/horizontal-pod-autoscaler", hpa_account, left())
        self._mark("kube-controller-manager", t)
        if self.with_node:
            self.node = Node(self)  # set first: stop() must find a half-started node
            self.timings.update(self.node.start(left()).timings)

    def _spawn(self, name: str, bin_dir: Path, flags: list[str]) -> Process:
        process = Process(name, [str(bin_dir / name), *flags], self.state)
        self.processes.append(process.start(detach=self.detach))
        return process

    def _etcd_flags(self, port: int, peer: int) -> list[str]:
        client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        return [
            "--name=e2e",
            f"--data-dir={self.state / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=e2e={peer_url}",
            "--unsafe-no-fsync",  # throwaway data; fsync costs seconds on a shared disk
            "--log-level=warn",
        ]

    def _apiserver_flags(self, port: int, etcd_port: int) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state / 'kube-apiserver'}",
            # Endpoints validation rejects loopback addresses; nothing here needs them.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # Allocation only: nothing ever dials these addresses.
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=Node,RBAC" if self.with_node else "--authorization-mode=RBAC",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # Off without a node: ExternalName Services only resolve without it. With one,
            # the aggregator dials the pods' IPs (nothing routes ClusterIPs: no kube-proxy).
            f"--enable-aggregator-routing={str(self.with_node).lower()}",
            *(self._node_flags() if self.with_node else []),
        ]

    def _node_flags(self) -> list[str]:
        pki = self.pki
        return [
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            # The Node's name is not in any DNS: dialled by name, the kubelet would be looked
            # up in the machine's resolver, off this host.
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _kcm_flags(self, kubeconfig: Path) -> list[str]:
        controllers = CONTROLLERS + NODE_CONTROLLERS if self.with_node else CONTROLLERS
        return [
            f"--kubeconfig={kubeconfig}",
            # Per-controller ServiceAccounts through TokenRequest, so the HPA controller reads
            # metrics as system:serviceaccount:kube-system:horizontal-pod-autoscaler.
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            f"--controllers={','.join(controllers)}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_period:g}s",
            # No health endpoint is needed; 0 turns serving off (verified: no listening socket).
            "--secure-port=0",
        ]

    def _ready(self, apiserver: Process) -> bool:
        apiserver.check()
        return self.client.get("/readyz").status_code == 200

    # Faults.

    def component(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL one component (``etcd``, ``kube-apiserver``, ...), as a crash would."""
        self.component(name).kill()

    def revive(self, name: str, timeout: float = 120) -> float:
        """Start a killed component again, with its flags, ports and data; the seconds until
        it serves (etcd: /health; kube-apiserver: /readyz, so etcd must be up)."""
        began = time.monotonic()
        process = self.component(name).start(detach=self.detach)
        if name == "etcd":
            wait_for("etcd /health", lambda: _etcd_healthy(process, self._etcd_port), timeout)
        elif name == "kube-apiserver":
            self.close()  # its connections died with the old process
            wait_for("kube-apiserver /readyz", lambda: self._ready(process), timeout, 0.1)
        return time.monotonic() - began

    # Stopping.

    def close(self) -> None:
        """Close the admin client; the components keep running."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self) -> None:
        """Stop every component in reverse order; SIGTERM, then SIGKILL."""
        self.close()
        if self.node is not None:
            self.node.stop()
            self.node = None
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def logs(self, lines: int = 30) -> str:
        return logs(self.state, lines)

    # Clients.

    @property
    def client(self) -> httpx.Client:
        """An httpx client authenticated as admin (system:masters)."""
        if self._client is None:
            self._client = self.client_for(KeyPair.read(self.pki, "admin"))
        return self._client

    def client_for(self, pair: KeyPair) -> httpx.Client:
        """A client presenting ``pair``; issue one with ``self.ca.issue(user, organizations=…)``."""
        return httpx.Client(
            base_url=self.url, verify=client_context(self.ca.pem, pair), timeout=30.0
        )


def _etcd_healthy(etcd: Process, port: int) -> bool:
    etcd.check()
    response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    return response.status_code == 200 and response.json().get("health") == "true"


class AdminClients:
    """An admin client of ``cp`` for each thread that asks (httpx clients are not shared
    across threads here)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._local = threading.local()
        self._made: list[httpx.Client] = []
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = self.cp.client_for(KeyPair.read(self.cp.pki, "admin"))
            with self._lock:
                self._made.append(self._local.client)
        client: httpx.Client = self._local.client
        return client

    def close(self) -> None:
        """Close every thread's client (their threads are done with them)."""
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            client.close()


def create_in_parallel(
    cp: ControlPlane,
    count: int,
    documents: Callable[[int], Sequence[tuple[str, dict[str, Any]]]],
    threads: int = 4,
) -> None:
    """POST every ``(path, object)`` of ``documents(i)`` for ``i`` below ``count``, in order
    for each ``i`` and from ``threads`` threads; each must be answered 201."""
    clients = AdminClients(cp)

    def create(i: int) -> None:
        client = clients.get()
        for path, doc in documents(i):
            response = client.post(path, json=doc)
            assert response.status_code == 201, response.text[:300]

    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, range(count)))
    finally:
        clients.close()
