"""Wake hints, the service's side: a watcher is open only while a target on it is idle.

Each trigger whose scaler names a :class:`~scalers.wake.Wake` is *watched* while its object
is idle: no trigger active (under scalingModifiers, the composite metric not active), a
failing or not yet read trigger included, since that too may be a target at zero. The poller
tells us after each reading and each change of an object's triggers, so an object that turns
active stops being watched at the poll that saw it, and one that turns idle starts then.

Watchers are shared: one per distinct :class:`~scalers.wake.WatcherKey` (server + identity),
watching the union of the topics of its watched triggers, opened when the first topic comes
and closed with the last. A hint on a topic asks the poller to poll the queries of the triggers
watched there (:meth:`~metrics_adapter.metrics.poller.Poller.poll_now`: single-flight with
the schedule, at most one extra poll per query per second). It never sets a value nor decides
anything: the poll does, and the activator acts on the poll's reading as on any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from scalers.base import Query
from scalers.wake import (
    CONNECTED,
    CONNECTING,
    UNAVAILABLE,
    NoWake,
    Topic,
    Wake,
    Watcher,
    WatcherHealth,
    WatcherKey,
    WatchOptions,
    wake_of,
)

log = logging.getLogger(__name__)

STATE_REFRESH_SECONDS = 1.0
"""How often ``metrics_adapter_wake_watchers`` is brought up to date."""

_Member = tuple[ObjectRef, str]
"""A watched trigger: its object and metric name."""


@dataclass(frozen=True, slots=True)
class _Watched:
    member: _Member
    key: WatcherKey
    topic: Topic
    query: Query[Any]


@dataclass(eq=False)
class _Running:
    watcher: Watcher
    task: asyncio.Task[None] | None = None


class WakeHints:
    """The watchers of one process, opened and closed as its targets go idle and active."""

    def __init__(
        self,
        poller: Poller,
        telemetry: Telemetry,
        options: WatchOptions | None = None,
        *,
        acting: Callable[[], bool] = lambda: True,
    ) -> None:
        """``acting``: whether this replica is the one that activates (the leader); the
        others poll and serve but watch nothing. Call :meth:`reconcile_all` when it changes."""
        self.poller = poller
        self.telemetry = telemetry
        self.options = options or WatchOptions(timeout=poller.timeout)
        self._acting = acting
        self._by_object: dict[ObjectRef, frozenset[_Watched]] = {}
        self._topics: dict[WatcherKey, dict[Topic, dict[_Member, Query[Any]]]] = {}
        self._watchers: dict[WatcherKey, _Running] = {}
        self._group: asyncio.TaskGroup | None = None
        poller.listeners.append(self._on_reading)
        poller.membership.append(self.reconcile)
        for so in poller.objects():
            self.reconcile(so)

    # What is watched.

    def _on_reading(self, bound: BoundTrigger, _: Reading) -> None:
        self.reconcile(bound.so)

    def reconcile_all(self) -> None:
        for so in {*self.poller.objects(), *self._by_object}:
            self.reconcile(so)

    def reconcile(self, so: ObjectRef) -> None:
        """Watch the wakeable triggers of ``so`` if it is idle, none of them otherwise."""
        wanted: set[_Watched] = set()
        if self._acting() and self.idle(so):
            for bound in self.poller.triggers(so):
                wake = wake_of(bound.scaler)
                if isinstance(wake, Wake):
                    member = (so, bound.metric_name)
                    wanted.add(_Watched(member, wake.watcher, wake.topic, bound.scaler.query))
        before = self._by_object.get(so, frozenset())
        if wanted == before:
            return
        if wanted:
            self._by_object[so] = frozenset(wanted)
        else:
            self._by_object.pop(so, None)
        touched: set[WatcherKey] = set()
        for gone in before - wanted:
            topics = self._topics.get(gone.key, {})
            members = topics.get(gone.topic, {})
            members.pop(gone.member, None)
            if not members:
                topics.pop(gone.topic, None)
            touched.add(gone.key)
        for new in wanted - before:
            topics = self._topics.setdefault(new.key, {})
            topics.setdefault(new.topic, {})[new.member] = new.query
            touched.add(new.key)
        for key in touched:
            self._refresh(key)

    def idle(self, so: ObjectRef) -> bool:
        """No trigger of ``so`` is active (under scalingModifiers: the composite is not)."""
        composed = self.poller.store.composite(so)
        if composed is not None:
            return not composed.reading.active
        return not any(r.active for r in self.poller.store.readings(so).values())

    def _refresh(self, key: WatcherKey) -> None:
        topics = self._topics.get(key)
        running = self._watchers.get(key)
        if not topics:
            self._topics.pop(key, None)
            if running is not None:
                del self._watchers[key]
                if running.task is not None:
                    running.task.cancel()
                    log.info("wake watcher closed: no idle target on it", extra=_fields(key))
            return
        if running is None:
            running = self._watchers[key] = _Running(self._open(key))
        running.watcher.watch(topics)
        if running.task is None and self._group is not None:
            self._start(key, running)

    def _start(self, key: WatcherKey, running: _Running) -> None:
        assert self._group is not None
        running.task = self._group.create_task(running.watcher.run())
        log.info("wake watcher opened", extra=_fields(key))

    def _open(self, key: WatcherKey) -> Watcher:
        return key.open(lambda topic: self._hint(key, topic), self.options)

    def _hint(self, key: WatcherKey, topic: Hashable) -> None:
        self.telemetry.wake_hint(key.source_type)
        for query in set(self._topics.get(key, {}).get(topic, {}).values()):
            self.poller.poll_now(query, key.source_type)

    # Running.

    async def run(self) -> None:
        """Run the watchers until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for key, running in self._watchers.items():
                    self._start(key, running)
                while True:
                    self.telemetry.wake_watcher_states(self.states())
                    await asyncio.sleep(STATE_REFRESH_SECONDS)
        finally:
            self._group = None
            for running in self._watchers.values():
                running.task = None
            self.telemetry.wake_watcher_states({})

    # Health.

    def states(self) -> Counter[tuple[str, str]]:
        """Open watchers by ``(source_type, state)``."""
        return Counter(
            (key.source_type, running.watcher.health.state)
            for key, running in self._watchers.items()
        )

    def health(self, key: WatcherKey) -> WatcherHealth | None:
        running = self._watchers.get(key)
        return None if running is None else running.watcher.health

    async def probe(self, within: float) -> None:
        """Run the watchers of the idle targets until each has connected or failed, for at
        most ``within`` seconds, then close them: what ``explain`` reports, from here."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for key, running in self._watchers.items():
                self._start(key, running)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    while True:
                        states = {r.watcher.health.state for r in self._watchers.values()}
                        if CONNECTING not in states:
                            break
                        await asyncio.sleep(0.02)
            for running in self._watchers.values():
                if running.task is not None:
                    running.task.cancel()
        self._group = None

    def explain(self, bound: BoundTrigger) -> str:
        """Whether ``bound`` gets wake hints now, and if not why, in one line."""
        wake = wake_of(bound.scaler)
        if isinstance(wake, NoWake):
            return f"no: {wake.reason}"
        where = wake.watcher.describe()
        health = self.health(wake.watcher)
        member = (bound.so, bound.metric_name)
        if member not in self._topics.get(wake.watcher, {}).get(wake.topic, {}):
            return f"not now: the target is active (polled); from {where} once idle"
        if health is None or (health.state == CONNECTING and health.last_error is None):
            return f"from {where} while the target is idle (not tried from here)"
        return describe_health(health, wake.topic, where)


def describe_health(health: WatcherHealth, topic: Topic, where: str) -> str:
    """One trigger's hints, from its watcher's health, for ``explain``."""
    problem = health.topic_problems.get(topic)
    if health.state == UNAVAILABLE:
        return f"no: {where}: {health.last_error} (polled only)"
    if problem is not None:
        return f"no: {where}: {problem} (polled only)"
    if health.state == CONNECTED:
        return f"yes: from {where} ({health.hints} so far)"
    error = f": {health.last_error}" if health.last_error else ""
    return f"not now: {health.state} to {where}{error} (polled meanwhile)"


def _fields(key: WatcherKey) -> dict[str, object]:
    return {"source": key.describe(), "sourceType": key.source_type}
