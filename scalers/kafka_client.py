"""The Kafka side of the ``kafka`` scaler: one aiokafka client per backend, one offsets query.

A :class:`KafkaBackend` is what makes two clients different (bootstrap servers, SASL, TLS):
every trigger that points at the same one shares one :class:`KafkaConnection`. An
:class:`OffsetsQuery` asks one consumer group's committed offsets and the log end offsets of
its partitions, for one topic or for every topic the group has committed to. Per poll that
is one Metadata, one OffsetFetch and one ListOffsets per partition leader; a second
ListOffsets (log start) only when some partition has no committed offset yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn, get_ip_port_afi
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    StaleMetadata,
    for_code,
)
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from scalers.clients import Clients
from scalers.errors import ScalerError, SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.oauth2 import ClientCredentials

log = logging.getLogger(__name__)

CLIENT_ID = "metrics-adapter"
LATEST, EARLIEST = -1, -2
"""ListOffsets timestamps: the log end offset (high watermark) and the log start offset."""
NO_OFFSET = -1
"""What OffsetFetch answers for a partition the group has never committed."""
_COORDINATOR_MOVED = {15, 16}
"""COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: look the group's coordinator up again."""
_MECHANISMS = {
    "plaintext": "PLAIN",
    "scram_sha256": "SCRAM-SHA-256",
    "scram_sha512": "SCRAM-SHA-512",
    "oauthbearer": "OAUTHBEARER",
}


@dataclass(frozen=True, slots=True)
class KafkaBackend:
    """One Kafka cluster as one identity sees it: the key of a shared client."""

    bootstrap_servers: tuple[str, ...]
    sasl: str = "none"
    """``none``, ``plaintext`` (SASL/PLAIN), ``scram_sha256``, ``scram_sha512`` or
    ``oauthbearer`` (with :attr:`oauth`)."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    unsafe_ssl: bool = False
    ca: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)
    oauth: ClientCredentials | None = field(default=None, repr=False)
    """Where ``oauthbearer`` gets its tokens: client credentials at a token endpoint."""
    oauth_extensions: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """SASL/OAUTHBEARER extensions sent beside the token (RFC 7628 §3.1)."""

    @property
    def security_protocol(self) -> str:
        sasl = self.sasl != "none"
        return {
            (False, False): "PLAINTEXT",
            (False, True): "SASL_PLAINTEXT",
            (True, False): "SSL",
            (True, True): "SASL_SSL",
        }[(self.tls, sasl)]

    def describe(self) -> str:
        """``kafka 127.0.0.1:9092 (SASL_SSL, SCRAM-SHA-512 as alice)``, never a secret."""
        servers = ",".join(self.bootstrap_servers)
        if self.security_protocol == "PLAINTEXT":
            return f"kafka {servers}"
        how = self.security_protocol
        if self.sasl != "none":
            how += f", {_MECHANISMS[self.sasl]} as {self.username}"
        return f"kafka {servers} ({how})"


@dataclass(frozen=True, slots=True)
class TopicOffsets:
    """One topic of a group, as the broker answered one poll."""

    partitions: tuple[int, ...]
    """Every partition of the topic, from metadata."""
    committed: Mapping[int, int]
    """Partition → committed offset; ``-1`` when the group never committed it."""
    latest: Mapping[int, int]
    """Partition → log end offset, for the partitions ListOffsets answered."""
    earliest: Mapping[int, int] = field(default_factory=dict)
    """Partition → log start offset, only for partitions without a committed offset."""


@dataclass(frozen=True, slots=True)
class GroupOffsets:
    """The answer of an :class:`OffsetsQuery`."""

    group: str
    topics: Mapping[str, TopicOffsets]


class BearerTokens(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER's tokens for aiokafka, which asks at each new broker connection: the
    client-credentials token of :mod:`scalers.oauth2`, shared through ``clients`` by every
    connection with the same credentials, fetched again once it is due."""

    def __init__(
        self, credentials: ClientCredentials, extensions: dict[str, str], clients: Clients
    ) -> None:
        self._credentials = credentials
        self._extensions = extensions
        self._clients = clients

    async def token(self) -> str:
        header = await self._credentials.authorization(self._clients)
        return header.partition(" ")[2]  # "Bearer <token>": SASL wants the token alone

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)


