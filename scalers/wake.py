"""Wake hints: how a trigger type says what can tell us, early, that its source has work.

A poll every ``pollingInterval`` is the truth; a hint is only "poll this now". So a trigger
that can be woken names a :class:`Wake`: the *watcher* (one connection per distinct source,
server + identity, shared by every trigger on it) and the *topic* on that connection
(NATS: account + stream; Redis: db + key; Kafka: topic; RabbitMQ: vhost + queue). The
service opens the watcher while some trigger on it is idle, tells it the topics to watch,
and polls the queries behind a topic when the watcher calls back with it. A lost, late or
spurious hint changes nothing but latency, so a watcher may hint generously (after every
(re)connect, for instance, since events were missed meanwhile) but must never consume,
acknowledge, delay or create anything on the server.

A trigger type opts in with a ``wake()`` method on its scaler (see :func:`wake_of`)::

    @dataclass(frozen=True, slots=True)
    class RedisWatch:                      # the WatcherKey: equal keys share one watcher
        host: str
        port: int
        source_type: ClassVar[str] = "redis"

        def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
            return RedisWatcher(self, on_hint, options)

        def describe(self) -> str:         # for logs and explain: never a secret
            return f"redis://{self.host}:{self.port}"

    class RedisScaler(Scaler[int]):
        def wake(self) -> Wake:
            return Wake(RedisWatch(host, port), topic=(db, key))

    class RedisWatcher(Watcher):           # the connection: backoff and health come from Watcher
        async def session(self) -> None:
            conn = await connect(...)      # raise WakeUnavailable("...") if it can never hint
            while True:
                wanted = self.topics       # the set to watch now, changed by the service
                await subscribe(conn, wanted)
                self.caught_up(wanted)     # connected; hints every topic once (missed events)
                await self.changed_or(reader)  # returns on a change, raises on loss
            ...
                self.hint(topic)           # on a notification: rate limits are the service's

A watcher runs :meth:`Watcher.run` in a task of the service's: it calls :meth:`Watcher.session`
again after a failure, with a bounded, jittered exponential backoff, and after
:class:`WakeUnavailable` (the server cannot give hints: notifications off, authorization
required) only every :attr:`WatchOptions.recheck` seconds. Its :attr:`Watcher.health` says
how it is doing, for ``/metrics`` and ``explain``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from scalers.cancellation import raise_a_swallowed_cancel

log = logging.getLogger(__name__)

Topic = Hashable
"""What a watcher watches on its connection; equal topics are watched once."""
HintCallback = Callable[[Topic], None]
"""Called, on the watcher's task, with the topic that may have new work. Must not block."""

CONNECTING, CONNECTED, BACKOFF, UNAVAILABLE = "connecting", "connected", "backoff", "unavailable"
STATES = (CONNECTING, CONNECTED, BACKOFF, UNAVAILABLE)


class WakeUnavailable(Exception):
    """The source cannot give hints to us (notifications disabled, access refused): the
    message says why, for ``explain``; the watcher checks again every ``recheck`` seconds."""


@dataclass(frozen=True, slots=True)
class WatchOptions:
    timeout: float = 3.0
    """Seconds any one call to the server (connect, subscribe, a config read) may take."""
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    """Reconnect delays double from the first to the last, each one drawn in [d/2, d]."""
    recheck: float = 60.0
    """Seconds between attempts once the source said it cannot give hints."""
    stable: float = 10.0
    """A session that lasted this long resets the backoff to its first delay."""
    rng: random.Random = field(default_factory=random.Random, compare=False)


class WatcherKey(Protocol):
    """One connection to one source: hashable, equal for triggers that can share it."""

    @property
    def source_type(self) -> str:
        """The trigger type, for the ``source_type`` label: ``nats-jetstream``, ``redis``."""
        ...

    def __hash__(self) -> int: ...

    def __eq__(self, other: object) -> bool: ...

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        """A watcher for this source, not yet running."""
        ...

    def describe(self) -> str:
        """Where it connects, without secrets: ``nats://127.0.0.1:4222``."""
        ...


@dataclass(frozen=True, slots=True)
class Wake:
    """What can wake one trigger: its watcher and its topic there."""

    watcher: WatcherKey
    topic: Topic


@dataclass(frozen=True, slots=True)
class NoWake:
    """Why a trigger gets no hints, in words for ``explain``."""

    reason: str


NO_SIGNAL = "its source has no signal of new work that does not consume it; polled only"


def wake_of(scaler: object) -> Wake | NoWake:
    """The trigger's :class:`Wake`, from its scaler's ``wake()`` method when it has one."""
    wake: Callable[[], Wake | NoWake] | None = getattr(scaler, "wake", None)
    if wake is None:
        return NoWake(NO_SIGNAL)
    return wake()


@dataclass(frozen=True, slots=True)
class WatcherHealth:
    state: str
    """One of :data:`STATES`."""
    last_error: str | None
    """Why the last session ended, or why the source cannot give hints (``unavailable``)."""
    hints: int
    """Hints given since the watcher started."""
    topics: int
    topic_problems: Mapping[Topic, str]
    """Topics the source refused to watch (a subject we may not subscribe to), and why."""


