"""A real Prometheus on a free loopback port, scraping a /metrics target the tests control."""

from __future__ import annotations

import base64
import json
import math
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.pki import Pki
from tests.support.process import ServerProcess
from tests.support.servers import free_port

DEBIAN_BINARY = Path("/usr/bin/prometheus")
USERNAME, PASSWORD = "scaler", "scaler-pw"
PASSWORD_BCRYPT = "$2b$04$uyQUFA0AFDco0Iw1lPhCeuqFvoqJYR7V8GllcaCDx1RkRH2FScznG"
"""bcrypt of :data:`PASSWORD` (cost 4), as Prometheus' ``basic_auth_users`` wants it."""


def binary() -> Path | None:
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    found = shutil.which("prometheus")
    return Path(found) if found else None


NEEDS = "prometheus (Debian package prometheus)"


class Exposition:
    """A scrape target on loopback: ``/metrics`` serves whatever samples the test sets."""

    def __init__(self) -> None:
        self._samples: dict[str, float] = {}
        self._lock = threading.Lock()
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def set(self, series: str, value: float) -> None:
        """``set('queue_depth{queue="jobs"}', 42)``"""
        with self._lock:
            self._samples[series] = value

    def remove(self, series: str) -> None:
        with self._lock:
            self._samples.pop(series, None)

    def text(self) -> str:
        with self._lock:
            return "".join(f"{s} {_go_float(v)}\n" for s, v in self._samples.items())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _go_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


@dataclass
class PrometheusServer(ServerProcess):
    log_files = ("prometheus.log",)
    stop_timeout = 15

    binary: Path
    target: str | None = None
    """host:port of a scrape target, scraped every second as job ``app``."""
    pki: Pki | None = None
    """Serve HTTPS with this PKI, require a client certificate and basic auth."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="prometheus-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        self._write_config()
        for _ in range(3):  # a free port may be taken before prometheus binds it
            self.port = self.port or free_port()
            command = [
                str(self.binary),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ]
            if self.pki is not None:
                command.append(f"--web.config.file={self.workdir / 'web.yml'}")
            with open(self.workdir / "prometheus.log", "wb") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"prometheus not ready in {timeout}s: {self.log()[-2000:]}")
            if "address already in use" not in self.log():
                break
            self.port = 0
        raise RuntimeError(f"prometheus exited: {self.log()[-2000:]}")

    def _write_config(self) -> None:
        scrape = ""
        if self.target:
            scrape = (
                "scrape_configs:\n"
                "  - job_name: app\n"
                f"    static_configs: [{{targets: ['{self.target}']}}]\n"
            )
        config = f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{scrape}"
        (self.workdir / "prometheus.yml").write_text(config)
        if self.pki is not None:
            (self.workdir / "web.yml").write_text(
                "tls_server_config:\n"
                f"  cert_file: {self.pki.server_cert}\n"
                f"  key_file: {self.pki.server_key}\n"
                "  client_auth_type: RequireAndVerifyClientCert\n"
                f"  client_ca_file: {self.pki.ca}\n"
                "basic_auth_users:\n"
                f"  {USERNAME}: {PASSWORD_BCRYPT}\n"
            )

    def _ready(self) -> bool:
        try:
            return b"Ready" in self.get("/-/ready", timeout=1)
        except OSError:
            return False

    def get(self, path: str, timeout: float = 5) -> bytes:
        """GET as an authorised client (client certificate and basic auth when secured)."""
        request = urllib.request.Request(self.url + path)
        context = None
        if self.pki is not None:
            context = ssl.create_default_context(cafile=str(self.pki.ca))
            context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
            token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return bytes(response.read())

    def query(self, promql: str) -> Any:
        """An instant query at the current whole second: what the scaler sees (KEDA's time)."""
        params = {"query": promql, "time": str(int(time.time()))}
        return json.loads(self.get("/api/v1/query?" + urllib.parse.urlencode(params)))

    def wait_for(
        self, promql: str, predicate: Callable[[list[Any]], bool], timeout: float = 30
    ) -> list[Any]:
        """Poll an instant query until its result satisfies ``predicate`` (scrapes take time)."""
        deadline = time.monotonic() + timeout
        result: list[Any] = []
        while time.monotonic() < deadline:
            result = self.query(promql)["data"]["result"]
            if predicate(result):
                return result
            time.sleep(0.1)
        raise AssertionError(f"{promql} never matched in {timeout}s; last result {result}")

    def wait_for_value(self, promql: str, value: float, timeout: float = 30) -> None:
        self.wait_for(promql, lambda r: len(r) == 1 and float(r[0]["value"][1]) == value, timeout)

    def counter(self, name: str, **labels: str) -> float:
        """The sum of a counter of Prometheus' own /metrics over series matching ``labels``."""
        total = 0.0
        for line in self.get("/metrics").decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            series, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def queries_served(self) -> int:
        """``/api/v1/query`` requests this server answered, whatever the status."""
        return int(self.counter("prometheus_http_requests_total", handler="/api/v1/query"))

    def connections_accepted(self) -> int:
        return int(self.counter("net_conntrack_listener_conn_accepted_total", listener_name="http"))