class KafkaConnection:
    """The aiokafka client of one backend, with the group coordinators it has found."""

    def __init__(
        self,
        backend: KafkaBackend,
        request_timeout: float,
        client_id: str = CLIENT_ID,
        clients: Clients | None = None,
    ) -> None:
        self.backend = backend
        self._own_clients: Clients | None = None
        self._settings: dict[str, Any] = {
            "client_id": client_id,
            "request_timeout_ms": int(request_timeout * 1000),
            "security_protocol": backend.security_protocol,
            "ssl_context": ssl_context(backend) if backend.tls else None,
            "sasl_mechanism": _MECHANISMS.get(backend.sasl, "PLAIN"),
            "sasl_plain_username": backend.username,
            "sasl_plain_password": backend.password,
        }
        if backend.oauth is not None:
            if clients is None:  # a wake watcher's connection: tokens of its own
                clients = self._own_clients = Clients(timeout=request_timeout)
            extensions = dict(backend.oauth_extensions)
            self._settings["sasl_oauth_token_provider"] = BearerTokens(
                backend.oauth, extensions, clients
            )
        self._client = AIOKafkaClient(
            bootstrap_servers=list(backend.bootstrap_servers), **self._settings
        )
        self._coordinators: dict[str, int] = {}

    @classmethod
    async def open(
        cls,
        backend: KafkaBackend,
        request_timeout: float,
        client_id: str = CLIENT_ID,
        clients: Clients | None = None,
    ) -> KafkaConnection:
        """Bootstrapped; ``client_id`` tells the broker's logs and quotas who asks (the wake
        watcher has its own connections: a long Fetch would hold up the polls' requests).
        ``clients`` fetch OAUTHBEARER tokens, shared with every connection they serve."""
        try:
            connection = cls(backend, request_timeout, client_id, clients)
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise SourceUnreachable(f"{backend.describe()}: cannot set up TLS: {exc}") from exc
        try:
            await connection._client.bootstrap()
        except KafkaConnectionError:
            why = await connection._why_not()
            await connection.close()
            raise SourceUnreachable(f"{backend.describe()}: cannot bootstrap: {why}") from None
        except ScalerError as exc:  # no OAUTHBEARER token: say which broker wanted it
            await connection.close()
            raise type(exc)(f"{backend.describe()}: {exc}") from exc
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _why_not(self) -> str:
        """aiokafka only logs why no bootstrap server would do: connect once more to say it
        (refused, TLS, SASL authentication)."""
        host, port, _ = get_ip_port_afi(self.backend.bootstrap_servers[0])
        try:
            probe = await create_conn(host, port, **self._settings)
        except Exception as exc:
            return f"{host}:{port}: {_reason(exc)}"
        probe.close()
        return f"no bootstrap server answered (but {host}:{port} does now)"

    async def close(self) -> None:
        await self._client.close()
        if self._own_clients is not None:
            await self._own_clients.aclose()

    async def send(self, node: int, request: Any) -> dict[str, Any]:
        """Send ``request`` to broker ``node`` and decode its answer."""
        decoded: dict[str, Any] = (await self.request(node, request)).to_object()
        return decoded

    async def request(self, node: int, request: Any) -> Any:
        """Send ``request`` to broker ``node``; its answer as aiokafka parsed it (a Fetch
        answer does not decode to a dict: aiokafka leaves absent arrays ``None``)."""
        if self._client.cluster.broker_metadata(node) is None:
            await self._client.force_metadata_update()
        return await self._client.send(node, request)

    def any_node(self) -> int:
        node = self._client.get_random_node()
        if node is None:
            hint = ""
            if self.backend.sasl == "oauthbearer":
                # aiokafka misses the broker's OAUTHBEARER refusal (an error challenge) and
                # reads the connection's next answer as an empty cluster.
                hint = (
                    " (with OAUTHBEARER: a token the broker refused, e.g. expired or without "
                    "the scope or audience it requires; the broker logs a failed authentication)"
                )
            raise SourceUnreachable(f"{self.backend.describe()}: no broker in the metadata{hint}")
        return int(node)

    async def coordinator(self, group: str) -> int:
        found = self._coordinators.get(group)
        if found is None:
            answer = await self.send(self.any_node(), FindCoordinatorRequest(group, 0))
            _check(answer["error_code"], f"finding the coordinator of group {quote(group)}")
            found = self._coordinators[group] = int(answer["coordinator_id"])
        return found

    def forget_coordinator(self, group: str) -> None:
        self._coordinators.pop(group, None)


