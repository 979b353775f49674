"""The poller: one refresh loop per distinct query, feeding the MetricStore.

Triggers that ask the same upstream question (equal :class:`~scalers.base.Query`) share
one loop, so the source sees one request per interval however many triggers and HPA
requests there are. The first poll runs right away (spread over a second, and paced at
:data:`FIRST_POLLS_PER_SECOND` when many loops begin at once); the second lands at a random
phase of the interval, and then the loop keeps a fixed period, so loops
never tick in lockstep and requests per interval stay exact. Every request has a timeout,
and one slow source only ever delays its own loop.

A wake hint (:meth:`Poller.poll_now`) makes a loop poll before its time: a poll that starts
after the hint, never one already out (its answer may predate the new work), and at most one
such extra poll per query per :data:`EXTRA_POLL_GAP`, however many hints arrive. The fixed
schedule is not moved by it.

When polls cannot keep up (more due than the clients let out at once, a starved event loop),
a poll waits for its turn with its timeout stopped (:mod:`scalers.turns`) and its value gets
older instead of failing. :meth:`Poller.check_backlog`, every second, bounds how old: a query
not answered for ``stale_intervals`` polling intervals has each trigger's value become an
error (once per interval, so fallback counts as for any failed poll), and the backlog is
reported (:mod:`~metrics_adapter.metrics.backlog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import operator
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from metrics_adapter.binding.composite import COMPOSITE_METRIC, Composite
from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.config.settings import STALE_INTERVALS
from metrics_adapter.metrics.backlog import Backlog, BacklogReport
from metrics_adapter.metrics.composite import Outcome
from metrics_adapter.metrics.store import Composed, MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.model.scaled_job import ScaledJobRef
from scalers.base import Query, is_active, split
from scalers.clients import DEFAULT_TIMEOUT, Clients
from scalers.errors import ScalerError, SourceTimeout
from scalers.flight import InCaller
from scalers.turns import poll_clock

log = logging.getLogger(__name__)

STARTUP_SPREAD_SECONDS = 1.0
FIRST_POLLS_PER_SECOND = 1000.0
"""New loops' first polls are paced at this rate: 10,000 objects arriving at once (a start,
a re-list) are first polled over 10 s instead of all queued in one second, where each poll
waiting for a turn holds a task and its frames (kilobytes each, and the heap they grew stays
with the process). About what one core polls in a second anyway (~1 ms of CPU a poll)."""
EXTRA_POLL_GAP = 1.0
"""Seconds between two polls of one query made for wake hints."""
BACKLOG_CHECK_SECONDS = 1.0
FIRST_POLLS_CHECK_SECONDS = 0.05
_NO_ANSWER = object()
_JOINED = "(a trigger joined)"
"""The "hint" of a trigger that joined a loop whose last answer could not measure it."""
TriggerKey = tuple[ObjectRef, str]
_ANSWERED_AT = operator.attrgetter("answered_at")
_INTERVAL = operator.attrgetter("interval")


@dataclass(eq=False, slots=True)
class _Loop:
    """One distinct query and the triggers that share it. No task of its own: the poller's
    schedule starts a task for each poll and forgets it when the poll ends (10,000 queries
    are 10,000 heap entries, not 10,000 sleeping tasks with their timers and events)."""

    query: Query[Any]
    triggers: dict[TriggerKey, BoundTrigger] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    """The poll in flight, if any: at most one per loop."""
    due: float = 0.0
    """When the next scheduled poll starts (monotonic)."""
    first: bool = True
    """No scheduled poll has run yet."""
    scheduled: float | None = None
    """When the schedule's heap next starts a poll of this loop; None: not in the heap."""
    last_answer: Any = _NO_ANSWER
    hinted: str | None = None
    """The source type of a wake hint not yet answered by a poll started after it."""
    last_extra: float = -EXTRA_POLL_GAP
    answered_at: float = field(default_factory=time.monotonic)
    """When a poll last ended (a value or an error), or the loop began (monotonic)."""
    next_stale: float = 0.0
    """When the loop's staleness may next count as a failed poll (monotonic)."""
    stale: bool = False
    """Its values are errors for staleness: the next answer recovers them without a log line
    each (the backlog report says so)."""

    interval: float = 0.0
    """The shortest pollingInterval of its triggers (:meth:`retime` keeps it)."""

    def retime(self) -> None:
        """Its triggers changed: their shortest interval is its interval."""
        if self.triggers:
            self.interval = min(t.polling_interval for t in self.triggers.values())

    def wake_at(self) -> float:
        """When it next wants a poll: its schedule, or sooner for a wake hint."""
        if self.hinted is not None:
            return min(self.due, self.last_extra + EXTRA_POLL_GAP)
        return self.due

    polled: bool = False
    """A poll of it has ended, with a value or an error."""

    def answered(self) -> bool:
        """A poll ended, with a value or an error: the age starts again. Whether its values
        were errors for staleness until now."""
        was_stale, self.stale = self.stale, False
        self.answered_at = time.monotonic()
        self.polled = True
        return was_stale


