"""Real Redis topologies on loopback, from Debian's redis-server: a cluster of three masters,
and a master with a replica watched by a sentinel (which can fail it over).

Each server is a :class:`~tests.support.redis_server.RedisServer` with a few more arguments;
a topology starts them in order, waits for the state the tests need (``cluster_state:ok``, the
sentinel seeing the master and its replica) and stops them all for sure.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from scalers.base import Scaler, ScalerKind
from scalers.clients import Clients
from tests.support.pki import Pki
from tests.support.redis_server import RedisServer
from tests.support.servers import free_port
from tests.support.triggers import trigger

T = TypeVar("T")
MASTER_NAME = "mymaster"
SETTLE_SECONDS = 60.0
"""How long a topology may take to form or fail over: Redis itself needs a few seconds
(sentinel ``down-after-milliseconds`` 1000, the cluster's gossip); a loaded 2-core machine
gets the rest."""


def redis_cli() -> Path | None:
    found = shutil.which("redis-cli")
    return Path(found) if found else None


def wait_for(what: str, ready: Callable[[], bool], seconds: float = SETTLE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not _holds(ready):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g}s: {what}")
        time.sleep(0.1)


def _holds(ready: Callable[[], bool]) -> bool:
    try:
        return ready()
    except redis.RedisError:
        return False


@dataclass
class Node(RedisServer):
    """A redis-server with more arguments (cluster mode, replication)."""

    extra: tuple[str, ...] = ()

    def _command(self) -> list[str]:
        return [*super()._command(), *self.extra, *tls_peer_args(self.pki)]


def tls_peer_args(pki: Pki | None) -> list[str]:
    """With TLS: the cluster bus and replication over TLS too, each server presenting the
    client certificate when it connects to another (the servers require one)."""
    if pki is None:
        return []
    return [
        "--tls-cluster",
        "yes",
        "--tls-replication",
        "yes",
        "--tls-client-cert-file",
        str(pki.client_cert),
        "--tls-client-key-file",
        str(pki.client_key),
    ]


@dataclass
class SentinelServer(RedisServer):
    """``redis-server <conf> --sentinel`` monitoring one master; :attr:`password` is the
    sentinel's own (``requirepass``)."""

    master_port: int = 0
    master_password: str | None = None

    def _command(self) -> list[str]:
        conf = self.workdir / "sentinel.conf"
        listen = [f"port {self.port}"]
        if self.pki is not None:
            listen = ["port 0", f"tls-port {self.port}"]
            listen += [
                f"tls-cert-file {self.pki.server_cert}",
                f"tls-key-file {self.pki.server_key}",
            ]
            listen += [f"tls-ca-cert-file {self.pki.ca}", "tls-auth-clients yes"]
            args = tls_peer_args(self.pki)
            listen += [
                f"{k.removeprefix('--')} {v}" for k, v in zip(args[::2], args[1::2], strict=True)
            ]
        lines = [
            *listen,
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"logfile {self.workdir / 'redis.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.master_password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        return [str(self.binary), str(conf), "--sentinel"]

    def master_address(self) -> tuple[str, int] | None:
        """The master as clients see it (``SENTINEL MASTER``): ``None`` while it is down."""
        with self.client() as client:
            state = client.sentinel_master(MASTER_NAME)
        if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            return None
        return state["ip"], int(state["port"])

    def knows_replicas(self) -> int:
        with self.client() as client:
            return len(client.sentinel_slaves(MASTER_NAME))


@dataclass
class ClusterTopology:
    """Three masters, no replicas, every slot covered; :attr:`password` on every node."""

    binary: Path
    password: str | None = None
    pki: Pki | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def start(self) -> ClusterTopology:
        cli = redis_cli()
        if cli is None:
            raise RuntimeError("redis-cli is missing (Debian package redis-tools)")
        auth = ("--masterauth", self.password) if self.password else ()
        try:
            for _ in range(3):
                port = _port_with_bus()
                extra = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000", *auth)
                node = Node(
                    self.binary, password=self.password, pki=self.pki, port=port, extra=extra
                )
                node.start()
                self.nodes.append(node)
            create = [str(cli), "--cluster", "create", *(n.address for n in self.nodes)]
            create += ["--cluster-yes", *(("-a", self.password) if self.password else ())]
            if self.pki is not None:
                create += ["--tls", "--cacert", str(self.pki.ca)]
                create += ["--cert", str(self.pki.client_cert), "--key", str(self.pki.client_key)]
            subprocess.run(create, check=True, capture_output=True, timeout=SETTLE_SECONDS)
            wait_for("cluster_state:ok on every node", self._ok)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _ok(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict
                if info.get("cluster_state") != "ok":
                    return False
        return True

    def client(self) -> redis.RedisCluster:
        """A synchronous admin client, to set keys up wherever their slot lives."""
        first = self.nodes[0]
        tls: dict[str, Any] = {}
        if self.pki is not None:
            tls = {
                "ssl": True,
                "ssl_ca_certs": str(self.pki.ca),
                "ssl_certfile": str(self.pki.client_cert),
                "ssl_keyfile": str(self.pki.client_key),
            }
        return redis.RedisCluster(
            host="127.0.0.1", port=first.port, password=self.password, socket_timeout=5, **tls
        )

    def node_of(self, key: str) -> Node:
        """The master that holds ``key``'s slot."""
        with self.client() as client:
            node = client.get_node_from_key(key)
        return next(n for n in self.nodes if n.port == node.port)

    def command_calls(self, command: str) -> int:
        """``command`` requests that every node got, summed (``INFO commandstats``)."""
        return sum(n.command_calls(command) for n in self.nodes if n.process is not None)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def _port_with_bus() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(50):
        port = free_port()
        if port + 10000 < 65536 and _free(port + 10000):
            return port
    raise RuntimeError("no free port with a free cluster bus port")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class SentinelTopology:
    """A master, its replica and one sentinel with quorum 1 (enough to fail over)."""

    binary: Path
    password: str | None = None
    sentinel_password: str | None = None
    pki: Pki | None = None
    master: Node | None = None
    replica: Node | None = None
    sentinel: SentinelServer | None = None

    def start(self) -> SentinelTopology:
        auth = ("--masterauth", self.password) if self.password else ()
        try:
            self.master = master = Node(self.binary, self.password, pki=self.pki, extra=auth)
            master.start()
            follow = ("--replicaof", "127.0.0.1", str(master.port), *auth)
            self.replica = Node(self.binary, self.password, pki=self.pki, extra=follow)
            self.replica.start()
            wait_for("the replica in sync", self._replica_synced)
            self.sentinel = SentinelServer(
                self.binary,
                password=self.sentinel_password,
                pki=self.pki,
                master_port=master.port,
                master_password=self.password,
            )
            self.sentinel.start()
            wait_for("the sentinel to see the replica", lambda: self._sentinel.knows_replicas() > 0)
        except BaseException:
            self.cleanup()
            raise
        return self

    @property
    def _sentinel(self) -> SentinelServer:
        assert self.sentinel is not None
        return self.sentinel

    def _replica_synced(self) -> bool:
        assert self.replica is not None
        with self.replica.client() as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    def servers(self) -> Iterator[Node]:
        yield from (s for s in (self.master, self.replica) if s is not None)

    def current_master(self) -> Node | None:
        """The server the sentinel names as a working master now, if any."""
        address = self._sentinel.master_address()
        return next((s for s in self.servers() if address and s.port == address[1]), None)

    def working_master(self) -> Node:
        found = self.current_master()
        assert found is not None, "the sentinel names no working master"
        return found

    def cleanup(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            if server is not None:
                server.cleanup()


def scaler_of(
    kind: ScalerKind[Any], metadata: Mapping[str, str], auth: Mapping[str, str] | None = None
) -> Scaler[Any]:
    """A trigger of ``kind`` as its metadata builds it; a ConfigError names every problem."""
    return trigger(kind.type_name, metadata, auth)


def counting_poller(clients: Clients) -> Poller:
    return Poller(MetricStore(), clients, Telemetry(), timeout=clients.timeout)
