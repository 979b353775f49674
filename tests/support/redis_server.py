"""A real redis-server on a free loopback port in a temp dir: plain, with a password, or TLS."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.pki import Pki
from tests.support.process import ServerProcess
from tests.support.servers import free_port

DEBIAN_BINARY = Path("/usr/bin/redis-server")


def binary() -> Path | None:
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    found = shutil.which("redis-server")
    return Path(found) if found else None


NEEDS = "redis-server (Debian package redis-server)"


@dataclass
class RedisServer(ServerProcess):
    log_files = ("redis.log",)

    binary: Path
    password: str | None = None
    users: tuple[str, ...] = ()
    """ACL rules, one user each: ``alice on >secret ~* +@all``."""
    pki: Pki | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        for _ in range(3):  # a free port may be taken before redis binds it
            self.port = self.port or free_port()
            self.process = subprocess.Popen(
                self._command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.workdir,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ping():
                    return self
                time.sleep(0.02)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"redis-server not ready in {timeout}s: {self.log()[-2000:]}")
            if "Address already in use" not in self.log():
                break
            self.port = 0
        raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")

    def _command(self) -> list[str]:
        args = [str(self.binary), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.workdir / "redis.log")]
        if self.pki is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", str(self.pki.server_cert)]
            args += ["--tls-key-file", str(self.pki.server_key)]
            args += ["--tls-ca-cert-file", str(self.pki.ca), "--tls-auth-clients", "yes"]
        if self.password:
            args += ["--requirepass", self.password]
        for rule in self.users:
            args += ["--user", *rule.split()]
        return args

    def client(self, **overrides: Any) -> redis.Redis:
        """A synchronous admin client (the default user) for setting up keys and reading INFO."""
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "socket_timeout": 5}
        options["password"] = self.password
        if self.pki is not None:
            options |= {
                "ssl": True,
                "ssl_ca_certs": str(self.pki.ca),
                "ssl_certfile": str(self.pki.client_cert),
                "ssl_keyfile": str(self.pki.client_key),
            }
        return redis.Redis(**(options | overrides))

    def _ping(self) -> bool:
        try:
            with self.client(socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def command_calls(self, command: str) -> int:
        """How many ``command`` requests the server got (``INFO commandstats``): the ones it ran,
        failed ones included, plus the ones it rejected before running them."""
        with self.client() as client:
            stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        return int(stats.get("calls", 0)) + int(stats.get("rejected_calls", 0))

    def connections_named(self, name: str) -> int:
        """Open connections that called themselves ``name`` (``CLIENT LIST``)."""
        with self.client() as client:
            return sum(1 for c in client.client_list() if c.get("name") == name)

    def connections_received(self) -> int:
        with self.client() as client:
            return int(client.info("stats")["total_connections_received"])

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (the data is gone: nothing is saved)."""
        self.stop()
        return self.start()