async def connect(clients: Clients, backend: KafkaBackend) -> KafkaConnection:
    """The shared connection of ``backend``, opened on first use."""

    async def open_connection() -> KafkaConnection:
        return await KafkaConnection.open(backend, clients.timeout, clients=clients)

    async def close_connection(connection: KafkaConnection) -> None:
        await connection.close()

    return await clients.shared(backend, open_connection, close_connection)


@dataclass(frozen=True, slots=True)
class OffsetsQuery:
    """Committed and log end offsets of one group: for ``topic``, or all its topics if None."""

    backend: KafkaBackend
    group: str
    topic: str | None = None

    def describe(self) -> str:
        topics = f"topic {quote(self.topic)}" if self.topic else "all its topics"
        return f"{self.backend.describe()}: offsets of group {quote(self.group)} on {topics}"

    async def run(self, clients: Clients) -> GroupOffsets:
        try:
            async with asyncio.timeout(clients.timeout):
                connection = await connect(clients, self.backend)
                return await self._read(connection)
        except (TimeoutError, KafkaTimeoutError, RequestTimedOutError) as exc:
            await clients.discard(self.backend)
            raise SourceTimeout(
                f"{self.describe()}: no answer within {clients.timeout:g}s"
            ) from exc
        except (KafkaConnectionError, NodeNotReadyError, StaleMetadata, OSError) as exc:
            await clients.discard(self.backend)
            raise SourceUnreachable(f"{self.backend.describe()}: {_reason(exc)}") from exc
        except asyncio.CancelledError:
            # Cut short mid-request (the poller's timeout): the connection's state is unknown.
            await clients.discard(self.backend)
            raise
        except KafkaError as exc:
            await clients.discard(self.backend)
            raise SourceResponseError(f"{self.describe()}: {_reason(exc)}") from exc

    async def _read(self, connection: KafkaConnection) -> GroupOffsets:
        if self.topic is None:
            committed = await self._committed(connection, None)
            if not committed:  # nothing committed: the group has no topics yet, lag 0 (KEDA #8104)
                return GroupOffsets(self.group, {})
            leaders = await self._leaders(connection, sorted(committed))
            latest = await self._list_offsets(connection, leaders, LATEST)
        else:
            leaders = await self._leaders(connection, [self.topic])
            committed, latest = await asyncio.gather(
                self._committed(connection, {self.topic: sorted(leaders[self.topic])}),
                self._list_offsets(connection, leaders, LATEST),
            )
        uncommitted = {
            topic: {p: node for p, node in by_partition.items() if _no_commit(committed, topic, p)}
            for topic, by_partition in leaders.items()
        }
        earliest = (
            await self._log_start(connection, uncommitted) if any(uncommitted.values()) else {}
        )
        topics = {}
        for topic, by_partition in leaders.items():
            partitions = tuple(sorted(by_partition))
            topics[topic] = TopicOffsets(
                partitions=partitions,
                committed={p: committed.get(topic, {}).get(p, NO_OFFSET) for p in partitions},
                latest=latest.get(topic, {}),
                earliest=earliest.get(topic, {}),
            )
        return GroupOffsets(self.group, topics)

    async def _leaders(
        self, connection: KafkaConnection, topics: list[str]
    ) -> dict[str, dict[int, int]]:
        """Topic → partition → leader broker, from one Metadata request."""
        answer = await connection.send(
            connection.any_node(), MetadataRequest(topics, allow_auto_topic_creation=False)
        )
        found: dict[str, dict[int, int]] = {}
        for topic in answer["topics"]:
            name = topic["topic"]
            if topic["error_code"] == 3:
                raise SourceResponseError(f"{self.describe()}: topic {quote(name)} does not exist")
            _check(topic["error_code"], f"reading the metadata of topic {quote(name)}")
            found[name] = {}
            for partition in topic["partitions"]:
                if partition["leader"] < 0:
                    raise SourceResponseError(
                        f"{self.describe()}: partition {partition['partition']} of topic "
                        f"{quote(name)} has no leader"
                    )
                found[name][partition["partition"]] = partition["leader"]
        missing = [t for t in topics if t not in found]
        if missing:
            raise SourceResponseError(
                f"{self.describe()}: no metadata for topic {quote(missing[0])}"
            )
        return found

    async def _committed(
        self, connection: KafkaConnection, partitions: Mapping[str, list[int]] | None
    ) -> dict[str, dict[int, int]]:
        """Topic → partition → committed offset; every committed partition when ``None``."""
        request = OffsetFetchRequest(
            self.group, None if partitions is None else list(partitions.items())
        )
        answer = await connection.send(await connection.coordinator(self.group), request)
        codes = {answer.get("error_code", 0)}
        codes.update(p["error_code"] for t in answer["topics"] for p in t["partitions"])
        if codes & _COORDINATOR_MOVED:  # look it up again, once
            connection.forget_coordinator(self.group)
            answer = await connection.send(await connection.coordinator(self.group), request)
        what = f"reading the committed offsets of group {quote(self.group)}"
        _check(answer.get("error_code", 0), what)
        found: dict[str, dict[int, int]] = {}
        for topic in answer["topics"]:
            for partition in topic["partitions"]:
                _check(partition["error_code"], what)
                found.setdefault(topic["topic"], {})[partition["partition"]] = partition["offset"]
        return found

    async def _list_offsets(
        self, connection: KafkaConnection, leaders: Mapping[str, Mapping[int, int]], which: int
    ) -> dict[str, dict[int, int]]:
        """Topic → partition → log end (``LATEST``) or start (``EARLIEST``) offset."""
        by_leader: dict[int, dict[str, list[tuple[int, int]]]] = {}
        for topic, by_partition in leaders.items():
            for partition, leader in sorted(by_partition.items()):
                by_leader.setdefault(leader, {}).setdefault(topic, []).append((partition, which))
        answers = await asyncio.gather(
            *(
                connection.send(node, OffsetRequest(-1, 0, list(topics.items())))
                for node, topics in by_leader.items()
            )
        )
        name = "log end" if which == LATEST else "log start"
        found: dict[str, dict[int, int]] = {}
        for answer in answers:
            for topic in answer["topics"]:
                for partition in topic["partitions"]:
                    _check(
                        partition["error_code"],
                        f"reading the {name} offset of partition {partition['partition']} "
                        f"of topic {quote(topic['topic'])}",
                    )
                    found.setdefault(topic["topic"], {})[partition["partition"]] = partition[
                        "offset"
                    ]
        return found

    async def _log_start(
        self, connection: KafkaConnection, leaders: Mapping[str, Mapping[int, int]]
    ) -> dict[str, dict[int, int]]:
        """Log start offsets; on a broker error KEDA falls back to the log end offset."""
        try:
            return await self._list_offsets(connection, leaders, EARLIEST)
        except SourceResponseError as exc:
            log.warning("%s; counting from the log end offset instead", exc)
            return {}


