"""The poller's extra polls for wake hints, and the hub that opens watchers only while a
target is idle: fake queries and a fake watcher at the transport seam."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.metrics.hints import WakeHints
from metrics_adapter.metrics.poller import EXTRA_POLL_GAP, Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from scalers.clients import Clients
from scalers.wake import HintCallback, Wake, Watcher, WatchOptions
from tests.service.test_poller import FakeQuery, FakeScaler, Upstream, bound, until

SLOW = 300.0
"""pollingInterval: after its first poll, a query is polled again only for a hint."""
WITHIN = 10.0


def new_poller() -> Poller:
    return Poller(MetricStore(), Clients(), Telemetry(), timeout=1.0, rng=random.Random(7))


async def started(poller: Poller) -> asyncio.Task[None]:
    return asyncio.create_task(poller.run())


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_hint_polls_at_once_and_a_burst_at_most_once_a_second() -> None:
    up = Upstream(value=0)
    query = FakeQuery("q", up)
    poller = new_poller()
    poller.set_triggers(ObjectRef("default", "a"), [bound("a", query, interval=SLOW)])
    task = await started(poller)
    try:
        await until("the first poll", lambda: len(up.ended) == 1, WITHIN)
        assert poller.poll_now(query, "fake")
        await until("the hint's poll", lambda: len(up.ended) == 2, WITHIN)
        begun = time.monotonic()
        while time.monotonic() - begun < 2.5:  # a hint every millisecond for 2.5 s
            poller.poll_now(query, "fake")
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - begun
    finally:
        await stop(task)
    extra = len(up.calls) - 1
    assert 2 <= extra <= 1 + int(elapsed / EXTRA_POLL_GAP) + 1, (extra, elapsed)
    starts = up.calls[1:]
    assert all(b - a >= EXTRA_POLL_GAP * 0.99 for a, b in itertools.pairwise(starts))
    sample = poller.telemetry.registry.get_sample_value(
        "metrics_adapter_wake_polls_total", {"source_type": "fake"}
    )
    assert sample == extra


async def test_a_hint_during_a_poll_gets_a_poll_that_starts_after_it() -> None:
    """The poll out when the hint came may have read the source before the new work: it
    does not answer the hint."""
    up = Upstream(value=0, delay=0.3)
    query = FakeQuery("q", up)
    poller = new_poller()
    poller.set_triggers(ObjectRef("default", "a"), [bound("a", query, interval=SLOW)])
    task = await started(poller)
    try:
        await until("the first poll out", lambda: len(up.calls) == 1, WITHIN)
        hinted = time.monotonic()
        poller.poll_now(query, "fake")
        await until("a second poll", lambda: len(up.calls) == 2, WITHIN)
    finally:
        await stop(task)
    assert up.calls[1] >= hinted and up.calls[1] >= up.ended[0]


def test_a_hint_for_a_query_nobody_polls_is_refused() -> None:
    assert not new_poller().poll_now(FakeQuery("nobody", Upstream()), "fake")


# The hub, with a fake watcher.


@dataclass(frozen=True)
class FakeKey:
    server: str
    source_type: ClassVar[str] = "fake"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        watcher = FakeWatcher(self, on_hint, options)
        OPENED.append(watcher)
        return watcher

    def describe(self) -> str:
        return f"fake://{self.server}"


OPENED: list[FakeWatcher] = []


class FakeWatcher(Watcher):
    async def session(self) -> None:
        while True:
            self.caught_up(())
            await self.changed()


@dataclass(frozen=True)
class WakeableScaler(FakeScaler):
    wake_key: FakeKey = FakeKey("s")
    topic: Hashable = "t"

    def wake(self) -> Wake:
        return Wake(self.wake_key, self.topic)


def wakeable(so: str, query: FakeQuery, topic: str, server: str = "s") -> BoundTrigger:
    scaler = WakeableScaler(query, wake_key=FakeKey(server), topic=topic)
    return dataclasses.replace(bound(so, query, interval=SLOW), scaler=scaler)


async def test_watchers_follow_idle_targets_and_are_shared() -> None:
    OPENED.clear()
    ups = {name: Upstream(value=0) for name in "abc"}
    queries = {name: FakeQuery(name, up) for name, up in ups.items()}
    poller = new_poller()
    hints = WakeHints(poller, poller.telemetry)
    refs = {name: ObjectRef("default", name) for name in "abc"}
    poller.set_triggers(refs["a"], [wakeable("a", queries["a"], "ta")])
    poller.set_triggers(refs["b"], [wakeable("b", queries["b"], "tb")])
    poller.set_triggers(refs["c"], [wakeable("c", queries["c"], "tc", "other")])
    assert len(OPENED) == 2  # one per server: a and b share one
    shared = OPENED[0]
    assert shared.topics == {"ta", "tb"}
    tasks = [await started(poller), asyncio.create_task(hints.run())]
    try:
        await until("first polls", lambda: all(len(u.ended) == 1 for u in ups.values()), WITHIN)
        await until("connected", lambda: shared.health.state == "connected", WITHIN)

        shared.hint("tb")  # polls b's query only
        await until("b polled", lambda: len(ups["b"].ended) == 2, WITHIN)
        assert len(ups["a"].calls) == 1

        ups["a"].value = 7  # a turns active at its next poll: no longer watched
        shared.hint("ta")
        await until("a active", lambda: len(ups["a"].ended) == 2, WITHIN)
        assert shared.topics == {"tb"}
        assert hints.explain(poller.triggers(refs["a"])[0]).startswith("not now: the target")

        poller.remove(refs["b"])  # the last idle target on the shared server: closed
        assert hints.health(FakeKey("s")) is None
        assert hints.states() == {("fake", "connected"): 1}  # "other" only
    finally:
        await stop(*tasks)


async def test_a_hint_changes_nothing_but_when_the_poll_happens() -> None:
    """A spurious hint on an empty source polls it: the value stays 0, the target idle."""
    OPENED.clear()
    up = Upstream(value=0)
    query = FakeQuery("q", up)
    poller = new_poller()
    hints = WakeHints(poller, poller.telemetry)
    ref = ObjectRef("default", "a")
    poller.set_triggers(ref, [wakeable("a", query, "t")])
    tasks = [await started(poller), asyncio.create_task(hints.run())]
    try:
        await until("first poll", lambda: len(up.ended) == 1, WITHIN)
        OPENED[0].hint("t")
        await until("the hint's poll", lambda: len(up.ended) == 2, WITHIN)
    finally:
        await stop(*tasks)
    reading = poller.store.readings(ref)["s0-fake"]
    assert reading.value == 0 and not reading.active
    assert OPENED[0].topics == {"t"}  # still idle, still watched


def test_only_the_replica_that_activates_watches() -> None:
    """Every replica polls and serves; only the Lease holder activates, so only it watches,
    from the moment it leads (reconcile_all, called on a change of leadership)."""
    OPENED.clear()
    leading = False
    poller = new_poller()
    hints = WakeHints(poller, poller.telemetry, acting=lambda: leading)
    ref = ObjectRef("default", "a")
    poller.set_triggers(ref, [wakeable("a", FakeQuery("q", Upstream(value=0)), "t")])
    assert OPENED == [] and hints.states() == {}
    leading = True
    hints.reconcile_all()
    assert len(OPENED) == 1 and OPENED[0].topics == {"t"}
    leading = False
    hints.reconcile_all()
    assert hints.health(FakeKey("s")) is None
