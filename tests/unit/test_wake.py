"""The watcher base: sessions run again after failures, with a bounded jittered backoff,
hints only for watched topics, and health that says what happened."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable

import pytest

from scalers.wake import (
    CONNECTED,
    CONNECTING,
    NoWake,
    Wake,
    WakeUnavailable,
    Watcher,
    WatchOptions,
    finish,
    wake_of,
)


class Key:
    source_type = "fake"

    def open(self, on_hint: object, options: WatchOptions) -> Watcher:
        raise NotImplementedError

    def describe(self) -> str:
        return "fake://source"


class Scripted(Watcher):
    """Each session takes the next outcome: an exception to raise, or "connect" (caught up,
    then wait for a change of topics)."""

    def __init__(self, outcomes: list[object], options: WatchOptions | None = None) -> None:
        self.hints: list[Hashable] = []
        super().__init__(Key(), self.hints.append, options or WatchOptions(rng=random.Random(1)))
        self.outcomes = outcomes
        self.pauses: list[float] = []
        self.done = asyncio.Event()

    async def session(self) -> None:
        if not self.outcomes:
            self.done.set()
            await asyncio.Event().wait()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        self.caught_up(self.topics)
        await self.changed()

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def run(watcher: Scripted) -> None:
    task = asyncio.create_task(watcher.run())
    try:
        async with asyncio.timeout(5):
            await watcher.done.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_failures_back_off_doubling_jittered_and_bounded() -> None:
    options = WatchOptions(backoff_initial=1.0, backoff_max=8.0, rng=random.Random(3))
    watcher = Scripted([ConnectionError("refused")] * 7, options)
    await run(watcher)
    limits = [1, 2, 4, 8, 8, 8, 8]
    assert len(watcher.pauses) == 7
    for pause, limit in zip(watcher.pauses, limits, strict=True):
        assert limit / 2 <= pause <= limit
    assert len(set(watcher.pauses)) == 7  # jittered: never in lockstep with other watchers
    health = watcher.health  # connecting again, saying why the last attempt failed
    assert health.state == CONNECTING and health.last_error == "ConnectionError: refused"


async def test_a_source_that_cannot_hint_is_asked_again_rarely() -> None:
    watcher = Scripted([WakeUnavailable("notifications are off")], WatchOptions(recheck=60.0))
    await run(watcher)
    assert watcher.pauses == [60.0]
    assert watcher.health.last_error == "notifications are off"


async def test_each_connection_hints_every_topic_once() -> None:
    """Notifications sent while disconnected are lost: every session that connects hints
    each topic, so the poller looks once. (The first session ends at once: watch() changed
    the topics before it started, and this script ends a session on a change.)"""
    watcher = Scripted(["connect", ConnectionError("lost"), "connect"])
    watcher.watch({"a", "b"})
    task = asyncio.create_task(watcher.run())
    try:
        async with asyncio.timeout(5):
            while True:  # the watcher yields to the loop only where it waits
                if len(watcher.hints) >= 4:
                    break
                await asyncio.sleep(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(map(str, watcher.hints[:2])) == sorted(map(str, watcher.hints[2:])) == ["a", "b"]
    assert watcher.health.state == CONNECTED and watcher.health.hints == 4


def test_hints_for_topics_not_watched_are_dropped() -> None:
    watcher = Scripted([])
    watcher.watch({"a"})
    watcher.hint("b")
    watcher.hint("a")
    assert watcher.hints == ["a"] and watcher.health.hints == 1


def test_refused_topics_are_reported_until_unwatched() -> None:
    watcher = Scripted([])
    watcher.watch({"a", "b"})
    watcher.refuse("a", "may not subscribe")
    assert watcher.health.topic_problems == {"a": "may not subscribe"}
    watcher.watch({"b"})
    assert watcher.health.topic_problems == {}


async def test_changed_or_raises_when_the_connection_ends() -> None:
    watcher = Scripted([])
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    lost.set_exception(OSError("reset"))
    with pytest.raises(OSError, match="reset"):
        await watcher.changed_or(lost)
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ended.set_result(None)
    with pytest.raises(ConnectionError):
        await watcher.changed_or(ended)
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await watcher.changed_or(pending, within=0)  # a timer of the session: returns
    assert not pending.done()


def test_a_scaler_without_wake_gets_no_hints_and_says_why() -> None:
    assert isinstance(wake_of(object()), NoWake)

    class Wakeable:
        def wake(self) -> Wake:
            return Wake(Key(), "t")

    found = wake_of(Wakeable())
    assert isinstance(found, Wake) and found.topic == "t"


async def test_a_close_runs_to_its_end_through_two_cancels() -> None:
    closed = asyncio.Event()

    async def close() -> None:
        await asyncio.sleep(0.05)
        closed.set()

    task = asyncio.create_task(finish(close(), within=5))
    await asyncio.sleep(0)
    task.cancel()  # the hub closing the watcher
    await asyncio.sleep(0)
    task.cancel()  # and stopping
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
