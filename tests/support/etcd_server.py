"""A real etcd on free loopback ports: plain, with authentication, or TLS with client certs.

The binary is the control plane's (``tests/support/controlplane/binaries.py``: built once,
cached); the control plane starts its own etcd inside :class:`ControlPlane`, bound to the
apiserver's flags, so this is the small standalone one. Clients use etcd's JSON gateway
(``/v3/...``, base64 keys and values), which etcd serves on its client URL by default.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.controlplane.binaries import BIN_DIR, ensure_binaries, missing_binaries
from tests.support.pki import KeyPair, Pki, client_context
from tests.support.process import ServerProcess, spawn
from tests.support.servers import free_ports, require_in_ci

NEEDS = f"etcd in {BIN_DIR} (hack/build-control-plane.sh)"
ROOT = ("root", "r00t-pa55")


def etcd_binary() -> Path | None:
    """The cached etcd; in CI it is built when missing (the e2e tests need it anyway)."""
    if os.environ.get("CI"):
        return ensure_binaries() / "etcd"
    require_in_ci(not missing_binaries(), NEEDS)
    return None if "etcd" in missing_binaries() else BIN_DIR / "etcd"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class EtcdServer(ServerProcess):
    log_files = ("etcd.log",)

    binary: Path
    auth: bool = False
    """A root user (:data:`ROOT`) and authentication enabled."""
    pki: Pki | None = None
    """TLS on the client URL, and clients must present a certificate the test CA signed."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="etcd-")))
    port: int = 0
    peer_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.pki else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EtcdServer:
        for _ in range(3):  # a free port may be taken before etcd binds it
            if not self.port or not self.peer_port:
                self.port, self.peer_port = free_ports(2)
            log = self.workdir / "etcd.log"
            self.process = spawn([str(self.binary), *self._flags()], log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._healthy():
                    if self.auth and not (self.workdir / "auth-enabled").exists():
                        self._enable_auth()
                        (self.workdir / "auth-enabled").touch()
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"etcd not ready in {timeout}s: {self.log()[-2000:]}")
            if "address already in use" not in self.log():
                break
            self.port = self.peer_port = 0
        raise RuntimeError(f"etcd exited: {self.log()[-2000:]}")

    def _flags(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        flags = [
            "--name=test",
            f"--data-dir={self.workdir / 'data'}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--unsafe-no-fsync",  # throwaway data
            "--log-level=warn",
        ]
        if self.pki:
            flags += [
                f"--cert-file={self.pki.server_cert}",
                f"--key-file={self.pki.server_key}",
                f"--trusted-ca-file={self.pki.ca}",
                "--client-cert-auth",
                # The JSON gateway dials etcd's own gRPC with a client certificate: this one
                # (the server certificate would be refused: it is not for client auth).
                f"--client-cert-file={self.pki.client_cert}",
                f"--client-key-file={self.pki.client_key}",
            ]
        return flags

    def client(self) -> httpx.Client:
        """An admin client of the JSON gateway (root's token when authentication is on)."""
        client = self.client_without_auth()
        if self.auth:
            client.headers["Authorization"] = self.token(*ROOT)
        return client

    def token(self, name: str, password: str) -> str:
        with self.client_without_auth() as client:
            answer = client.post("/v3/auth/authenticate", json={"name": name, "password": password})
            token: str = answer.raise_for_status().json()["token"]
            return token

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.client() as client:
            answer = client.post(path, json=body)
            result: dict[str, Any] = answer.raise_for_status().json()
            return result

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": b64(key)})

    def handled(self, method: str) -> int:
        """gRPC calls of ``method`` (``Range``, ``Authenticate``) etcd has answered, whatever
        their code (``grpc_server_handled_total``): the gateway's requests included."""
        with self.client_without_auth() as client:  # /metrics asks for no token
            text = client.get("/metrics").raise_for_status().text
        label = f'grpc_method="{method}"'
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("grpc_server_handled_total{") and label in line
        )

    def restart(self) -> EtcdServer:
        """Stop and start on the same ports and data: simple auth tokens do not survive it."""
        self.stop()
        return self.start()

    def _healthy(self) -> bool:
        try:
            with self.client_without_auth() as client:
                return bool(client.get("/health", timeout=2).json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def client_without_auth(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = _with_client_cert(self.pki) if self.pki else True
        return httpx.Client(base_url=self.endpoint, verify=verify, timeout=10)

    def _enable_auth(self) -> None:
        with self.client_without_auth() as client:
            for path, body in (
                ("/v3/auth/user/add", {"name": ROOT[0], "password": ROOT[1]}),
                ("/v3/auth/role/add", {"name": "root"}),
                ("/v3/auth/user/grant", {"user": ROOT[0], "role": "root"}),
                ("/v3/auth/enable", {}),
            ):
                client.post(path, json=body).raise_for_status()


def _with_client_cert(pki: Pki) -> ssl.SSLContext:
    pair = KeyPair(pki.client_cert.read_bytes(), pki.client_key.read_bytes())
    return client_context(pki.ca.read_bytes(), pair)
