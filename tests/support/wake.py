"""The poller and the wake hints of one process, run around a test, with counts to wait on.

Waits here are counted, not timed: a test waits for the n-th poll, or for a watcher to be
in a state, with a deadline far above what the mechanism needs (a hint arrives in
milliseconds; polls happen at most once a second per query for hints), and far below the
``pollingInterval`` the tests use (300 s), so a value that changes before the deadline
changed thanks to a hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.metrics.hints import WakeHints
from metrics_adapter.metrics.poller import STARTUP_SPREAD_SECONDS, Poller
from metrics_adapter.metrics.store import Reading
from scalers.wake import Wake, WatcherHealth, WatchOptions, wake_of
from tests.support.triggers import bound_trigger, new_poller

T = TypeVar("T")

SLOW_POLL = 300
"""The tests' pollingInterval: nothing but a hint polls again within a test."""
WITHIN = 30.0
"""Seconds a test waits for what takes milliseconds to a second: a loaded 2-core machine's
margin, a tenth of SLOW_POLL."""


class OnSchedule(random.Random):
    """Places a loop's first poll at once and its next a whole interval later (a poller
    draws both from ``uniform``): the only random polls a test could miscount."""

    def uniform(self, a: float, b: float) -> float:
        return a if b <= STARTUP_SPREAD_SECONDS else b


@dataclass
class Woken:
    poller: Poller
    hints: WakeHints | None
    bound: BoundTrigger
    readings: list[Reading] = field(default_factory=list)
    _seen: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, bound: BoundTrigger, reading: Reading) -> None:
        if bound is self.bound:
            self.readings.append(reading)
            self._seen.set()

    async def reading(self, what: str, done: Callable[[Reading], bool]) -> Reading:
        """The first reading from now on (or the last one) for which ``done`` holds."""
        async with _deadline(what):
            while True:
                if self.readings and done(self.readings[-1]):
                    return self.readings[-1]
                self._seen.clear()
                await self._seen.wait()

    @property
    def polls(self) -> int:
        return len(self.readings)

    @property
    def wake(self) -> Wake:
        wake = wake_of(self.bound.scaler)
        assert isinstance(wake, Wake)
        return wake

    def health(self) -> WatcherHealth | None:
        assert self.hints is not None
        return self.hints.health(self.wake.watcher)

    async def state(self, wanted: str) -> WatcherHealth:
        """Wait until the trigger's watcher is in state ``wanted``."""
        health = await until(f"watcher {wanted}", self.health, lambda h: h and h.state == wanted)
        assert health is not None
        return health

    def extra_polls(self) -> float:
        """The polls started for a hint (counted as they start); 0 without a watcher."""
        wake = wake_of(self.bound.scaler)
        if self.hints is None or not isinstance(wake, Wake):
            return 0.0
        value = self.hints.telemetry.registry.get_sample_value(
            "metrics_adapter_wake_polls_total", {"source_type": wake.watcher.source_type}
        )
        return value or 0.0


async def until(what: str, read: Callable[[], T], ready: Callable[[T], object]) -> T:
    """``read()`` once ``ready`` of it holds, read every 20 ms, within :data:`WITHIN`."""
    async with _deadline(what):
        while True:
            value = read()
            if ready(value):
                return value
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _deadline(what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(WITHIN):
            yield
    except TimeoutError:
        raise AssertionError(f"{what}: not within {WITHIN:g}s") from None


@contextlib.asynccontextmanager
async def woken(
    name: str,
    metadata: Mapping[str, str],
    trigger_type: str,
    *,
    hints: bool = True,
    options: WatchOptions | None = None,
) -> AsyncIterator[Woken]:
    """One ScaledObject's trigger polled every :data:`SLOW_POLL` seconds, with (or without)
    wake hints, running until the block ends; the first poll is waited for."""
    bound = dataclasses.replace(
        bound_trigger(name, metadata, trigger_type), polling_interval=SLOW_POLL
    )
    poller = new_poller(timeout=3.0, rng=OnSchedule())
    run = Woken(poller, None, bound)
    poller.listeners.append(run.record)
    poller.set_triggers(bound.so, [bound])
    if hints:
        run.hints = WakeHints(poller, poller.telemetry, options or WatchOptions(timeout=3.0))
    tasks = [asyncio.create_task(poller.run())]
    if run.hints is not None:
        tasks.append(asyncio.create_task(run.hints.run()))
    try:
        # The first scheduled poll, not a hint's extra poll that may come before it: after
        # it, nothing but a hint polls again within the test.
        await run.reading("the first poll", lambda _: run.polls > run.extra_polls())
        yield run
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await poller.clients.aclose()


def consumer_counts(info: Mapping[str, Any]) -> tuple[int, int]:
    """(delivered, acked) stream sequences of a consumer's ``/jsz`` detail."""
    return info["delivered"]["stream_seq"], info["ack_floor"]["stream_seq"]
