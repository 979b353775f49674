"""A real ActiveMQ Artemis broker from Maven Central's binary distribution, on loopback.

The distribution (``org.apache.activemq:apache-artemis:<v>:tar.gz:bin``) is fetched once
with Maven and unpacked into ``~/.cache/metrics-adapter/artemis/``. Each session makes a
broker instance with ``artemis create`` in a temp dir (login required, web console and
acceptor on 127.0.0.1), whose console serves Jolokia at ``/console/jolokia`` (KEDA's
default URL) behind the console's JAAS login and a Jolokia policy that allows only the
``http://127.0.0.1...`` origins with strict checking. The console's Jetty writes a request
log (``log/requests.log``), which the tests count. Messages go in and out over STOMP, which
the broker's one acceptor speaks (:mod:`tests.support.stomp`). The console is served over
TLS too, on a port of its own that requires a client certificate (:mod:`tests.support.pki`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.pki import Pki, make_pki
from tests.support.process import ServerProcess, spawn
from tests.support.servers import free_port

VERSION = "2.40.0"
DISTRIBUTION = f"org.apache.activemq:apache-artemis:{VERSION}:tar.gz:bin"
BROKER = "art-test"
USER, PASSWORD = "admin", "artemis-secret"
STORE_PASSWORD = "store-secret"
NEEDS = "java and mvn (to fetch Artemis from Maven Central)"
JAVA_ARGS = [
    "-Xms32m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # C1 only: a faster start on two shared cores
    # What the instance's artemis.profile would set, less its 512 MB heap:
    "-Dhawtio.disableProxy=true",
    "-Dhawtio.realm=activemq",
    "-Dhawtio.offline=true",
    "-Dhawtio.rolePrincipalClasses="
    "org.apache.activemq.artemis.spi.core.security.jaas.RolePrincipal",
    # A wrong-password test must not lock the admin out of the tests after it.
    "-Dhawtio.authenticationThrottled=false",
    "-Dlog4j2.disableJmx=true",
    "--add-opens",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
]


class ArtemisUnavailable(Exception):
    """No java or mvn, or the distribution could not be fetched."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "metrics-adapter" / "artemis"


def available() -> bool:
    home = cache_dir() / f"apache-artemis-{VERSION}"
    return bool(shutil.which("java") and ((home / ".complete").exists() or shutil.which("mvn")))