class Watcher(ABC):
    """One connection to one source, watching a changing set of topics.

    Subclasses write :meth:`session`; this class runs it again after failures, keeps the
    topics the service wants, and counts what happens.
    """

    def __init__(self, key: WatcherKey, on_hint: HintCallback, options: WatchOptions) -> None:
        self.key = key
        self.options = options
        self._on_hint = on_hint
        self._topics: frozenset[Topic] = frozenset()
        self._changed = asyncio.Event()
        self._state = CONNECTING
        self._error: str | None = None
        self._hints = 0
        self._problems: dict[Topic, str] = {}

    # The service's side.

    @property
    def topics(self) -> frozenset[Topic]:
        return self._topics

    def watch(self, topics: Iterable[Topic]) -> None:
        """Watch exactly ``topics`` from now on; the session is told through :meth:`changed`."""
        wanted = frozenset(topics)
        if wanted != self._topics:
            self._topics = wanted
            for gone in set(self._problems) - wanted:
                del self._problems[gone]
            self._changed.set()

    @property
    def health(self) -> WatcherHealth:
        return WatcherHealth(
            self._state, self._error, self._hints, len(self._topics), dict(self._problems)
        )

    async def run(self) -> None:
        """Run sessions until cancelled, backing off between them."""
        delay = self.options.backoff_initial
        while True:
            self._state = CONNECTING
            started = time.monotonic()
            try:
                await self.session()
                error = "the connection ended"
            except WakeUnavailable as exc:
                error = str(exc)
                self._state = UNAVAILABLE
            except Exception as exc:  # every failure means: connect again, later
                raise_a_swallowed_cancel(exc)
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._state == UNAVAILABLE:
                wait = self.options.recheck
            else:
                self._state = BACKOFF
                if time.monotonic() - started >= self.options.stable:
                    delay = self.options.backoff_initial
                wait = self.options.rng.uniform(delay / 2, delay)
                delay = min(delay * 2, self.options.backoff_max)
            if error != self._error:
                log.info(
                    "wake watcher %s: %s",
                    self._state,
                    error,
                    extra={"source": self.key.describe(), "sourceType": self.key.source_type},
                )
            self._error = error
            await self.pause(wait)

    async def pause(self, seconds: float) -> None:
        """Wait between two sessions (a seam for tests, which count the waits)."""
        await asyncio.sleep(seconds)

    # The session's side.

    @abstractmethod
    async def session(self) -> None:
        """Connect, watch :attr:`topics` (again after each :meth:`changed`), and return or
        raise when the connection is lost; raise :class:`WakeUnavailable` when the source
        cannot give hints. Cancelled when the service closes the watcher: clean up in
        ``finally``."""

    def caught_up(self, topics: Iterable[Topic]) -> None:
        """The session now watches ``topics``: mark it connected, and hint each of them once,
        since their events before this moment were not seen."""
        if self._state != CONNECTED:
            self._state, self._error = CONNECTED, None
        for topic in topics:
            self.hint(topic)

    def hint(self, topic: Topic) -> None:
        """New work may exist on ``topic``."""
        if topic not in self._topics:
            return  # a late notification for a topic no longer watched
        self._hints += 1
        try:
            self._on_hint(topic)
        except Exception:
            log.exception("wake hint callback failed", extra={"source": self.key.describe()})

    def refuse(self, topic: Topic, reason: str) -> None:
        """The source will not let us watch ``topic``; ``explain`` says ``reason``."""
        self._problems[topic] = reason

    def accept(self, topic: Topic) -> None:
        self._problems.pop(topic, None)

    def poke(self) -> None:
        """Make :meth:`changed` return: the session has work of its own (a timer, a
        subscription to renew), done where it handles a change of topics."""
        self._changed.set()

    async def changed(self) -> None:
        """Return once :meth:`watch` has changed the topics (or :meth:`poke` was called)
        since the last call."""
        await self._changed.wait()
        self._changed.clear()

    async def changed_or(self, lost: asyncio.Future[Any], within: float | None = None) -> None:
        """Return on a change of topics, a :meth:`poke`, or after ``within`` seconds; if
        ``lost`` (the session's reader task, say) ends first, raise what it raised, or
        ConnectionError: the session is over. ``lost`` is only waited on, never cancelled."""
        raise_a_swallowed_cancel()
        change = asyncio.ensure_future(self.changed())
        try:
            await asyncio.wait({change, lost}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not change.done():
                change.cancel()
                await asyncio.wait({change})
        if not lost.done():
            return
        if not lost.cancelled() and (failure := lost.exception()) is not None:
            raise failure
        raise ConnectionError("the connection to the server closed")


async def finish(closing: Awaitable[object], within: float) -> None:
    """Await a session's clean-up (closing its connection) to its end even when cancelled
    meanwhile: the service cancels a watcher it closes, and again when it stops, and a close
    cut short leaves the client's tasks and sockets behind. Bounded by ``within``; a cancel
    received meanwhile is raised after; a failed close is swallowed (nothing to wait for)."""
    task = asyncio.ensure_future(closing)
    cancelled = False
    deadline = time.monotonic() + within
    while not task.done() and time.monotonic() < deadline:
        try:
            await asyncio.wait({task}, timeout=deadline - time.monotonic())
        except asyncio.CancelledError:
            cancelled = True
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
    if cancelled:
        raise asyncio.CancelledError
