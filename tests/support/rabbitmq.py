"""A real RabbitMQ node (Debian's 3.10, management plugin) on free loopback ports in a temp dir.

Started as root with ``/usr/lib/rabbitmq/bin/rabbitmq-server`` (the ``/usr/sbin`` wrapper
switches user), everything it writes under one temp dir, its Erlang distribution bound to
127.0.0.1. The node leaves an ``epmd`` behind on its own port: :meth:`stop` ends that too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiormq

from metrics_adapter.api.tls import CERT_NAME, self_signed_pair
from tests.support.servers import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
GUEST = "Basic " + base64.b64encode(b"guest:guest").decode()
T = TypeVar("T")


def available() -> bool:
    return SERVER.exists() and os.geteuid() == 0


NEEDS = f"rabbitmq-server at {SERVER} (Debian package), run as root"


class ManagementError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


@dataclass(frozen=True)
class OAuth2Settings:
    """The ``rabbitmq_auth_backend_oauth2`` plugin, enabled beside the internal users: a
    bearer token is checked against ``jwk`` (a symmetric key here) and ``resource_server_id``
    (its audience and the prefix of its scopes)."""

    resource_server_id: str
    key_id: str
    jwk: dict[str, str] = field(repr=False)

    def erlang(self) -> str:
        jwk = ", ".join(f"<<{_erl(k)}>> => <<{_erl(v)}>>" for k, v in self.jwk.items())
        key = f"<<{_erl(self.key_id)}>>"
        return (
            "{rabbitmq_auth_backend_oauth2, ["
            f"{{resource_server_id, <<{_erl(self.resource_server_id)}>>}}, "
            f"{{key_config, [{{default_key, {key}}}, "
            f"{{signing_keys, #{{{key} => {{map, #{{{jwk}}}}}}}}}]}}]}}"
        )


def _erl(text: str) -> str:
    """An Erlang binary literal's contents."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class RabbitMQServer:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rabbitmq-")))
    node: str = field(default_factory=lambda: f"rmqtest{uuid.uuid4().hex[:8]}@localhost")
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    amqps_port: int = field(default_factory=free_port)
    """AMQP over TLS, with a self-signed certificate for 127.0.0.1 (:attr:`ca_pem`)."""
    management_tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0
    stats_interval_ms: int = 250
    """How often queues report their counts to the management API (default 5000)."""
    oauth2: OAuth2Settings | None = None

    # Running.

    def env(self) -> dict[str, str]:
        d = self.workdir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(d),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _write_config(self) -> None:
        d = self.workdir
        (d / "rabbitmq-env.conf").write_text("")
        plugins = ["rabbitmq_management"]
        if self.oauth2 is not None:
            plugins.append("rabbitmq_auth_backend_oauth2")
        (d / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        # The management DB keeps 5 s samples by default, so counts move in 5 s steps; 1 s
        # samples let tests wait ~1 s. All three policies at once: a partial set fails boot.
        one_second = "[{605, 1}, {3660, 60}]"
        policies = ", ".join(f"{{{p}, {one_second}}}" for p in ("global", "basic", "detailed"))
        sections = [f"{{rabbitmq_management_agent, [{{sample_retention_policies, [{policies}]}}]}}"]
        if self.oauth2 is not None:
            sections.append(self.oauth2.erlang())
        (d / "advanced.config").write_text(f"[{', '.join(sections)}].\n")
        cert, key = self_signed_pair(d / "tls", ["127.0.0.1"])
        settings = {
            "listeners.tcp.default": f"127.0.0.1:{self.amqp_port}",
            "listeners.ssl.default": f"127.0.0.1:{self.amqps_port}",
            "ssl_options.verify": "verify_none",
            "ssl_options.fail_if_no_peer_cert": "false",
            "management.tcp.ip": "127.0.0.1",
            "management.tcp.port": self.management_port,
            "management.ssl.ip": "127.0.0.1",
            "management.ssl.port": self.management_tls_port,
            "collect_statistics_interval": self.stats_interval_ms,
            "management.http_log_dir": d / "http-log",
        }
        if self.oauth2 is not None:  # the guest login of api() keeps working
            settings["auth_backends.1"] = "rabbit_auth_backend_internal"
            settings["auth_backends.2"] = "rabbit_auth_backend_oauth2"
        for tls in ("ssl_options", "management.ssl"):
            settings |= {f"{tls}.cacertfile": cert, f"{tls}.certfile": cert, f"{tls}.keyfile": key}
        (d / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))

    @property
    def ca_pem(self) -> str:
        """The certificate of both TLS listeners, which is its own CA."""
        return (self.workdir / "tls" / CERT_NAME).read_text()

    def start(self, timeout: float = 90.0) -> RabbitMQServer:
        self._write_config()
        started = time.monotonic()
        with (self.workdir / "rabbit.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(SERVER)],
                env=self.env(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.log()[-3000:]}")
            if self._answers():
                self.startup_seconds = time.monotonic() - started
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rabbitmq did not become ready in {timeout}s: {self.log()[-3000:]}")

    def _answers(self) -> bool:
        try:
            self.api("GET", "/api/overview", timeout=1)
        except (OSError, ManagementError):
            return False
        return self._amqp_greets()

    def _amqp_greets(self) -> bool:
        """The management API answers before the node accepts AMQP clients: until it does,
        it closes connections after the protocol header instead of sending Connection.Start."""
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(1) == b"\x01"  # a method frame: Connection.Start
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, RuntimeError):
                self.resume()  # a paused node cannot stop
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:
            # Erlang helpers (erl_child_setup, inet_gethost) live in the node's own session.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        """The node started an ``epmd`` daemon on our port; it outlives the node."""
        pids = list(self._epmd_pids())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _epmd_pids(self) -> Iterator[int]:
        wanted = f"ERL_EPMD_PORT={self.epmd_port}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                exe = os.readlink(proc / "exe")
                if Path(exe).name != "epmd":
                    continue
                if wanted in (proc / "environ").read_bytes().split(b"\0"):
                    yield int(proc.name)
            except OSError:
                continue

    def beam_pid(self) -> int:
        """The Erlang VM: a child of the start script, in the session we started."""
        assert self.process is not None
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
            if comm.startswith("beam") and int(fields.split()[3]) == self.process.pid:
                return int(proc.name)
        raise RuntimeError("the RabbitMQ node's beam process was not found")

    def pause(self) -> None:
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.beam_pid(), signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        path = self.workdir / "rabbit.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # Addresses, as a trigger's ``host`` holds them.

    def http_host(self, user: str = "guest", password: str = "guest", vhost: str = "") -> str:
        path = f"/{quote(vhost, safe='')}" if vhost else ""
        return f"http://{user}:{password}@127.0.0.1:{self.management_port}{path}"

    def https_host(self) -> str:
        return f"https://guest:guest@127.0.0.1:{self.management_tls_port}"

    def amqps_host(self) -> str:
        return f"amqps://guest:guest@127.0.0.1:{self.amqps_port}/%2F"

    def amqp_host(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    # The management API, for creating state and reading what the server saw.

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}{path}",
            data=data,
            method=method,
            headers={"authorization": GUEST, "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ManagementError(exc.code, exc.read().decode(errors="replace")) from exc
        return json.loads(raw) if raw else None

    def add_vhost(self, vhost: str) -> None:
        v = quote(vhost, safe="")
        self.api("PUT", f"/api/vhosts/{v}", {})
        self.api(
            "PUT", f"/api/permissions/{v}/guest", {"configure": ".*", "write": ".*", "read": ".*"}
        )

    def add_user(self, user: str, password: str, vhost: str = "/") -> None:
        # "monitoring": the management API refuses users without a tag.
        body = {"password": password, "tags": "monitoring"}
        self.api("PUT", f"/api/users/{quote(user, safe='')}", body)
        self.api(
            "PUT",
            f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    def add_queue(self, name: str, vhost: str = "/") -> None:
        self.api("PUT", self._queue_path(name, vhost), {"durable": False, "auto_delete": False})

    def publish(self, name: str, count: int, vhost: str = "/") -> None:
        path = f"/api/exchanges/{quote(vhost, safe='')}/amq.default/publish"
        for i in range(count):
            body = {
                "properties": {},
                "routing_key": name,
                "payload": f"m{i}",
                "payload_encoding": "string",
            }
            assert self.api("POST", path, body)["routed"] is True

    def queue(self, name: str, vhost: str = "/") -> dict[str, Any]:
        found: dict[str, Any] = self.api("GET", self._queue_path(name, vhost))
        return found

    def _queue_path(self, name: str, vhost: str) -> str:
        return f"/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}"

    def wait_for_queue(
        self,
        name: str,
        ready: Callable[[dict[str, Any]], bool],
        vhost: str = "/",
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Poll the queue's statistics until ``ready`` holds: they lag the broker by seconds."""
        return wait_until(lambda: self.queue(name, vhost), ready, timeout, f"queue {name}")

    def connections(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("GET", "/api/connections")
        return found

    def close_connections(self) -> int:
        """Close every AMQP connection from the server side, as a broker restart would."""
        names = [c["name"] for c in self.connections()]
        for name in names:
            with contextlib.suppress(ManagementError):
                self.api("DELETE", f"/api/connections/{quote(name, safe='')}")
        return len(names)

    def http_requests(self, path: str) -> int:
        """How many ``GET <path>`` the management API logged: counted by the server."""
        wanted = f'"GET {path} HTTP/'
        total = 0
        for log in (self.workdir / "http-log").glob("access.log*"):
            total += log.read_text(errors="replace").count(wanted)
        return total

    def version(self) -> str:
        return str(self.api("GET", "/api/overview")["rabbitmq_version"])


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(read: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except ManagementError:
            if time.monotonic() > deadline:
                raise
        else:
            if ready(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not reach the expected state: {value}")
        time.sleep(0.2)


@asynccontextmanager
async def unacked(
    server: RabbitMQServer, queue: str, count: int, vhost: str = "/"
) -> AsyncIterator[None]:
    """Hold ``count`` messages of ``queue`` delivered and not acknowledged, as a busy worker."""
    connection = await aiormq.connect(server.amqp_host(vhost=vhost))
    try:
        channel = await connection.channel()
        for _ in range(count):
            await channel.basic_get(queue, no_ack=False)
        yield
    finally:
        await connection.close()
