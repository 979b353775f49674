"""The RabbitMQ side of the ``rabbitmq`` scaler: the management API over HTTP, or a passive
declare over AMQP on one connection per server.

Both queries answer :class:`QueueStats` (or a tuple of them for a regex), so one request
serves every trigger on that queue whatever its mode. Credentials never appear in a repr,
a description or an error: HTTP sends them as a header, AMQP keeps them out of
:attr:`AmqpServer.display`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlencode

import aiormq
import aiormq.exceptions
import pamqp.exceptions
from aiormq.abc import AbstractChannel, AbstractConnection

from scalers.clients import Clients, HttpIdentity, tls_context
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.errors import quote as q
from scalers.oauth2 import ClientCredentials

CONNECTION_NAME = "metrics-adapter"
_CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPError,
    pamqp.exceptions.PAMQPException,
    OSError,
    RuntimeError,
)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What KEDA reads of a queue. Counts absent from the answer are 0, as in KEDA."""

    messages: int
    """Ready plus unacknowledged (AMQP: ready only, all that ``queue.declare-ok`` tells)."""
    ready: int
    publish_rate: float = 0.0
    deliver_get_rate: float = 0.0


Answer = QueueStats | tuple[QueueStats, ...]
"""One queue, or every queue a ``useRegex`` name matched."""


# HTTP: the management API.


@dataclass(frozen=True)
class ManagementQuery:
    """``GET /api/queues/<vhost>/<queue>``, or the queues a regex matches in one page."""

    base_url: str
    """Scheme, host, port and any path prefix of the management API; no credentials."""
    vhost: str
    """The vhost as a URL path segment: ``%2F`` for the default vhost."""
    queue: str
    regex: bool = False
    page_size: int = 0
    timeout: float | None = None
    authorization: str | None = field(default=None, repr=False)
    oauth: ClientCredentials | None = None
    """OAuth2 instead of ``authorization``: its token is sent as the header (KEDA's
    ``oauth2.Transport``), fetched within the trigger's timeout as KEDA's is."""
    identity: HttpIdentity = field(default_factory=HttpIdentity, repr=False)
    problem: str | None = None
    """Why this URL cannot be requested (KEDA accepts it and fails when it polls): each
    poll fails with it."""

    @property
    def url(self) -> str:
        queues = f"{self.base_url}/api/queues/{self.vhost}"
        if self.regex:
            # KEDA's parameters; the first page must hold every match (see matched_queues).
            query = urlencode(
                {
                    "page": 1,
                    "use_regex": "true",
                    "pagination": "false",
                    "name": self.queue,
                    "page_size": self.page_size,
                }
            )
            return f"{queues}?{query}"
        return f"{queues}/{quote(self.queue, safe='')}"

    def describe(self) -> str:
        return f"GET {self.url}"

    async def run(self, clients: Clients) -> Answer:
        if self.problem is not None:
            raise SourceUnreachable(f"{self._subject()}: {self.problem}")
        headers = {"authorization": self.authorization} if self.authorization else {}
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.timeout:
                    await stack.enter_async_context(asyncio.timeout(self.timeout))
                if self.oauth is not None:
                    headers = {"authorization": await self.oauth.authorization(clients)}
                document = await clients.get_json(self.url, headers=headers, identity=self.identity)
        except TimeoutError as exc:
            raise SourceTimeout(
                f"{self.describe()}: no answer within {self.timeout:g}s (the trigger's timeout)"
            ) from exc
        except SourceResponseError as exc:
            raise SourceResponseError(f"{self._subject()}: {exc}") from exc
        if self.regex:
            return matched_queues(document, self._subject(), self.page_size)
        return queue_stats(document, self._subject())

    def _subject(self) -> str:
        what = "queues matching" if self.regex else "queue"
        return f"{what} {q(self.queue)} in vhost {q(unquote(self.vhost))}"


def matched_queues(document: object, subject: str, page_size: int) -> tuple[QueueStats, ...]:
    """The one page of queues a ``use_regex`` request answers, checked."""
    fields = document if isinstance(document, dict) else {}
    items = fields.get("items")
    if not isinstance(items, list):
        raise SourceResponseError(f"{subject}: the answer has no list of queues (items)")
    pages = fields.get("page_count", 1)
    if not isinstance(pages, int) or isinstance(pages, bool):
        raise SourceResponseError(f"{subject}: page_count is {q(pages)}, not a number")
    if pages > 1:
        # As KEDA: a partial sum would scale on a fraction of the backlog.
        raise SourceResponseError(
            f"{subject}: the regex matches more queues than one page holds "
            f"(pageSize {page_size}, {pages} pages); raise pageSize"
        )
    return tuple(queue_stats(item, subject) for item in items)


def queue_stats(document: object, subject: str) -> QueueStats:
    """A queue object of the management API, checked: a non-RabbitMQ answer is an error."""
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise SourceResponseError(f"{subject}: the answer is not a RabbitMQ queue object")
    stats = document.get("message_stats")
    stats = {} if stats is None else stats  # no traffic yet
    if not isinstance(stats, dict):
        raise SourceResponseError(f"{subject}: message_stats is not an object")
    return QueueStats(
        # A new queue, or any queue just after a restart, has no counts yet: 0, as in KEDA.
        messages=_count(document, "messages", subject),
        ready=_count(document, "messages_ready", subject),
        publish_rate=_rate(stats, "publish_details", subject),
        deliver_get_rate=_rate(stats, "deliver_get_details", subject),
    )


def _count(document: Mapping[str, object], key: str, subject: str) -> int:
    value = document.get(key)
    value = 0 if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SourceResponseError(f"{subject}: {key} is {q(value)}, not a message count")
    return value


