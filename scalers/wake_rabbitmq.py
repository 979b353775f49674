"""RabbitMQ wake hints: a passive ``queue.declare`` of each watched queue, every
:data:`EVERY` seconds, on one AMQP connection per server, vhost and login.

``queue.declare-ok`` carries the queue's ready-message count straight from the queue process,
with none of the management statistics' delay. A count above the last one seen is a hint:
messages were published since (a rise, not only 0 → 1, so that a trigger with an
``activationValue`` hears of the messages that take it over). A passive declare creates
nothing and touches no message: no ``basic.get``, no consumer, so delivery and redelivery
counts stay as they were, and the connection is the only thing the server sees of us. It needs
no permission on the queue, only access to the vhost: a refused login or vhost makes the
watcher unavailable (asked again every ``recheck`` s), and ``explain`` shows the server's reason.

A trigger in ``http`` mode names only the management API. RabbitMQ usually serves AMQP on the
same host, but on another port and often through another route (an ingress, a proxy) that the
management URL does not tell, and a poll of the management API after a hint would read counts
up to ``collect_statistics_interval`` old anyway: such a trigger gets no hints, and ``explain``
says so (:data:`HTTP_ONLY`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import ClassVar

import aiormq.exceptions

from scalers.errors import SourceResponseError, quote
from scalers.rabbitmq_client import CLOSE_TIMEOUT, AmqpClient, AmqpServer, connect
from scalers.wake import HintCallback, Topic, WakeUnavailable, Watcher, WatchOptions, finish

WAKE_CONNECTION_NAME = "metrics-adapter-wake"
"""What the server shows for the watcher's connection (the polls' is ``metrics-adapter``)."""
EVERY = 0.1
"""Seconds between two declares of one queue: the ~100 ms a hint may take."""
RECHECK_REFUSED = 5.0
"""Seconds before a queue the server refused (absent, exclusive, forbidden) is asked again:
each refusal closes the channel, which must be opened again."""
HTTP_ONLY = (
    "host is the management API (protocol http): the AMQP address hints need cannot be told "
    "from it, and its counts lag by seconds; an amqp:// host (protocol amqp) gets hints; "
    "polled only"
)


@dataclass(frozen=True, slots=True)
class RabbitMQWatch:
    """One wake watcher per AMQP server, vhost and login (:class:`AmqpServer` keeps the login
    out of its repr)."""

    server: AmqpServer
    source_type: ClassVar[str] = "rabbitmq"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return RabbitMQWatcher(self, on_hint, options)

    def describe(self) -> str:
        return f"AMQP {self.server.display}"


class RabbitMQWatcher(Watcher):
    """The session: every :data:`EVERY` s, each watched queue's count, compared with the last."""

    key: RabbitMQWatch

    async def session(self) -> None:
        try:
            client = await connect(self.key.server, self.options.timeout, WAKE_CONNECTION_NAME)
        except SourceResponseError as exc:  # login or vhost refused: not worth a fast retry
            raise WakeUnavailable(str(exc)) from exc
        counts: dict[Topic, int] = {}
        refused: dict[Topic, float] = {}  # queue → when it may be asked again
        watched: frozenset[Topic] | None = None
        try:
            while True:
                started = time.monotonic()
                wanted = self.topics
                if wanted != watched:
                    for gone in set(counts) - wanted:
                        del counts[gone]
                    for gone in set(refused) - wanted:
                        del refused[gone]
                    self.caught_up(wanted if watched is None else wanted - watched)
                    watched = wanted
                for queue in sorted(wanted, key=str):
                    if refused.get(queue, 0.0) > started:
                        continue
                    count = await self._count(client, queue)
                    if count is None:
                        counts.pop(queue, None)
                        refused[queue] = time.monotonic() + RECHECK_REFUSED
                        continue
                    was_refused = refused.pop(queue, None) is not None
                    previous = counts.get(queue)
                    counts[queue] = count
                    if previous is None and was_refused:
                        previous = 0  # a queue that appears with messages has news
                    if previous is not None and count > previous:
                        self.hint(queue)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, started + EVERY - time.monotonic())):
                        await self.changed()
        finally:
            await finish(client.close(), CLOSE_TIMEOUT)

    async def _count(self, client: AmqpClient, queue: Topic) -> int | None:
        """The queue's ready messages, or None if the server refused (and why is recorded);
        a lost connection raises, which ends the session."""
        name = str(queue)
        if not client.usable:
            raise ConnectionError("the AMQP connection closed")
        try:
            async with asyncio.timeout(self.options.timeout):
                count = await client.message_count(name)
        except aiormq.exceptions.ChannelNotFoundEntity:
            self.refuse(queue, f"queue {quote(name)} does not exist")
            return None
        except aiormq.exceptions.ChannelClosed as exc:  # ACCESS_REFUSED, RESOURCE_LOCKED
            self.refuse(queue, f"queue {quote(name)}: the server refused: {str(exc)[:200]}")
            return None
        self.accept(queue)
        return count or 0