class Poller:
    def __init__(
        self,
        store: MetricStore,
        clients: Clients,
        telemetry: Telemetry,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stale_intervals: float = STALE_INTERVALS,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.clients = clients
        self.telemetry = telemetry
        self.timeout = timeout
        self.stale_intervals = stale_intervals
        self.backlog = BacklogReport(telemetry, stale_intervals)
        telemetry.poll_ages_from(self.ages)
        self._rng = rng or random.Random()
        self._now = now
        self._loops: dict[Query[Any], _Loop] = {}
        self._by_object: dict[ObjectRef, tuple[BoundTrigger, ...]] = {}
        self._inflight: InCaller[Query[Any], Any] = InCaller()
        """Queries being asked now: by their loop, and by ``poll_all`` or a test meanwhile."""
        self._group: asyncio.TaskGroup | None = None
        self._heap: list[tuple[float, int, _Loop]] = []
        """Loops by when they next want a poll; an entry whose loop has moved on is skipped."""
        self._order = itertools.count()
        self._first_slot = 0.0
        """When the next new loop's first poll may start (monotonic)."""
        self._wake = asyncio.Event()
        """Set when the heap's first entry became earlier than the dispatcher sleeps for."""
        self.listeners: list[Callable[[BoundTrigger, Reading], None]] = []
        self.membership: list[Callable[[ObjectRef], None]] = []
        """Called with an object whose triggers were set or removed."""

    @property
    def running(self) -> bool:
        return self._group is not None

    @property
    def query_count(self) -> int:
        return len(self._loops)

    # Membership.

    def set_triggers(
        self, so: ObjectRef, triggers: Sequence[BoundTrigger], composite: Composite | None = None
    ) -> None:
        """Make ``triggers`` the polled triggers of ``so``, and ``composite`` the metric
        composed of them (scalingModifiers); unchanged queries keep their loop."""
        old = self._by_object.get(so, ())
        self._by_object[so] = tuple(triggers)
        if self.store.composite(so) is not None and composite is None:
            self.telemetry.forget_composite(so)
        self.store.register(so, [t.metric_name for t in triggers], composite)
        for bound in triggers:
            loop = self._loops.get(bound.scaler.query)
            new = loop is None
            if loop is None:
                loop = self._loops[bound.scaler.query] = _Loop(bound.scaler.query)
            loop.triggers[(so, bound.metric_name)] = bound
            loop.retime()
            if new and self._group is not None:  # else run() begins every loop
                self._begin(loop, time.monotonic())
            elif loop.last_answer is not _NO_ANSWER:
                self._join(loop, bound)
        kept = {(t.scaler.query, t.metric_name) for t in triggers}
        for bound in old:
            if (bound.scaler.query, bound.metric_name) not in kept:
                self._detach(so, bound)
        self._changed(so)

    def _join(self, loop: _Loop, bound: BoundTrigger) -> None:
        """A trigger joining a loop that has answered: measured from that answer, without a
        request, when it can be. An answer that cannot measure it may predate what it reads
        (a stream created with the object, a shared /jsz read before): rather than an error
        from an answer older than the trigger, the loop polls again soon, as for a wake hint
        (a poll started after now, at most one per EXTRA_POLL_GAP), and that poll decides."""
        try:
            bound.scaler.measure(loop.last_answer)
        except Exception:
            if loop.hinted is None:
                loop.hinted = _JOINED
                self._schedule(loop)
            return
        self._measure(bound, loop.last_answer, latency=0.0)

    def remove(self, so: ObjectRef) -> None:
        for bound in self._by_object.pop(so, ()):
            self._detach(so, bound)
        if self.store.composite(so) is not None:
            self.telemetry.forget_composite(so)
        self.store.unregister(so)
        self._changed(so)

    def _changed(self, so: ObjectRef) -> None:
        for listener in self.membership:
            try:
                listener(so)
            except Exception:
                log.exception("membership listener failed", extra={"object": str(so)})

    def _detach(self, so: ObjectRef, bound: BoundTrigger) -> None:
        self.telemetry.forget(bound)
        loop = self._loops.get(bound.scaler.query)
        if loop is None:
            return
        loop.triggers.pop((so, bound.metric_name), None)
        loop.retime()
        if not loop.triggers:
            del self._loops[loop.query]
            loop.scheduled = None
            if loop.task is not None:
                loop.task.cancel()

    def triggers(self, so: ObjectRef) -> tuple[BoundTrigger, ...]:
        return self._by_object.get(so, ())

    def objects(self) -> list[ObjectRef]:
        """The objects with polled triggers."""
        return list(self._by_object)

    # Running.

    async def run(self) -> None:
        """Poll until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                now = time.monotonic()
                for loop in self._loops.values():
                    self._begin(loop, now)
                group.create_task(self._check_backlog_forever())
                await self._dispatch_forever(group)
        finally:
            self._group = None
            self._heap.clear()
            for loop in self._loops.values():
                loop.task = loop.scheduled = None

    async def _check_backlog_forever(self) -> None:
        while True:
            await asyncio.sleep(BACKLOG_CHECK_SECONDS)
            self.check_backlog(time.monotonic())

    def _begin(self, loop: _Loop, now: float) -> None:
        """Schedule a new loop's first poll: spread over a second, and paced at
        :data:`FIRST_POLLS_PER_SECOND` with the other new loops."""
        loop.first = True
        spread = now + self._rng.uniform(0, min(STARTUP_SPREAD_SECONDS, loop.interval))
        slot = max(now, self._first_slot)
        self._first_slot = slot + 1 / FIRST_POLLS_PER_SECOND
        loop.due = max(spread, slot)
        self._schedule(loop)

    def _schedule(self, loop: _Loop) -> None:
        """Put ``loop`` in the heap for its :meth:`_Loop.wake_at`, unless it is already due
        sooner, is polling now (its poll reschedules it), or is gone."""
        if self._group is None or loop.task is not None or self._loops.get(loop.query) is not loop:
            return
        when = loop.wake_at()
        if loop.scheduled is not None and loop.scheduled <= when:
            return
        loop.scheduled = when
        heapq.heappush(self._heap, (when, next(self._order), loop))
        if self._heap[0][2] is loop:
            self._wake.set()

    async def _dispatch_forever(self, group: asyncio.TaskGroup) -> None:
        """Start each loop's poll when it is due: one task for the schedule, and one per poll
        in flight."""
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                when, _, loop = heapq.heappop(self._heap)
                if loop.scheduled != when or self._loops.get(loop.query) is not loop:
                    continue  # rescheduled sooner since, or removed
                loop.scheduled = None
                loop.task = group.create_task(self._turn(loop))
            self._wake.clear()
            wait = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _turn(self, loop: _Loop) -> None:
        """The poll the loop is due for (a wake hint's or its schedule's), then its next."""
        try:
            now = time.monotonic()
            if loop.hinted is not None and now >= loop.last_extra + EXTRA_POLL_GAP:
                if loop.hinted is not _JOINED:
                    self.telemetry.wake_poll(loop.hinted)
                loop.last_extra = now
                await self._poll_loop(loop)
            elif now >= loop.due:
                await self._poll_loop(loop)
                if loop.first:  # the second poll at a random phase of the interval, then fixed
                    loop.first = False
                    loop.due = time.monotonic() + self._rng.uniform(0, loop.interval)
                else:  # fixed period from the schedule, not from the end of the poll: no drift
                    loop.due = max(loop.due + loop.interval, time.monotonic())
        finally:
            loop.task = None
        self._schedule(loop)

    async def _poll_loop(self, loop: _Loop) -> None:
        """A poll of the loop's query, which answers every hint received before it starts."""
        loop.hinted = None
        await self._poll_guarded(loop.query)

    def poll_now(self, query: Query[Any], source_type: str) -> bool:
        """Poll ``query`` soon, for a wake hint from a ``source_type`` watcher: the next poll
        of its loop that starts after now, at once unless the query had such an extra poll
        less than :data:`EXTRA_POLL_GAP` ago. False when nothing polls ``query``."""
        loop = self._loops.get(query)
        if loop is None:
            return False
        if loop.hinted is None:
            loop.hinted = source_type
            self._schedule(loop)
        return True

    async def poll_all(self) -> None:
        """Ask every distinct query once, concurrently, outside the schedule (``explain``)."""
        await asyncio.gather(*(self._poll_guarded(query) for query in list(self._loops)))

    async def _poll_guarded(self, query: Query[Any]) -> None:
        try:
            await self.poll(query)
        except Exception:  # one bad poll must not end the TaskGroup, and every other loop
            log.exception("poll failed unexpectedly", extra={"query": query.describe()})

    async def poll(self, query: Query[Any]) -> None:
        """Ask ``query`` once and record the result for every trigger that shares it."""
        loop = self._loops.get(query)
        if loop is None:
            return
        started = time.monotonic()
        try:
            answer = await self.fetch(query)
        except ScalerError as exc:
            loop.answered()
            for bound in list(loop.triggers.values()):
                self._fail(bound, str(exc))
            return
        except Exception as exc:  # a scaler bug must not stop the loop, nor read as a zero
            loop.answered()
            log.exception("query failed unexpectedly", extra={"query": query.describe()})
            for bound in list(loop.triggers.values()):
                self._fail(bound, f"internal error: {type(exc).__name__}: {exc}")
            return
        loop.last_answer = answer
        quiet = loop.answered()
        latency = loop.answered_at - started
        for bound in list(loop.triggers.values()):
            self._measure(bound, answer, latency, quiet=quiet)

    async def fetch(self, query: Query[Any]) -> Any:
        """Run ``query`` with the timeout; concurrent callers of one query share one request,
        made in the task of the first (cancelled with it: then one still waiting asks anew)."""
        return await self._inflight.do(query, lambda: self._ask(query))

    async def _ask(self, query: Query[Any]) -> Any:
        try:
            async with poll_clock(self.timeout):
                return await query.run(self.clients)
        except TimeoutError:
            raise SourceTimeout(f"{query.describe()}: no answer within {self.timeout:g}s") from None

    async def first_polls(self) -> int:
        """Wait until every query known now has been polled once (a value or an error), at
        most as long as their paced first polls take and one timeout more: a replica that
        turns ready before then has the aggregator send it reads it can only answer with
        "no value yet". The queries still unpolled when the bound passed (0: none)."""
        waiting = [loop for loop in self._loops.values() if not loop.polled]
        now = time.monotonic()
        paced = (
            max(self._first_slot - now, 0.0)
            if self.running
            else len(waiting) / FIRST_POLLS_PER_SECOND
        )
        deadline = now + paced + STARTUP_SPREAD_SECONDS + self.timeout + BACKLOG_CHECK_SECONDS
        while True:
            waiting = [
                loop for loop in waiting if not loop.polled and self._loops.get(loop.query) is loop
            ]
            if not waiting or time.monotonic() >= deadline:
                return len(waiting)
            await asyncio.sleep(FIRST_POLLS_CHECK_SECONDS)

    # Backlog.

    def overdue_after(self, interval: float) -> float:
        """Seconds a query of ``interval`` may go unanswered while polls keep up: its interval,
        a timed-out poll, and the backlog check's own period."""
        return interval + self.timeout + BACKLOG_CHECK_SECONDS

    def stale_after(self, interval: float) -> float:
        """Seconds a query of ``interval`` may go unanswered before its value is an error:
        ``stale_intervals`` intervals, and never less than :meth:`overdue_after`."""
        return max(self.stale_intervals * interval, self.overdue_after(interval))

    def ages(self) -> list[tuple[BoundTrigger, float]]:
        """Each trigger and the seconds since its query was last answered."""
        now = time.monotonic()
        return [
            (bound, now - loop.answered_at)
            for loop in self._loops.values()
            for bound in loop.triggers.values()
        ]

    def check_backlog(self, now: float) -> Backlog:
        """Count the queries whose polls are behind; make the values of those unanswered past
        :meth:`stale_after` errors (once per interval each); report the backlog."""
        loops = self._loops.values()
        if loops:  # the usual second: none overdue, told by two passes in C, not one in Python
            oldest = now - min(map(_ANSWERED_AT, loops))
            if oldest <= self.overdue_after(min(map(_INTERVAL, loops))):
                backlog = Backlog(len(self._loops), 0, 0, max(oldest, 0.0))
                self.backlog.report(backlog, now)
                return backlog
        overdue = stale = 0
        oldest = 0.0
        for loop in list(loops):
            interval = loop.interval
            age = now - loop.answered_at
            oldest = max(oldest, age)
            if age <= self.overdue_after(interval):
                continue
            overdue += 1
            bound = self.stale_after(interval)
            if age <= bound:
                continue
            stale += 1
            if now < loop.next_stale:
                continue
            loop.next_stale, loop.stale = now + interval, True
            error = (
                f"not answered for {age:.0f}s, more than {bound:g}s (--stale-intervals="
                f"{self.stale_intervals:g} polling intervals): polls are behind, the process "
                "cannot keep up with its triggers"
            )
            for trigger in list(loop.triggers.values()):
                self._fail(trigger, error, quiet=True)
        backlog = Backlog(len(self._loops), overdue, stale, oldest)
        self.backlog.report(backlog, now)
        return backlog

    # Recording.

    def _measure(
        self, bound: BoundTrigger, answer: Any, latency: float, *, quiet: bool = False
    ) -> None:
        try:
            value, activity = split(bound.scaler.measure(answer))
        except ScalerError as exc:
            self._fail(bound, str(exc))
            return
        except Exception as exc:  # a scaler bug is an error of its trigger, never a value
            log.exception("measure failed unexpectedly", extra=_fields(bound))
            self._fail(bound, f"internal error: {type(exc).__name__}: {exc}")
            return
        active = is_active(activity, bound.scaler.activation_target)
        before = self.store.readings(bound.so).get(bound.metric_name.lower())
        composed = self.store.composite(bound.so)
        reading = self.store.record_value(
            bound.so, bound.metric_name, value, active, self._now(), activity=activity
        )
        if reading is None:
            return
        if before is not None and before.error is not None and not quiet:
            log.info("trigger recovered", extra=_fields(bound, value=value))
        # Under scalingModifiers KEDA records no trigger's activity: only the composite's.
        self.telemetry.observe(bound, value, None if composed else active, latency)
        self._composed(bound.so, composed)
        self._notify(bound, reading)

    def _fail(self, bound: BoundTrigger, error: str, *, quiet: bool = False) -> None:
        """Record ``error`` as the trigger's reading; ``quiet``: log nothing of it (the
        backlog report says it for every trigger at once)."""
        before = self.store.readings(bound.so).get(bound.metric_name.lower())
        composed = self.store.composite(bound.so)
        reading = self.store.record_error(bound.so, bound.metric_name, error)
        if reading is None:
            return
        if quiet:
            pass  # the backlog report says it, for every trigger at once
        elif before is None or before.error is None:  # log once per change of state
            log.warning("trigger failing: %s", error, extra=_fields(bound, error=error))
        elif before.error != error:  # still failing, for another reason: say it, quieter
            log.info("trigger error now: %s", error, extra=_fields(bound, error=error))
        self.telemetry.error(bound)
        self._composed(bound.so, composed)
        self._notify(bound, reading)

    def _composed(self, so: ObjectRef, before: Composed | None) -> None:
        """The composite metric after a reading: its series, and a log line when what it
        serves changes between a value, a fallback and an error."""
        composed = self.store.composite(so)
        if composed is None:
            return
        outcome = composed.outcome
        self.telemetry.composite(so, outcome)
        state, earlier = _state(outcome), _state(before.outcome) if before else "waiting"
        if state == earlier:
            return
        fields = {"scaledObject": f"{so.namespace}/{so.name}", "metric": COMPOSITE_METRIC}
        if outcome.error is not None:
            log.warning("composite metric not served: %s", outcome.error, extra=fields)
        elif outcome.fallback is not None:
            log.warning("composite metric in fallback: %s", outcome.fallback, extra=fields)
        elif earlier in ("error", "fallback"):
            log.info("composite metric served again", extra={**fields, "value": outcome.served})

    def _notify(self, bound: BoundTrigger, reading: Reading) -> None:
        for listener in self.listeners:
            try:
                listener(bound, reading)
            except Exception:
                log.exception("listener failed", extra=_fields(bound))


def _state(outcome: Outcome) -> str:
    if outcome.error is not None:
        return "error"
    if outcome.fallback is not None:
        return "fallback"
    return "waiting" if outcome.served is None else "value"


def _fields(bound: BoundTrigger, **more: object) -> dict[str, object]:
    owner = bound.so
    key = "scaledJob" if isinstance(owner, ScaledJobRef) else "scaledObject"
    return {
        key: f"{owner.namespace}/{owner.name}",
        "metric": bound.metric_name,
        "trigger": bound.trigger.type,
        **more,
    }
