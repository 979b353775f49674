"""Azurite (Microsoft's Azure Storage emulator) on free loopback ports, in a temp dir.

Azurite comes from npm, installed once into ``~/.cache/metrics-adapter/azurite`` (about 25 s,
reused after); it needs node and npm on PATH. Each service runs as a process of its own
(``azurite-queue``, ``azurite-blob``) in memory, with its debug log, where every request it
receives is one ``StorageContextMiddleware: RequestMethod=... RequestURL=...`` line: the
sharing tests count requests there. Its well-known development account signs the requests
of the helpers here (creating queues, messages, containers and blobs) with our own SharedKey
code, so a fixture that works is also a check of that code.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import fcntl
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

from scalers.azure_storage import API_VERSION, parse_connection_string, shared_key_header
from tests.support.process import ServerProcess, spawn
from tests.support.servers import free_port

VERSION = "3.35.0"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's development account and key, published in its documentation."""
NEEDS = "node and npm on PATH (Debian packages nodejs and npm), to install Azurite from npm"
_REQUEST = re.compile(r"StorageContextMiddleware: RequestMethod=(\w+) RequestURL=\S*?//[^/]+(\S*)")


class AzuriteUnavailable(Exception):
    """No node or npm, or Azurite could not be installed."""


def available() -> bool:
    return bool(shutil.which("node") and (shutil.which("npm") or _bin_dir().exists()))


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "metrics-adapter" / "azurite"


def _bin_dir() -> Path:
    return cache_dir() / "node_modules" / ".bin"


def _installed() -> bool:
    package = cache_dir() / "node_modules" / "azurite" / "package.json"
    return package.exists() and f'"version": "{VERSION}"' in package.read_text()


def ensure_installed(timeout: float = 600.0) -> Path:
    """The directory of Azurite's commands, installed with npm on first use (idempotent)."""
    if _installed():
        return _bin_dir()
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise AzuriteUnavailable(f"need {NEEDS}")
    home = cache_dir()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not install into one dir
        if _installed():
            return _bin_dir()
        run = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(home),
                f"azurite@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0 or not _installed():
            raise AzuriteUnavailable(f"npm failed in {home}: {(run.stdout + run.stderr)[-2000:]}")
    return _bin_dir()


@dataclass
class Azurite(ServerProcess):
    """One Azurite service (``queue`` or ``blob``) and signed helpers to fill it."""

    log_files = ("azurite.log",)

    service: str
    bin_dir: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="azurite-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10), repr=False)

    @property
    def endpoint(self) -> str:
        """The service URL, path-style: Azurite's account is the first path segment."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def debug_log(self) -> Path:
        return self.workdir / "debug.log"

    def connection_string(self, key: str = KEY, *, sas: str | None = None) -> str:
        endpoint = f"{self.service.capitalize()}Endpoint={self.endpoint}"
        if sas is not None:
            return f"{endpoint};SharedAccessSignature={sas}"
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};{endpoint};"

    def start(self, timeout: float = 30.0) -> Azurite:
        for _ in range(3):  # a free port may be taken before Azurite binds it
            self.port = free_port()
            command = [str(self.bin_dir / f"azurite-{self.service}")]
            command += [
                f"--{self.service}Host",
                "127.0.0.1",
                f"--{self.service}Port",
                str(self.port),
            ]
            command += ["--inMemoryPersistence", "--disableTelemetry"]
            command += ["--debug", str(self.debug_log)]
            log = self.workdir / "azurite.log"
            self.process = spawn(command, log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if "successfully listens" in self.log():
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"azurite-{self.service} not ready in {timeout}s: {self.log()}")
            if "EADDRINUSE" not in self.log():
                break
        raise RuntimeError(f"azurite-{self.service} exited: {self.log()[-2000:]}")

    def cleanup(self) -> None:
        self._http.close()
        super().cleanup()

    def requests(self, method: str = "GET") -> list[str]:
        """The path and query of every ``method`` request received so far, in order.

        Azurite writes its debug log asynchronously, so a request of its own (listing the
        account's queues or containers with a prefix no name has) marks the end: once the
        marker is in the log, so is every request before it."""
        marker = f"marker-{uuid.uuid4().hex}"
        self.call("GET", (), {"comp": "list", "prefix": marker})
        deadline = time.monotonic() + 30
        while True:
            text = self.debug_log.read_text(errors="replace") if self.debug_log.exists() else ""
            found = _REQUEST.findall(text)
            paths = [path for _, path in found]
            if any(marker in path for path in paths):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"azurite-{self.service} logged no marker request in 30 s")
            time.sleep(0.02)
        return [path for m, path in found if m == method and "prefix=marker-" not in path]

    def call(
        self,
        method: str,
        segments: tuple[str, ...],
        params: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request signed as the development account; a failure raises."""
        account = parse_connection_string(self.connection_string(), self.service)
        path = f"/{ACCOUNT}" + "".join("/" + quote(s, safe="") for s in segments)
        params = dict(params or {})
        sent = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": API_VERSION}
        sent.update(headers or {})
        if body:
            sent["Content-Length"] = str(len(body))
        sent["Authorization"] = shared_key_header(account, method, path, params, sent)
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{urlencode(params)}" if params else "")
        response = self._http.request(method, url, headers=sent, content=body)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {url}: {response.status_code} {response.text}")
        return response

    # --- queues
    def create_queue(self, name: str) -> None:
        self.call("PUT", (name,))

    def send(self, queue: str, count: int, *, delay: int = 0) -> None:
        """``count`` messages, invisible for ``delay`` seconds (``visibilitytimeout``)."""
        params = {"visibilitytimeout": str(delay)} if delay else {}
        for i in range(count):
            body = f"<QueueMessage><MessageText>m{i}</MessageText></QueueMessage>".encode()
            self.call("POST", (queue, "messages"), params, body)

    def receive(self, queue: str, count: int, *, hide_for: int = 600) -> None:
        """Receive ``count`` messages (at most 32 a call): invisible, still counted."""
        while count > 0:
            n = min(count, 32)
            params = {"numofmessages": str(n), "visibilitytimeout": str(hide_for)}
            self.call("GET", (queue, "messages"), params)
            count -= n

    # --- blobs
    def create_container(self, name: str) -> None:
        self.call("PUT", (name,), {"restype": "container"})

    def put_blobs(self, container: str, *names: str) -> None:
        for name in names:
            self.call(
                "PUT", (container, *name.split("/")), {}, b"x", {"x-ms-blob-type": "BlockBlob"}
            )

    def account_sas(self, permissions: str = "rl", key: str = KEY) -> str:
        """An account SAS (version 2019-12-12) for this service, valid for an hour."""
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        fields = {
            "sv": "2019-12-12",
            "ss": self.service[0],
            "srt": "sco",
            "sp": permissions,
            "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "spr": "https,http",
        }
        order = ("sp", "ss", "srt", "st", "se", "sip", "spr", "sv")
        text = "\n".join([ACCOUNT, *(fields.get(k, "") for k in order)]) + "\n"
        digest = hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()
        fields["sig"] = base64.b64encode(digest).decode()
        return urlencode(fields)


def wrong_key() -> str:
    """A key of the right shape that is not the account's."""
    return base64.b64encode(b"not the key of devstoreaccount1!" * 2).decode()