def ensure_distribution(timeout: float = 900.0) -> Path:
    """The unpacked distribution (``bin/artemis``), fetched with Maven on first use."""
    home = cache_dir() / f"apache-artemis-{VERSION}"
    done = home / ".complete"
    if done.exists():
        return home
    mvn = shutil.which("mvn")
    if not mvn:
        raise ArtemisUnavailable("need mvn on PATH to fetch Artemis")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not fetch into one dir
        if done.exists():
            return home
        partial = cache_dir() / "download.partial"
        shutil.rmtree(partial, ignore_errors=True)
        fetch = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={DISTRIBUTION}"]
        run = subprocess.run(
            [*fetch, f"-DoutputDirectory={partial}"],
            cwd=cache_dir(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        archives = list(partial.glob("apache-artemis-*-bin.tar.gz"))
        if run.returncode != 0 or not archives:
            raise ArtemisUnavailable(f"mvn failed: {(run.stdout + run.stderr)[-2000:]}")
        shutil.rmtree(home, ignore_errors=True)
        with tarfile.open(archives[0]) as archive:
            archive.extractall(cache_dir(), filter="tar")
        shutil.rmtree(partial, ignore_errors=True)
        done.write_text(VERSION)
    return home


@dataclass
class ArtemisBroker(ServerProcess):
    log_files = ("stdout.log",)
    stop_timeout = 20

    home: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="artemis-")))
    http_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    """The acceptor's: every protocol, STOMP included."""
    tls_port: int = field(default_factory=free_port)
    """The console again, over TLS with a required client certificate (:attr:`pki`)."""
    process: subprocess.Popen[bytes] | None = None
    pki: Pki | None = None

    @property
    def endpoint(self) -> str:
        """What a trigger's ``managementEndpoint`` holds."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def instance(self) -> Path:
        return self.workdir / "instance"

    def start(self, timeout: float = 120.0) -> ArtemisBroker:
        if not (self.instance / "bin" / "artemis").exists():
            self._create()
        # The instance's script takes the JVM's options from JAVA_ARGS and execs java.
        java_args = f"JAVA_ARGS={' '.join(self._java_args())}"
        argv = ["env", java_args, str(self.instance / "bin" / "artemis"), "run"]
        self.process = spawn(argv, self.workdir / "stdout.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"artemis exited {self.process.returncode}: {self.log()[-3000:]}"
                )
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"artemis was not ready within {timeout}s: {self.log()[-3000:]}")

    def _java_args(self) -> list[str]:
        policy = (self.instance / "etc" / "jolokia-access.xml").as_uri()
        return [*JAVA_ARGS, f"-Djolokia.policyLocation={policy}"]

    def _create(self) -> None:
        argv = [
            str(self.home / "bin" / "artemis"),
            "create",
            str(self.instance),
            "--name",
            BROKER,
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--require-login",
            "--host",
            "127.0.0.1",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--default-port",
            str(self.port),
            "--no-amqp-acceptor",
            "--no-hornetq-acceptor",
            "--no-mqtt-acceptor",
            "--no-stomp-acceptor",
            "--no-autotune",
            "--no-fsync",
            "--silent",
        ]
        env = {**os.environ, "JAVA_ARGS": "-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"}
        run = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        if run.returncode != 0:
            raise RuntimeError(f"artemis create failed: {run.stdout}{run.stderr}")
        bootstrap = self.instance / "etc" / "bootstrap.xml"
        log = self.instance / "log" / "requests.log"
        more = f'{self._tls_binding()}\n       <request-log filename="{log}" append="true"/>'
        bootstrap.write_text(bootstrap.read_text().replace("</binding>", f"</binding>{more}", 1))

    def _tls_binding(self) -> str:
        """The console on :attr:`tls_port`: Jetty reads PKCS#12 stores, made from the PEM
        PKI here (the truststore as Java wants it, with its trusted-certificate mark)."""
        pki = self.pki = make_pki(self.workdir / "pki")
        ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
        cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        lock = serialization.BestAvailableEncryption(STORE_PASSWORD.encode())
        keystore, truststore = self.workdir / "pki" / "server.p12", self.workdir / "pki" / "ca.p12"
        keystore.write_bytes(
            pkcs12.serialize_key_and_certificates(b"server", key, cert, [ca], lock)
        )
        trusted = [pkcs12.PKCS12Certificate(ca, b"ca")]
        truststore.write_bytes(pkcs12.serialize_java_truststore(trusted, lock))
        return (
            f'\n       <binding name="tls" uri="https://127.0.0.1:{self.tls_port}"'
            ' clientAuth="true"'
            f' keyStorePath="{keystore}" keyStorePassword="{STORE_PASSWORD}"'
            f' trustStorePath="{truststore}" trustStorePassword="{STORE_PASSWORD}">\n'
            '           <app name="console" url="console" war="console.war"/>\n'
            "       </binding>"
        )

    def _ready(self) -> bool:
        try:
            return self.read(f'org.apache.activemq.artemis:broker="{BROKER}"/Started') is True
        except (OSError, ValueError):
            return False

    # The management API, as a test's own client (not the scaler under test).

    def jolokia(self, path: str) -> dict[str, Any]:
        """GET ``/console/jolokia/<path>`` as the admin, from an allowed origin."""
        login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers = {"Authorization": f"Basic {login}", "Origin": f"http://{self.endpoint}"}
        url = f"http://{self.endpoint}/console/jolokia/{urllib.parse.quote(path, safe='/:,=()')}"
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            answer: dict[str, Any] = json.loads(r.read())
        return answer

    def read(self, mbean_attribute: str) -> Any:
        answer = self.jolokia(f"read/{mbean_attribute}")
        if answer.get("status") != 200:
            raise ValueError(f"read {mbean_attribute}: {answer}")
        return answer["value"]

    def create_queue(self, address: str, queue: str) -> None:
        """An anycast ``queue`` on ``address`` (both made now)."""
        operation = "createQueue(java.lang.String,java.lang.String,java.lang.String)"
        mbean = f'org.apache.activemq.artemis:broker="{BROKER}"'
        answer = self.jolokia(f"exec/{mbean}/{operation}/{address}/{queue}/ANYCAST")
        assert answer.get("status") == 200, answer

    def queue_mbean(self, address: str, queue: str) -> str:
        return (
            f'org.apache.activemq.artemis:broker="{BROKER}",component=addresses,'
            f'address="{address}",subcomponent=queues,routing-type="anycast",queue="{queue}"'
        )

    def message_count(self, address: str, queue: str) -> int:
        return int(self.read(f"{self.queue_mbean(address, queue)}/MessageCount"))

    # The console's request log.

    def requests(self, fragment: str) -> int:
        """Requests the console has answered whose path holds ``fragment`` (as sent,
        percent-encoded: ``queue=%22q%22``)."""
        path = self.instance / "log" / "requests.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return sum(1 for line in text.splitlines() if fragment in line)

    def wait_for_requests(self, fragment: str, count: int) -> int:
        """The count of :meth:`requests` once it reaches ``count``: Jetty logs a request
        after its response is written, so the client may read it a moment before."""
        deadline = time.monotonic() + 10
        while (found := self.requests(fragment)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests for {fragment!r}, log has {found}")
            time.sleep(0.02)
        return found


def start_broker() -> ArtemisBroker:
    return ArtemisBroker(ensure_distribution()).start()
