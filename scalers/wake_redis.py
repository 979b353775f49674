"""Wake hints for ``redis`` lists: keyspace notifications, when the server sends them.

Notifications are off unless ``notify-keyspace-events`` has ``K`` (channel
``__keyspace@<db>__:<key>``, the message is the command) or ``E`` (channel
``__keyevent@<db>__:<command>``, the message is the key), and ``l`` (or ``A``) for list
commands. The watcher reads the setting first (``CONFIG GET``; when refused, as managed
services do, it subscribes anyway and hopes), then subscribes on one connection per server
and identity, whatever the databases. Pub/Sub reads nothing of the lists, so nothing is
consumed; notifications sent while disconnected are lost, so every (re)subscription hints.

As for NATS, a flood is muted at the server: a channel that has spoken is unsubscribed and
subscribed again :data:`MUTE_SECONDS` later, with a hint for what it serves: its key, or with
keyevent channels (``E`` without ``K``) every watched key of its database, so there a busy
database costs each idle trigger in it up to one extra poll a second; ``K`` is the better
setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.client import PubSub

from scalers.errors import quote
from scalers.redis_connection import RedisBackend, connection_pool
from scalers.wake import HintCallback, Topic, WakeUnavailable, Watcher, WatchOptions, finish

CLIENT_NAME = "metrics-adapter-wake"
"""How the watcher's connection shows in ``CLIENT LIST``."""
MUTE_SECONDS = 1.0
SHRINKING = frozenset({"lpop", "rpop", "ltrim", "lrem", "del", "expired", "evicted"})
"""Events that cannot mean new work; any other event of a watched key hints."""
LIST_GROWTH = ("lpush", "rpush", "linsert", "lset", "lmove", "rename_to", "restore")
"""The keyevent channels subscribed when only ``E`` is set: commands that add to a list."""

RedisTopic = tuple[int, str]
"""(database, key)"""


@dataclass(frozen=True, slots=True)
class RedisWatch:
    """One Redis server and identity (the database is the topic's: one connection serves all)."""

    backend: RedisBackend
    source_type: ClassVar[str] = "redis"

    @classmethod
    def of(cls, backend: RedisBackend) -> RedisWatch:
        return cls(dataclasses.replace(backend, db=0))

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return RedisWatcher(self, on_hint, options)

    def describe(self) -> str:
        return str(self.backend).rpartition("/")[0]


def notified(flags: str) -> tuple[bool, bool]:
    """``(keyspace, keyevent)``: which channels carry list events under ``flags``."""
    lists = "l" in flags or "A" in flags
    return lists and "K" in flags, lists and "E" in flags


def keyspace_channel(topic: RedisTopic) -> str:
    return f"__keyspace@{topic[0]}__:{topic[1]}"


def keyevent_channel(db: int, event: str) -> str:
    return f"__keyevent@{db}__:{event}"


class RedisWatcher(Watcher):
    key: RedisWatch

    def __init__(self, key: RedisWatch, on_hint: HintCallback, options: WatchOptions) -> None:
        super().__init__(key, on_hint, options)
        self._keyspace = True
        self._subscribed: set[str] = set()
        self._fired: dict[str, float] = {}

    async def session(self) -> None:
        pool = connection_pool(
            self.key.backend,
            timeout=self.options.timeout,
            socket_timeout=None,
            client_name=CLIENT_NAME,
        )
        client = redis.asyncio.Redis.from_pool(pool)
        pubsub: PubSub | None = None
        reader: asyncio.Task[None] | None = None
        self._subscribed.clear()
        self._fired.clear()
        try:
            self._keyspace = await self._check(client)
            pubsub = client.pubsub()
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            while True:
                fresh = await self._subscribe(pubsub)
                if reader is None and pubsub.connection is not None:
                    reader = asyncio.create_task(self._read(pubsub))
                self.caught_up(fresh)
                await self.changed_or(reader or idle, within=self._next_renewal())
        except redis.exceptions.AuthenticationError as exc:
            raise WakeUnavailable(f"authentication failed: {exc}") from exc
        except redis.exceptions.NoPermissionError as exc:  # SUBSCRIBE refused by an ACL
            raise WakeUnavailable(f"not permitted to subscribe: {exc}") from exc
        finally:
            await finish(_close(client, pubsub, reader), self.options.timeout)

    async def _check(self, client: redis.asyncio.Redis) -> bool:
        """Whether to watch the keyspace channels (else the keyevent ones); raise
        WakeUnavailable when the server sends no list notifications."""
        try:
            async with asyncio.timeout(self.options.timeout):
                answer: Mapping[Any, Any] = await client.config_get("notify-keyspace-events")
        except redis.exceptions.ResponseError:
            return True  # CONFIG refused (managed services, ACLs): subscribe and hope
        raw = next(iter(answer.values()), b"") if answer else b""
        flags = raw.decode() if isinstance(raw, bytes) else str(raw)
        keyspace, keyevent = notified(flags)
        if not keyspace and not keyevent:
            raise WakeUnavailable(
                f"notify-keyspace-events is {quote(flags)}: the server sends no list "
                "notifications (it needs K or E, with l or A, e.g. 'Kl')"
            )
        return keyspace

    def _channels(self) -> dict[str, set[Topic]]:
        """Each channel wanted now, with the topics it serves."""
        channels: dict[str, set[Topic]] = {}
        for topic in self.topics:
            assert isinstance(topic, tuple)
            if self._keyspace:
                channels.setdefault(keyspace_channel(topic), set()).add(topic)
            else:
                for event in LIST_GROWTH:
                    channels.setdefault(keyevent_channel(topic[0], event), set()).add(topic)
        return channels

    async def _subscribe(self, pubsub: PubSub) -> set[Topic]:
        wanted = self._channels()
        gone = self._subscribed - set(wanted) | self._subscribed & set(self._fired)
        now, fresh, new = time.monotonic(), set[Topic](), []
        for channel in set(wanted) - self._subscribed:
            if now < self._fired.get(channel, -MUTE_SECONDS) + MUTE_SECONDS:
                continue
            self._fired.pop(channel, None)
            new.append(channel)
            fresh |= wanted[channel]
        async with asyncio.timeout(self.options.timeout):
            if gone:
                await pubsub.unsubscribe(*gone)
            if new:
                await pubsub.subscribe(*new)
        self._subscribed = (self._subscribed - gone) | set(new)
        return fresh

    async def _read(self, pubsub: PubSub) -> None:
        """Hint for each notification of a watched key, and mute its channel."""
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None or message.get("type") != "message":
                continue
            channel, data = _text(message.get("channel")), _text(message.get("data"))
            if channel not in self._subscribed or channel in self._fired:
                continue  # sent before our UNSUBSCRIBE arrived
            if self._keyspace:
                db, _, key = channel.removeprefix("__keyspace@").partition("__:")
                if data in SHRINKING:
                    continue
            else:
                db, key = channel.removeprefix("__keyevent@").partition("__:")[0], data
            topic = (int(db), key)
            if topic not in self.topics:
                continue
            self.hint(topic)
            self._fired[channel] = time.monotonic()  # the session unsubscribes it
            self.poke()

    def _next_renewal(self) -> float | None:
        if not self._fired:
            return None
        return max(0.0, min(self._fired.values()) + MUTE_SECONDS - time.monotonic())


async def _close(
    client: redis.asyncio.Redis, pubsub: PubSub | None, reader: asyncio.Task[None] | None
) -> None:
    if reader is not None:
        reader.cancel()
        await asyncio.wait({reader})
    if pubsub is not None:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