def _rate(stats: Mapping[str, object], key: str, subject: str) -> float:
    details = stats.get(key)
    details = {} if details is None else details
    rate = details.get("rate", 0.0) if isinstance(details, dict) else details
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise SourceResponseError(f"{subject}: message_stats.{key}.rate is {q(rate)}, not a rate")
    return float(rate)


# AMQP: a passive queue.declare on a connection shared by every trigger of one server.


@dataclass(frozen=True)
class AmqpServer:
    """One AMQP endpoint and login: the key of one shared connection."""

    scheme: str
    netloc: str
    """``host:port`` as written, without credentials."""
    vhost: str
    username: str = field(default="guest", repr=False)
    password: str = field(default="guest", repr=False)
    tls: HttpIdentity | None = field(default=None, repr=False)
    """Client TLS settings (``tls: enable``); ``None`` leaves amqps to system CAs."""

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.netloc}/{quote(self.vhost, safe='')}"

    @property
    def url(self) -> str:
        login = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"{self.scheme}://{login}@{self.netloc}/{quote(self.vhost, safe='')}"


class AmqpClient:
    """One connection and one channel; declares are serialised (a NOT_FOUND closes the
    channel, which must not fail another trigger's declare in flight)."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.channel: AbstractChannel | None = None
        self.broken = False
        self.used = False
        """Answered a declare once: a later connection error means it died, not that it
        never worked, so one retry on a fresh connection is worth it."""
        self._lock = asyncio.Lock()

    @property
    def usable(self) -> bool:
        return not self.broken and not self.connection.is_closed

    async def message_count(self, queue: str) -> int | None:
        async with self._lock:
            try:
                if self.channel is None or self.channel.is_closed:
                    self.channel = await self.connection.channel()
                declared = await self.channel.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelClosed:
                self.channel = None  # the server closed it (NOT_FOUND, ACCESS_REFUSED)
                raise
            except BaseException:
                self.broken = True  # cut mid-call: its state is unknown, reconnect next time
                raise
        self.used = True
        return declared.message_count

    async def close(self) -> None:
        await self.connection.close()


@dataclass(frozen=True)
class AmqpQuery:
    """``queue.declare(passive=True)``: the ready-message count of one queue."""

    server: AmqpServer
    queue: str

    def describe(self) -> str:
        return f"AMQP queue.declare(passive) {q(self.queue)} at {self.server.display}"

    async def run(self, clients: Clients) -> Answer:
        key = ("rabbitmq-amqp", self.server)
        subject = f"queue {q(self.queue)} in vhost {q(self.server.vhost)}"
        for retry in (True, False):
            client = await self._client(clients, key)
            if not client.usable:  # closed since the last poll, as it was seen: reconnect now
                await clients.discard(key)
                client = await self._client(clients, key)
            try:
                async with asyncio.timeout(clients.timeout):
                    count = await client.message_count(self.queue)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                raise SourceResponseError(f"{subject}: not found at {self.server.display}") from exc
            except aiormq.exceptions.ChannelClosed as exc:  # ACCESS_REFUSED and the like
                raise SourceResponseError(f"{subject}: refused: {_reply(exc)}") from exc
            except TimeoutError as exc:
                await clients.discard(key)
                raise SourceTimeout(
                    f"{self.describe()}: no answer within {clients.timeout:g}s"
                ) from exc
            except _CONNECTION_ERRORS as exc:  # includes aiormq's "<Connection ...> closed"
                await clients.discard(key)
                if retry and client.used:
                    continue  # a connection that worked has died since: once more, on a new one
                lost = f"{self.describe()}: connection lost: {_reply(exc)}"
                raise SourceUnreachable(lost) from exc
            if count is None:
                raise SourceResponseError(f"{subject}: queue.declare-ok without a message count")
            return QueueStats(messages=count, ready=count)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _client(self, clients: Clients, key: tuple[str, AmqpServer]) -> AmqpClient:
        async def open_client() -> AmqpClient:
            return await connect(self.server, clients.timeout)

        return await clients.shared(key, open_client, _close)


async def connect(server: AmqpServer, within: float, name: str = CONNECTION_NAME) -> AmqpClient:
    """Open a connection, mapping every failure onto the ScalerError tree; ``name`` is what
    the server shows for it (the wake watcher's differs from the polls')."""
    where = f"AMQP {server.display}"
    context = tls_context(server.tls) if server.tls else None
    try:
        async with asyncio.timeout(within):
            connection = await aiormq.connect(
                server.url,
                context=context,
                client_properties={"connection_name": name},
            )
    except TimeoutError as exc:
        raise SourceTimeout(f"{where}: no answer within {within:g}s") from exc
    except aiormq.exceptions.ProbableAuthenticationError as exc:
        raise SourceResponseError(f"{where}: login refused (check username and password)") from exc
    except (aiormq.exceptions.AMQPError, ssl.SSLError, OSError) as exc:
        raise SourceUnreachable(f"{where}: {_reply(exc)}") from exc
    except pamqp.exceptions.PAMQPException as exc:
        # The server closes the handshake on an unknown vhost, or one the user may not use.
        raise SourceResponseError(
            f"{where}: connection refused for vhost {q(server.vhost)} "
            "(does it exist, and may this user access it?)"
        ) from exc
    return AmqpClient(connection)


CLOSE_TIMEOUT = 2.0


async def _close(client: AmqpClient) -> None:
    # A paused or dead server never answers Connection.Close; do not wait for it.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await client.close()


_USERINFO = re.compile(r"//[^/@\s]*@")


def _reply(exc: BaseException) -> str:
    """A library's error text, credentials masked (aiormq shows the user in a URL)."""
    text = str(exc) or type(exc).__name__
    return _USERINFO.sub("//***@", text.replace("\n", " "))[:300]
