"""A real ActiveMQ Classic broker (Debian's 5.17) with the Jolokia JVM agent, on loopback.

Debian's package has no web console, so no Jolokia REST API: the agent from Maven Central
(``org.jolokia:jolokia-agent-jvm``, the ``javaagent`` jar) is attached to the broker's JVM
at ``/api/jolokia``, where KEDA's default URL expects the console's, with basic auth. The
jar is fetched once with Maven into ``~/.cache/metrics-adapter/activemq/`` and reused.
The agent runs with ``debug=true``: it logs ``D> URI: <path>`` for each request it handles
(a login it refuses is not logged), which the tests count as the server's request log.
Messages go in and out over the broker's STOMP connector (:mod:`tests.support.stomp`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.process import ServerProcess, spawn
from tests.support.servers import free_port

JOLOKIA_VERSION = "2.5.1"
AGENT = f"org.jolokia:jolokia-agent-jvm:{JOLOKIA_VERSION}:jar:javaagent"
ACTIVEMQ_HOME = Path("/usr/share/activemq")
BROKER = "amq-test"
USER, PASSWORD = "admin", "amq-secret"
NEEDS = "java, Debian's activemq package and mvn (to fetch the Jolokia agent)"


class ActiveMQUnavailable(Exception):
    """No java, no Debian ActiveMQ, or the agent could not be fetched."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "metrics-adapter" / "activemq"


def available() -> bool:
    agent_cached = (cache_dir() / f"jolokia-{JOLOKIA_VERSION}" / ".complete").exists()
    return bool(
        shutil.which("java")
        and (ACTIVEMQ_HOME / "bin" / "activemq.jar").exists()
        and (agent_cached or shutil.which("mvn"))
    )


def ensure_agent(timeout: float = 600.0) -> Path:
    """The Jolokia javaagent jar, fetched with Maven on first use (idempotent, locked)."""
    home = cache_dir() / f"jolokia-{JOLOKIA_VERSION}"
    jar, done = home / f"jolokia-agent-jvm-{JOLOKIA_VERSION}-javaagent.jar", home / ".complete"
    if done.exists():
        return jar
    mvn = shutil.which("mvn")
    if not mvn:
        raise ActiveMQUnavailable("need mvn on PATH to fetch the Jolokia agent")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not fetch into one dir
        if done.exists():
            return jar
        run = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={AGENT}",
                f"-DoutputDirectory={home}",
            ],
            cwd=home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0 or not jar.exists():
            raise ActiveMQUnavailable(f"mvn failed: {(run.stdout + run.stderr)[-2000:]}")
        done.write_text(JOLOKIA_VERSION)
    return jar


BROKER_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
    http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="{broker}" useJmx="true"
          persistent="false" dataDirectory="{data}">
    <managementContext><managementContext createConnector="false"/></managementContext>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:{stomp}"/>
    </transportConnectors>
  </broker>
</beans>
"""


@dataclass
class ActiveMQBroker(ServerProcess):
    log_files = ("stdout.log",)
    stop_timeout = 20

    agent: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="activemq-")))
    jolokia_port: int = field(default_factory=free_port)
    stomp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """What a trigger's ``managementEndpoint`` holds."""
        return f"127.0.0.1:{self.jolokia_port}"

    def start(self, timeout: float = 120.0) -> ActiveMQBroker:
        conf, data = self.workdir / "conf", self.workdir / "data"
        conf.mkdir(parents=True, exist_ok=True)
        xml = BROKER_XML.format(broker=BROKER, data=data, stomp=self.stomp_port)
        (conf / "activemq.xml").write_text(xml)
        options = ",".join(
            [
                "host=127.0.0.1",
                f"port={self.jolokia_port}",
                "agentContext=/api/jolokia",
                f"user={USER}",
                f"password={PASSWORD}",
                "debug=true",
            ]
        )
        argv = [
            "java",
            "-Xmx160m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: a faster start on two shared cores
            f"-javaagent:{self.agent}={options}",
            f"-Dactivemq.classpath={conf}",
            f"-Dactivemq.home={ACTIVEMQ_HOME}",
            f"-Dactivemq.base={self.workdir}",
            f"-Dactivemq.conf={conf}",
            f"-Dactivemq.data={data}",
            "-jar",
            str(ACTIVEMQ_HOME / "bin" / "activemq.jar"),
            "start",
            f"xbean:file:{conf / 'activemq.xml'}",
        ]
        self.process = spawn(argv, self.workdir / "stdout.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"activemq exited {self.process.returncode}: {self.log()[-3000:]}"
                )
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"activemq was not ready within {timeout}s: {self.log()[-3000:]}")

    def _ready(self) -> bool:
        """The agent answers and the broker's MBean is registered (its STOMP connector
        starts before it is)."""
        try:
            return bool(
                self.read(f"org.apache.activemq:type=Broker,brokerName={BROKER}/BrokerName")
            )
        except (OSError, ValueError):
            return False

    # The management API, as a test's own client (not the scaler under test).

    def jolokia(self, path: str) -> dict[str, Any]:
        """GET ``/api/jolokia/<path>`` as the admin; the Jolokia answer."""
        login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"http://{self.endpoint}/api/jolokia/{path}",
            headers={"Authorization": f"Basic {login}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def read(self, mbean_attribute: str) -> Any:
        answer = self.jolokia(f"read/{mbean_attribute}")
        if answer.get("status") != 200:
            raise ValueError(f"read {mbean_attribute}: {answer}")
        return answer["value"]

    def queue_mbean(self, queue: str) -> str:
        return (
            f"org.apache.activemq:type=Broker,brokerName={BROKER},destinationType=Queue,"
            f"destinationName={queue}"
        )

    def add_queue(self, queue: str) -> None:
        answer = self.jolokia(
            f"exec/org.apache.activemq:type=Broker,brokerName={BROKER}/addQueue/{queue}"
        )
        assert answer.get("status") == 200, answer

    def queue_size(self, queue: str) -> int:
        return int(self.read(f"{self.queue_mbean(queue)}/QueueSize"))

    # The agent's request log.

    def requests(self, fragment: str) -> int:
        """Requests the agent has handled whose path holds ``fragment``."""
        path = self.workdir / "stdout.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return sum(
            1 for line in text.splitlines() if line.startswith("D> URI: ") and fragment in line
        )

    def wait_for_requests(self, fragment: str, count: int) -> int:
        """The count of :meth:`requests` once it reaches ``count`` (the agent logs a request
        as it handles it; the line may be written a moment after the answer is read)."""
        deadline = time.monotonic() + 10
        while (found := self.requests(fragment)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests for {fragment!r}, log has {found}")
            time.sleep(0.02)
        return found


def start_broker() -> ActiveMQBroker:
    return ActiveMQBroker(ensure_agent()).start()
