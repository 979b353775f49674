"""A real HashiCorp Vault dev server on a free loopback port: in-memory, unsealed, a known root
token, KV v2 at ``secret/`` (the dev default), KV v1 at ``kv1/``, a PKI root at ``pki/`` with a
role, and a file audit device whose entries count the requests a test caused.

The binary is built from the Go module proxy by ``hack/build-vault.sh`` when missing (cached
under ``$METRICS_ADAPTER_CACHE``, like the control plane's): a cold build takes minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.process import ServerProcess, spawn

REPO = Path(__file__).resolve().parents[2]
VERSION = "1.21.4"
CACHE = Path(os.environ.get("METRICS_ADAPTER_CACHE") or Path.home() / ".cache" / "metrics-adapter")
BINARY = CACHE / f"vault-v{VERSION}" / "bin" / "vault"
BUILD_SCRIPT = REPO / "hack" / "build-vault.sh"
NEEDS = f"Vault v{VERSION} ({BUILD_SCRIPT.relative_to(REPO)}: Go >= 1.25 and the Go module proxy)"

ROOT_TOKEN = "root-token-for-tests"
PKI_DOMAIN = "vault-test.svc"
PKI_ROLE = "app"
READER_POLICY = """
path "kv1/*" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }
path "pki/issue/*" { capabilities = ["create", "update"] }
"""


def ensure_binary(timeout: float = 3600) -> Path:
    """The cached binary, built first when missing (progress on stderr). Outside CI a machine
    without Go skips the tests that need it; in CI a missing binary is built, never skipped."""
    if not os.access(BINARY, os.X_OK):
        if not os.environ.get("CI") and shutil.which("go") is None:
            pytest.skip(f"no {BINARY} and no Go to build it: needs {NEEDS}")
        subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if not os.access(BINARY, os.X_OK):
        raise RuntimeError(f"{BUILD_SCRIPT} did not produce {BINARY}")
    return BINARY


def _free_pair() -> int:
    """A port P with P+1 free too: a dev server listens on P and its cluster port on P+1."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free loopback ports")


@dataclass
class VaultServer(ServerProcess):
    log_files = ("vault.log",)

    binary: Path
    tls: bool = False
    """``-dev-tls``: HTTPS with a certificate of a CA Vault generates (:attr:`ca_file`)."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vault-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "vault-ca.pem"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def start(self, timeout: float = 60.0) -> VaultServer:
        for _ in range(3):  # a free port may be taken before Vault binds it
            self.port = _free_pair()
            argv = [str(self.binary), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}"]
            argv += [f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"]
            if self.tls:
                argv += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir}"]
            self.process = spawn(argv, self.workdir / "vault.log")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    self._configure()
                    return self
                time.sleep(0.1)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"vault not ready in {timeout}s: {self.log()[-2000:]}")
            if "address already in use" not in self.log():
                break
        raise RuntimeError(f"vault exited: {self.log()[-2000:]}")

    def _ready(self) -> bool:
        if self.tls and not self.ca_file.exists():
            return False
        try:
            answer = httpx.get(f"{self.address}/v1/sys/health", timeout=2, verify=self._verify())
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _configure(self) -> None:
        self.api(
            "PUT", "sys/audit/file", {"type": "file", "options": {"file_path": str(self.audit_log)}}
        )
        self.api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
        self.api("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
        self.api("POST", "pki/root/generate/internal", {"common_name": PKI_DOMAIN, "ttl": "8760h"})
        role = {"allowed_domains": PKI_DOMAIN, "allow_subdomains": True, "max_ttl": "72h"}
        self.api("POST", f"pki/roles/{PKI_ROLE}", role)
        self.api("PUT", "sys/policies/acl/reader", {"policy": READER_POLICY})

    def api(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, token: str = ROOT_TOKEN
    ) -> Any:
        """One call as root (by default); the JSON answer, or ``None`` for 204."""
        answer = httpx.request(
            method,
            f"{self.address}/v1/{path}",
            json=body,
            headers={"X-Vault-Token": token},
            timeout=10,
            verify=self._verify(),
        )
        if answer.status_code >= 400:
            raise RuntimeError(f"vault {method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else True

    def put_kv1(self, path: str, data: Mapping[str, Any]) -> None:
        self.api("POST", f"kv1/{path}", data)

    def put_kv2(self, path: str, data: Mapping[str, Any]) -> None:
        self.api("POST", f"secret/data/{path}", {"data": data})

    def token(self, policies: tuple[str, ...] = ("reader",), ttl: str = "1h", **extra: Any) -> str:
        """A new token with ``policies`` (not root)."""
        body = {"policies": list(policies), "ttl": ttl, "no_default_policy": False, **extra}
        answer = self.api("POST", "auth/token/create", body)
        return str(answer["auth"]["client_token"])

    def requests_to(self, path: str, operation: str | None = None) -> int:
        """Requests the server logged for ``path`` (the audit log's request entries)."""
        return len(self.requests(path, operation))

    def requests(self, path: str, operation: str | None = None) -> list[dict[str, Any]]:
        """The audit log's request entries for ``path`` (their ``request`` part)."""
        if not self.audit_log.exists():
            return []
        found = []
        for line in self.audit_log.read_text().splitlines():
            entry = json.loads(line)
            request = entry.get("request") or {}
            if entry.get("type") != "request" or request.get("path") != path:
                continue
            if operation is None or request.get("operation") == operation:
                found.append(request)
        return found
