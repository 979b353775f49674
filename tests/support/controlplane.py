"""A real Kubernetes control plane on loopback, for the e2e tests and ``make cluster-up``.

etcd, kube-apiserver and kube-controller-manager (built by ``hack/build-control-plane.sh``)
run on free 127.0.0.1 ports with generated certificates: RBAC on, the front-proxy flags the
aggregator needs, and the deployment, replicaset, serviceaccount and HPA controllers with a
1 s HPA sync (shared/reference/control-plane.md §3). Nothing dials beyond loopback: the
Service range only hands out addresses, the Endpoints reconciler is off, and the adapter is
reached through a Service of type ExternalName ``localhost`` (§4).

    python -m tests.support.controlplane up [--state DIR]    # ends with KUBECONFIG=, ADAPTER_URL=
    python -m tests.support.controlplane down [--state DIR]

Deliberately left at their defaults: the ``HPAScaleToZero`` gate stays off, as on the
clusters users run (KEDA takes the 0 <-> 1 step itself, the HPA never sees 0), and every
default admission plugin stays on, ServiceAccount included, since the serviceaccount
controller creates the ``default`` ServiceAccount that pods need.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.34.4"
CACHE = Path(os.environ.get("METRICS_ADAPTER_CACHE") or Path.home() / ".cache" / "metrics-adapter")
BIN_DIR = CACHE / f"k8s-v{K8S_VERSION}" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
BUILD_SCRIPT = REPO / "hack" / "build-control-plane.sh"
DEFAULT_STATE = CACHE / "cluster"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "serviceaccount-controller",
)
ADAPTER_NAMESPACE, ADAPTER_SERVICE = "keda", "metrics-adapter"
APISERVICE = "v1beta1.external.metrics.k8s.io"
FIELD_MANAGER = "metrics-adapter-harness"


class ControlPlaneError(RuntimeError):
    """A component would not start, or the cluster refused a request."""


class KubeError(ControlPlaneError):
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        try:
            self.status: dict[str, Any] = response.json()
        except ValueError:
            self.status = {"message": response.text}
        self.reason = str(self.status.get("reason", ""))
        self.message = str(self.status.get("message", response.text))
        request = response.request
        super().__init__(f"{request.method} {request.url.path}: {self.status_code} {self.message}")


# Binaries.


def missing_binaries(bin_dir: Path = BIN_DIR) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def ensure_binaries(timeout: float = 3600) -> Path:
    """The cached binaries, built first when one is missing (minutes cold, progress on stderr)."""
    if missing_binaries():
        subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if missing := missing_binaries():
        raise ControlPlaneError(f"{BUILD_SCRIPT} did not produce {missing} in {BIN_DIR}")
    return BIN_DIR


# Certificates.


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A throwaway CA (P-256, valid a week) that issues server and client certificates."""

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.cert = (
            self._builder(self.name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(self, subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=7))
        )

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        hosts: Sequence[str] = (),
        usage: Literal["server", "client"] = "client",
    ) -> KeyPair:
        """A certificate for ``hosts`` (DNS names or IPs) or a client identity (CN, O)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        eku = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if usage == "server"
            else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            self._builder(x509.Name(attributes), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def serving_pair(service: str, namespace: str, ca: CertificateAuthority) -> KeyPair:
    """A serving certificate the aggregator accepts for Service ``namespace/service``.

    The aggregator checks exactly ``<service>.<namespace>.svc`` against the APIService's
    caBundle (control-plane.md §4); localhost and 127.0.0.1 are there for direct callers.
    """
    hosts = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
    return ca.issue(service, hosts=[*hosts, "localhost", "127.0.0.1"], usage="server")


def client_context(ca_pem: bytes, pair: KeyPair | None = None) -> ssl.SSLContext:
    """TLS that trusts ``ca_pem`` and presents ``pair`` as the client certificate."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if pair is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = pair.write(Path(tmp), "client")
            context.load_cert_chain(cert, key)
    return context


# Processes.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# util-linux's setpriv sets the parent-death signal and then execs the command, so nothing but
# exec runs between fork and exec (preexec_fn is unsafe with threads).
_SETPRIV = shutil.which("setpriv")