def _no_commit(committed: Mapping[str, Mapping[int, int]], topic: str, partition: int) -> bool:
    return committed.get(topic, {}).get(partition, NO_OFFSET) == NO_OFFSET


def _check(code: int, what: str) -> None:
    if code:
        error = for_code(code)
        detail = f": {error.description}" if error.description else ""
        raise SourceResponseError(f"{what}: {error.__name__} (error {code}){detail}")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    return f"{text} ({cause})" if cause and str(cause) not in text else text


def ssl_context(backend: KafkaBackend) -> ssl.SSLContext:
    """KEDA's TLS config: the given CA (else the system's), an optional client pair."""
    context = (
        ssl.create_default_context(cadata=backend.ca)
        if backend.ca
        else ssl.create_default_context()
    )
    if backend.unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if backend.cert and backend.key:
        with _pem_files(backend.cert, backend.key) as (cert, key):
            context.load_cert_chain(cert, key, password=backend.key_password or None)
    return context


@contextlib.contextmanager
def _pem_files(*pems: str) -> Iterator[list[str]]:
    """``ssl`` loads a client pair only from files: keep them for the call, in a 0700 dir."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, pem in enumerate(pems):
            path = os.path.join(tmp, f"{i}.pem")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                fh.write(pem)
            paths.append(path)
        yield paths
