"""A real single-node Kafka broker (KRaft) from the Maven Central jars, on free loopback ports.

The jars are fetched once with Maven into ``~/.cache/metrics-adapter/kafka-<version>/lib``
(outside the repository) and reused; a fresh machine fetches them on first use. The broker
listens on five listeners, each on its own port: PLAINTEXT, SASL_PLAINTEXT and SASL_SSL
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), SSL with a required client certificate, from a CA
made for the run, and OAUTHBEARER (SASL_PLAINTEXT) taking unsecured JWTs.
``kafka.request.logger`` at DEBUG writes one JSON line per request to ``requests.log``: the
tests count upstream requests there, server-side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest

from tests.support.pki import Pki, make_pki
from tests.support.process import ServerProcess
from tests.support.servers import free_ports

KAFKA_VERSION = "4.2.0"
LOG4J_VERSION = "2.25.3"
"""The log4j-core that kafka_2.13 itself pulls in; its slf4j 1.7 binding is the backend."""

USERS = {"alice": "alice-secret", "bob": "bob-secret"}

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>metrics-adapter.tests</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaUnavailable(Exception):
    """No java or mvn, or the jars could not be fetched."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "metrics-adapter" / f"kafka-{KAFKA_VERSION}"


def ensure_jars(timeout: float = 900.0) -> Path:
    """The broker's classpath directory, fetched with Maven on first use (idempotent)."""
    home = cache_dir()
    lib, done = home / "lib", home / "lib" / ".complete"
    if done.exists():
        return lib
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if not java or not mvn:
        raise KafkaUnavailable(f"need java and mvn on PATH to fetch Kafka (java={java}, mvn={mvn})")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not fetch into one dir
        if done.exists():
            return lib
        (home / "pom.xml").write_text(POM)
        partial = home / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        run = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={partial}"],
            cwd=home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0 or not list(partial.glob("kafka_2.13-*.jar")):
            raise KafkaUnavailable(f"mvn failed in {home}: {(run.stdout + run.stderr)[-2000:]}")
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        done.write_text(KAFKA_VERSION)
    return lib


def _cluster_id() -> str:
    """What ``kafka-storage.sh random-uuid`` prints: a URL-safe base64 UUID (saves a JVM)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


LISTENERS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL", "OAUTHBEARER", "CONTROLLER")
PROTOCOLS = {"CONTROLLER": "PLAINTEXT", "OAUTHBEARER": "SASL_PLAINTEXT"}
"""A listener's security protocol, where it is not the listener's name."""
OAUTH_SCOPE = "kafka"
"""The scope the OAUTHBEARER listener's validator requires of every token."""