@dataclass
class Process:
    """One component: its log file and a pid file, so ``down`` can stop what ``up`` started."""

    name: str
    argv: list[str]
    state: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.state / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "pids" / f"{self.name}.pid"

    def start(self, *, detach: bool = False) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if not detach and _SETPRIV:
            # An attached process gets SIGTERM when the test process dies, even when it is
            # killed before its fixtures could stop anything.
            argv = [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]
        with self.log.open("ab") as out:
            # A detached process survives the terminal of `up`.
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        self.pid_file.write_text(f"{self.popen.pid}\n{self.argv[0]}\n")
        return self

    def check(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def stop(self, timeout: float = 15) -> None:
        if self.popen is not None:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout)
            self.popen = None
        else:
            stop_pid_file(self.pid_file, timeout)
        self.pid_file.unlink(missing_ok=True)


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` of a log file, for error messages."""
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def logs(state: Path, lines: int = 30) -> str:
    """The end of every component's log under ``state``, for failure messages."""
    files = sorted((state / "logs").glob("*.log"))
    return "\n".join(f"--- {log.stem}\n{tail(log, lines)}" for log in files)


def _pid_from(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and still runs the same executable."""
    try:
        pid_text, executable = pid_file.read_text().split("\n")[:2]
        pid = int(pid_text)
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError):
        return None
    return pid if argv0 == executable and state != "Z" else None


def stop_pid_file(pid_file: Path, timeout: float = 15) -> bool:
    """SIGTERM the process of ``pid_file``, then SIGKILL; False if it was not running."""
    pid = _pid_from(pid_file)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _pid_from(pid_file) is None:
                return True
            time.sleep(0.05)
    return True


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None (or False); bounded."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = probe()
        except (httpx.HTTPError, ControlPlaneError, OSError) as exc:
            last, result = exc, None
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            detail = f": {last}" if last else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind`` of ``obj``."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file, or of each ``*.yaml`` under a directory, in name order."""
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


# The control plane.


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in ``state`` (a temp dir by default)."""

    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="controlplane-")))
    detach: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    url: str = ""
    ca: CertificateAuthority = field(default_factory=lambda: CertificateAuthority("kubernetes"))
    _client: httpx.Client | None = None
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

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
        admin = self._write_pki()
        etcd_port, peer_port, api_port = (free_port() for _ in range(3))
        self.url = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfig(self.kubeconfig, admin)
        kcm_kubeconfig = self.state / "kube-controller-manager.kubeconfig"
        self._write_kubeconfig(kcm_kubeconfig, self.ca.issue("system:kube-controller-manager"))
        t = self._mark("pki", t)

        etcd = self._spawn("etcd", bin_dir, self._etcd_flags(etcd_port, peer_port))
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

    def _spawn(self, name: str, bin_dir: Path, flags: list[str]) -> Process:
        process = Process(name, [str(bin_dir / name), *flags], self.state)
        self.processes.append(process.start(detach=self.detach))
        return process

    def _write_pki(self) -> KeyPair:
        front_proxy_ca = CertificateAuthority("front-proxy-ca")  # never the cluster CA (§3)
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        (pki / "ca.crt").write_bytes(self.ca.pem)
        (pki / "front-proxy-ca.crt").write_bytes(front_proxy_ca.pem)
        hosts = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default"]
        hosts += ["kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        self.ca.issue("kube-apiserver", hosts=hosts, usage="server").write(pki, "apiserver")
        front_proxy_ca.issue("front-proxy-client").write(pki, "front-proxy-client")
        sa = ec.generate_private_key(ec.SECP256R1())
        (pki / "sa.key").write_bytes(_key_pem(sa))
        (pki / "sa.pub").write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        admin = self.ca.issue("admin", organizations=["system:masters"])
        admin.write(pki, "admin")
        return admin

    def _write_kubeconfig(self, path: Path, user: KeyPair) -> None:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "metrics-adapter",
                    "cluster": {"server": self.url, "certificate-authority-data": b64(self.ca.pem)},
                }
            ],
            "users": [
                {
                    "name": "user",
                    "user": {
                        "client-certificate-data": b64(user.cert_pem),
                        "client-key-data": b64(user.key_pem),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "metrics-adapter",
                    "context": {"cluster": "metrics-adapter", "user": "user"},
                }
            ],
            "current-context": "metrics-adapter",
        }
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

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
            "--authorization-mode=RBAC",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # --enable-aggregator-routing stays off: ExternalName Services only resolve without it.
        ]

    def _kcm_flags(self, kubeconfig: Path) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            # Per-controller ServiceAccounts through TokenRequest, so the HPA controller reads
            # metrics as system:serviceaccount:kube-system:horizontal-pod-autoscaler.
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}",
            "--horizontal-pod-autoscaler-sync-period=1s",
            # No health endpoint is needed; 0 turns serving off (verified: no listening socket).
            "--secure-port=0",
        ]

    def _ready(self, apiserver: Process) -> bool:
        apiserver.check()
        return self.client.get("/readyz").status_code == 200

    # Stopping.

    def close(self) -> None:
        """Close the admin client; the components keep running."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self) -> None:
        """Stop every component in reverse order; SIGTERM, then SIGKILL."""
        self.close()
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def logs(self, lines: int = 30) -> str:
        return logs(self.state, lines)

    # The API.

    @property
    def client(self) -> httpx.Client:
        """An httpx client authenticated as admin (system:masters)."""
        if self._client is None:
            admin = KeyPair(
                (self.pki / "admin.crt").read_bytes(), (self.pki / "admin.key").read_bytes()
            )
            self._client = self.client_for(admin)
        return self._client

    def client_for(self, pair: KeyPair) -> httpx.Client:
        """A client presenting ``pair``; issue one with ``self.ca.issue(user, organizations=…)``."""
        return httpx.Client(
            base_url=self.url, verify=client_context(self.ca.pem, pair), timeout=30.0
        )

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of ``kind``, from discovery; waits briefly for new CRDs."""
        key = (api_version, kind)
        if key not in self._resources:
            prefix = "/api" if "/" not in api_version else "/apis"

            def discover() -> bool:
                response = self.client.get(f"{prefix}/{api_version}")
                if response.status_code == 404:
                    return False
                _raise_for(response)
                for r in response.json()["resources"]:
                    if "/" not in r["name"]:
                        self._resources[(api_version, r["kind"])] = (r["name"], r["namespaced"])
                return key in self._resources

            wait_for(f"discovery of {kind} in {api_version}", discover, 15)
        return self._resources[key]

    def path(
        self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None
    ) -> str:
        plural, namespaced = self.resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    def _object_path(self, obj: Mapping[str, Any], *, named: bool = True) -> str:
        meta = obj.get("metadata") or {}
        name = meta.get("name") if named else None
        return self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), name)

    def apply(
        self,
        obj: Mapping[str, Any] | str,
        *,
        dry_run: bool = False,
        field_validation: str = "Strict",
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply of ``obj`` (a dict or one YAML document), forcing conflicts;
        returns the object as stored (as it would be, with ``dry_run``)."""
        if isinstance(obj, str):
            obj = yaml.safe_load(obj)
            assert isinstance(obj, Mapping), "apply takes one YAML mapping"
        params = {
            "fieldManager": field_manager,
            "force": "true",
            "fieldValidation": field_validation,
        }
        if dry_run:
            params["dryRun"] = "All"
        response = self.client.patch(
            self._object_path(obj),
            params=params,
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        _raise_for(response)
        return dict(response.json())

    def create(
        self, obj: Mapping[str, Any], *, field_validation: str | None = None
    ) -> httpx.Response:
        """POST ``obj`` and return the raw response (status, body and Warning headers)."""
        params = {"fieldValidation": field_validation} if field_validation else {}
        return self.client.post(self._object_path(obj, named=False), params=params, json=obj)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        response = self.client.get(self.path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return None
        _raise_for(response)
        return dict(response.json())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        response = self.client.delete(self.path(api_version, kind, namespace, name))
        if response.status_code != 404:
            _raise_for(response)

    def ensure_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def wait_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        condition_type: str,
        *,
        namespace: str | None = None,
        status: str = "True",
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Wait until condition ``condition_type`` of the object has ``status``; return it."""

        def probe() -> dict[str, Any] | None:
            obj = self.get(api_version, kind, name, namespace)
            c = condition(obj, condition_type)
            return obj if c is not None and c.get("status") == status else None

        try:
            return wait_for(f"{kind} {name} {condition_type}={status}", probe, timeout)
        except TimeoutError as exc:
            last = condition(self.get(api_version, kind, name, namespace), condition_type)
            raise TimeoutError(f"{exc}; last {condition_type}: {last}") from None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise KubeError(response)


def _etcd_healthy(etcd: Process, port: int) -> bool:
    etcd.check()
    response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    return response.status_code == 200 and response.json().get("health") == "true"


# The adapter, registered as the external metrics API.


@dataclass
class Adapter:
    """``metrics-adapter serve`` standalone on a fixed free port, restartable in place."""

    objects: Path
    state: Path
    pair: KeyPair
    ca_pem: bytes
    port: int = field(default_factory=free_port)
    detach: bool = False
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Adapter:
        cert, key = self.pair.write(self.state / "pki", ADAPTER_SERVICE)
        self.objects.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "metrics_adapter", "serve", f"--scaledobjects={self.objects}"]
        argv += [f"--secure-port={self.port}", f"--tls-cert-file={cert}"]
        argv += [f"--tls-private-key-file={key}", "--metrics-port=0"]
        self.process = Process(ADAPTER_SERVICE, argv, self.state).start(detach=self.detach)
        context = client_context(self.ca_pem)

        def ready() -> bool:
            assert self.process is not None
            self.process.check()
            with httpx.Client(verify=context, timeout=2) as client:
                return client.get(f"{self.url}/readyz").status_code == 200

        try:
            wait_for(f"the adapter on {self.url}", ready, timeout, 0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def tail(self, lines: int = 30) -> str:
        return tail(self.state / "logs" / f"{ADAPTER_SERVICE}.log", lines)

    def restart(self) -> Adapter:
        """Stop and start again on the same port, re-reading ``objects``."""
        self.stop()
        return self.start()


def register_adapter(cp: ControlPlane, adapter: Adapter, timeout: float = 90) -> dict[str, Any]:
    """Install deploy/ (RBAC, CRDs, APIService with the real caBundle) and route the APIService
    to ``adapter`` through ExternalName ``localhost``; return the APIService once Available."""
    for doc in load_manifests(DEPLOY / "rbac.yaml"):
        cp.apply(doc)
    for crd in load_manifests(DEPLOY / "crds"):
        cp.apply(crd)
    for crd in load_manifests(DEPLOY / "crds"):
        name = crd["metadata"]["name"]
        cp.wait_condition(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", name, "Established"
        )
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": ADAPTER_SERVICE, "namespace": ADAPTER_NAMESPACE},
            # The aggregator dials https://<externalName>:<APIService port> (§4).
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
    )
    [apiservice] = load_manifests(DEPLOY / "apiservice.yaml")
    apiservice["spec"]["caBundle"] = base64.b64encode(adapter.ca_pem).decode()
    apiservice["spec"]["service"]["port"] = adapter.port
    cp.apply(apiservice)
    return cp.wait_condition(
        "apiregistration.k8s.io/v1", "APIService", APISERVICE, "Available", timeout=timeout
    )


# The command line: `make cluster-up` / `make cluster-down`.


ORDER = ("metrics-adapter", "kube-controller-manager", "kube-apiserver", "etcd")
# What `up` writes into the state directory; `down` removes exactly these, and keeps objects/
# (the user's ScaledObjects) and logs/ for a look after the fact.
GENERATED = (
    "pki",
    "pids",
    "etcd",
    "kube-apiserver",
    "admin.kubeconfig",
    "kube-controller-manager.kubeconfig",
    "adapter.url",
)


def _running(state: Path) -> bool:
    return all(_pid_from(state / "pids" / f"{name}.pid") is not None for name in ORDER)


def _start_detached(state: Path) -> str:
    cp = ControlPlane(state, detach=True)
    cp.start()
    began = time.monotonic()
    try:
        pair = serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca)
        adapter = Adapter(state / "objects", state, pair, cp.ca.pem, detach=True).start()
        register_adapter(cp, adapter)
    finally:
        cp.close()
    phases = ", ".join(f"{k} {v}s" for k, v in cp.timings.items())
    print(
        f"control plane up in {cp.timings['total']}s ({phases}), adapter registered in "
        f"{time.monotonic() - began:.2f}s; logs in {state / 'logs'}",
        file=sys.stderr,
    )
    return adapter.url


def up(state: Path) -> int:
    if _running(state) and (state / "adapter.url").exists():
        print(f"already up; state in {state}", file=sys.stderr)
    else:
        down(state, quiet=True)
        try:
            url = _start_detached(state)
        except BaseException as exc:
            print(f"cluster-up failed: {exc}\n{logs(state)}", file=sys.stderr)
            down(state, quiet=True)
            if not isinstance(exc, Exception):
                raise
            return 1
        (state / "adapter.url").write_text(url + "\n")
    print(f"KUBECONFIG={state / 'admin.kubeconfig'}")
    print(f"ADAPTER_URL={(state / 'adapter.url').read_text().strip()}")
    return 0


def down(state: Path, *, quiet: bool = False) -> int:
    stopped = [name for name in ORDER if stop_pid_file(state / "pids" / f"{name}.pid")]
    for name in GENERATED:
        path = state / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not quiet:
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.controlplane")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"default {DEFAULT_STATE}"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    state = args.state.expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    return up(state) if args.command == "up" else down(state)


if __name__ == "__main__":
    sys.exit(main())