@dataclass
class KafkaBroker(ServerProcess):
    log_files = ("stdout.log", "server.log")
    stop_timeout = 30

    lib: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kafka-")))
    ports: dict[str, int] = field(
        default_factory=lambda: dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True))
    )
    process: subprocess.Popen[bytes] | None = None
    pki: Pki | None = None
    startup_seconds: float = 0.0
    """From launching the JVM to a broker that answers metadata and coordinates groups."""

    # Addresses a trigger's bootstrapServers holds.

    @property
    def bootstrap(self) -> str:
        return self.address("PLAINTEXT")

    def address(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    # Running.

    def start(self, timeout: float = 60.0) -> KafkaBroker:
        self.pki = self.pki or make_pki(self.workdir / "pki")
        # Kafka's PEM keystore wants the PKCS#8 key and the chain in one file.
        keystore = [self.pki.server_key, self.pki.server_cert, self.pki.ca]
        (self.workdir / "server.pem").write_text("".join(path.read_text() for path in keystore))
        (self.workdir / "server.properties").write_text(self._server_properties())
        (self.workdir / "log4j2.properties").write_text(self._log4j())
        if not (self.workdir / "data" / "meta.properties").exists():
            self._format()
        started = time.monotonic()
        with open(self.workdir / "stdout.log", "ab") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.workdir / "server.properties")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kafka exited {self.process.returncode}: {self.log()[-3000:]}")
            if self._accepts() and self._ready():
                self.startup_seconds = time.monotonic() - started
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kafka was not ready within {timeout}s: {self.log()[-3000:]}")

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: a faster start on two shared cores
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            f"{self.lib}/*",
        ]

    def _format(self) -> None:
        scram = [
            arg
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for user, password in USERS.items()
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
        ]
        run = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                _cluster_id(),
                "-c",
                str(self.workdir / "server.properties"),
                *scram,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if run.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed: {run.stdout}{run.stderr}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports["PLAINTEXT"]), timeout=0.5):
                return True
        except OSError:
            return False

    def _ready(self) -> bool:
        # Its own loop in its own thread: start() may be called from inside a running test.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(self._coordinates())).result()

    async def _coordinates(self) -> bool:
        """Ready: the broker is registered and its group coordinator answers offset fetches."""
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await client.bootstrap()
            if not client.cluster.brokers():
                return False
            node = next(iter(client.cluster.brokers())).nodeId
            found = await client.send(node, FindCoordinatorRequest("readiness", 0))
            if found.error_code:
                return False
            # After a restart the offsets are loaded a moment later (COORDINATOR_LOAD_IN_PROGRESS).
            offsets = await client.send(found.coordinator_id, OffsetFetchRequest("readiness", None))
            return bool(offsets.error_code == 0)
        except Exception:
            return False
        finally:
            await client.close()

    def _server_properties(self) -> str:
        p, d = self.ports, self.workdir
        assert self.pki is not None, "start() makes the PKI first"
        jaas_plain = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
            f'user_{user}="{password}"' for user, password in USERS.items()
        )
        jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{p['CONTROLLER']}",
            "listeners": ",".join(f"{n}://127.0.0.1:{p[n]}" for n in LISTENERS),
            "advertised.listeners": ",".join(
                f"{n}://127.0.0.1:{p[n]}" for n in LISTENERS if n != "CONTROLLER"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                f"{n}:{PROTOCOLS.get(n, n)}" for n in LISTENERS
            ),
            "log.dirs": str(d / "data"),
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(d / "server.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            # OAUTHBEARER with Kafka's default server callback, which validates unsecured
            # JWTs (alg none: sub, exp, and the scope it requires) as they come from
            # tests.support.oauth2_issuer; the sub claim only serves the broker's own login.
            "listener.name.oauthbearer.sasl.enabled.mechanisms": "OAUTHBEARER",
            "listener.name.oauthbearer.oauthbearer.sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                'unsecuredLoginStringClaim_sub="broker" '
                f'unsecuredValidatorRequiredScope="{OAUTH_SCOPE}";'
            ),
        }
        for listener in ("sasl_plaintext", "sasl_ssl"):
            lines[f"listener.name.{listener}.plain.sasl.jaas.config"] = jaas_plain + ";"
            for mechanism in ("scram-sha-256", "scram-sha-512"):
                lines[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"] = jaas_scram + ";"
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _log4j(self) -> str:
        d = self.workdir
        return "\n".join(
            [
                "status = warn",
                "appender.server.type = File",
                "appender.server.name = SERVER",
                f"appender.server.fileName = {d / 'server.log'}",
                "appender.server.layout.type = PatternLayout",
                "appender.server.layout.pattern = [%d] %p %m (%c)%n",
                "appender.requests.type = File",
                "appender.requests.name = REQUESTS",
                f"appender.requests.fileName = {d / 'requests.log'}",
                "appender.requests.layout.type = PatternLayout",
                "appender.requests.layout.pattern = %m%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.server.ref = SERVER",
                # One line per request, with its API name and client id: the request counter.
                "logger.requests.name = kafka.request.logger",
                "logger.requests.level = DEBUG",
                "logger.requests.additivity = false",
                "logger.requests.appenderRef.requests.ref = REQUESTS",
                "",
            ]
        )

    # The request log.

    def requests(self) -> list[dict[str, Any]]:
        """Every request the broker has completed, oldest first, as logged."""
        path = self.workdir / "requests.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            _, sep, body = line.partition("Completed request:")
            if sep:
                with contextlib.suppress(ValueError):
                    found.append(json.loads(body))
        return found

    def request_counts(self, client_id: str, since: int = 0) -> Counter[str]:
        """API name → how many requests ``client_id`` made, from log entry ``since`` on."""
        return Counter(
            header["requestApiKeyName"]
            for entry in self.requests()[since:]
            if (header := entry.get("requestHeader", {})).get("clientId") == client_id
        )

    def wait_for_requests(self, client_id: str, api: str, count: int, since: int = 0) -> None:
        """Poll the log until ``count`` ``api`` requests of ``client_id`` are in it.

        The broker logs a request after its response is on the wire, so a client may see
        an answer a moment before the line is written."""
        deadline = time.monotonic() + 10
        while self.request_counts(client_id, since)[api] < count:
            if time.monotonic() > deadline:
                got = self.request_counts(client_id, since)
                raise AssertionError(f"expected {count} {api} from {client_id}, log has {got}")
            time.sleep(0.02)


# Broker state for tests, made with aiokafka's own producer, consumer and admin client.


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create ``name`` and wait until every partition's leader answers ListOffsets: until
    then the broker answers NOT_LEADER_OR_FOLLOWER."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer.end_offsets([TopicPartition(name, p) for p in range(partitions)])
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, per_partition: Mapping[int, int]) -> None:
    """Write ``per_partition[p]`` messages to each partition ``p``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, f"m{i}".encode(), partition=partition)
            for partition, count in per_partition.items()
            for i in range(count)
        ]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` ((topic, partition) → offset) for ``group``, as a consumer would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, p in offsets]
        consumer.assign(partitions)
        await consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
    finally:
        await consumer.stop()


async def delete_records(bootstrap: str, topic: str, before: Mapping[int, int]) -> None:
    """Advance each partition's log start offset, as retention would."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(o) for p, o in before.items()}
        )
    finally:
        await admin.close()
