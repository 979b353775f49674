"""The poller with fake queries at the transport seam: coalescing, timeouts, isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.metrics.poller import (
    EXTRA_POLL_GAP,
    FIRST_POLLS_PER_SECOND,
    STARTUP_SPREAD_SECONDS,
    Poller,
)
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef, parse_scaled_object
from scalers.base import Example, Measurement, Scaler, ScalerKind
from scalers.clients import Clients
from scalers.errors import SourceResponseError


@dataclass(eq=False)
class Upstream:
    """A fake event source: counts requests, answers after ``delay``."""

    value: float = 5.0
    delay: float = 0.0
    fail: str | None = None
    calls: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)
    """When each call ended, answered, failed or cancelled by a timeout."""

    def pending_at(self, moment: float) -> bool:
        """Whether one of its calls was waiting for an answer at ``moment``."""
        ends = [*self.ended, math.inf]  # the last call may not have ended yet
        return any(start <= moment <= end for start, end in zip(self.calls, ends, strict=False))


@dataclass(frozen=True)
class FakeQuery:
    name: str
    upstream: Upstream = field(compare=False, hash=False)

    async def run(self, clients: Clients) -> float:
        self.upstream.calls.append(time.monotonic())
        try:
            await asyncio.sleep(self.upstream.delay)
        finally:
            self.upstream.ended.append(time.monotonic())
        if self.upstream.fail:
            raise SourceResponseError(self.upstream.fail)
        return self.upstream.value

    def describe(self) -> str:
        return f"fake {self.name}"


@dataclass(frozen=True)
class FakeScaler(Scaler[float]):
    query: FakeQuery
    offset: float = 0.0
    metric_name: str = "fake"
    target: float = 10.0
    activation_target: float = 0.0
    value_label: str = "value"

    def measure(self, answer: float) -> float | Measurement:
        return answer + self.offset


KIND: ScalerKind[Any] = ScalerKind("fake", "fakeScaler", object, lambda m: m, "fake", Example({}))


def bound(
    so: str, query: FakeQuery, interval: float = 0.2, offset: float = 0.0, index: int = 0
) -> BoundTrigger:
    obj = parse_scaled_object(
        {
            "metadata": {"name": so},
            "spec": {
                "scaleTargetRef": {"name": so},
                "triggers": [{"type": "fake", "metadata": {}}],
            },
        }
    )
    return BoundTrigger(
        obj.ref, obj.triggers[0], KIND, FakeScaler(query, offset=offset), f"s{index}-fake", interval
    )


def value(store: MetricStore, so: str, metric: str = "s0-fake") -> float | None:
    return store.readings(ObjectRef("default", so))[metric].value


TIMEOUT = 0.3  # the poller's


@pytest.fixture
def poller() -> Poller:
    return Poller(MetricStore(), Clients(), Telemetry(), timeout=TIMEOUT, rng=random.Random(7))


def polled_within(polls: int, interval: float) -> float:
    """How long a loop takes to start ``polls`` polls: the first within its start-up spread (at
    most one interval), each next at most an interval after the previous one, later only by as
    much as that one lasts (the timeout at most); one poll more for a loaded machine."""
    return (polls + 1) * (interval + TIMEOUT)


async def until(what: str, done: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {within:g}s"
        await asyncio.sleep(0.01)


async def run_until(poller: Poller, what: str, done: Callable[[], bool], within: float) -> None:
    """Run the poller on its schedule until ``done()``: counted, not timed."""
    task = asyncio.create_task(poller.run())
    try:
        await until(what, done, within)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_identical_queries_share_one_loop_and_one_request(poller: Poller) -> None:
    up = Upstream(value=42)
    for i in range(50):
        poller.set_triggers(
            ObjectRef("default", f"so{i}"), [bound(f"so{i}", FakeQuery("q", up), offset=i)]
        )
    assert poller.query_count == 1
    await poller.poll(FakeQuery("q", up))
    assert len(up.calls) == 1
    assert value(poller.store, "so0") == 42 and value(poller.store, "so49") == 91


async def test_concurrent_fetches_of_one_query_are_coalesced(poller: Poller) -> None:
    up = Upstream(delay=0.05)
    query = FakeQuery("q", up)
    answers = await asyncio.gather(*(poller.fetch(query) for _ in range(10)))
    assert answers == [5.0] * 10
    assert len(up.calls) == 1


async def test_a_slow_source_times_out_and_delays_no_other(poller: Poller) -> None:
    slow, fast = Upstream(delay=5), Upstream(value=1)
    poller.set_triggers(ObjectRef("default", "slow"), [bound("slow", FakeQuery("slow", slow))])
    poller.set_triggers(ObjectRef("default", "fast"), [bound("fast", FakeQuery("fast", fast))])

    # By order, not by a clock: the fast source is polled while the slow one is waited for
    # (which, its poll timing out after longer than an interval, is nearly all the time).
    def fast_polls_while_slow_waits() -> int:
        return sum(slow.pending_at(moment) for moment in fast.calls)

    await run_until(
        poller,
        "4 polls of the fast source while the slow one waits",
        lambda: fast_polls_while_slow_waits() >= 4,
        polled_within(1, 0.2) + polled_within(4, 0.2),  # the slow one's first, then 4 fast
    )
    reading = poller.store.readings(ObjectRef("default", "slow"))["s0-fake"]
    assert reading.value is None and reading.error is not None
    assert "no answer within 0.3s" in reading.error
    assert value(poller.store, "fast") == 1


async def test_errors_are_recorded_never_zero(poller: Poller) -> None:
    up = Upstream(value=9)
    b = bound("w", FakeQuery("q", up))
    poller.set_triggers(b.so, [b])
    await poller.poll(b.scaler.query)
    up.fail = "garbage from the source"
    await poller.poll(b.scaler.query)
    await poller.poll(b.scaler.query)
    reading = poller.store.readings(b.so)["s0-fake"]
    assert reading.value == 9 and reading.error == "garbage from the source"
    assert reading.failures == 2 and not reading.active


async def test_loops_are_not_in_lockstep(poller: Poller) -> None:
    ups = [Upstream() for _ in range(6)]
    for i, up in enumerate(ups):
        poller.set_triggers(
            ObjectRef("default", f"so{i}"), [bound(f"so{i}", FakeQuery(f"q{i}", up), interval=0.5)]
        )
    await run_until(
        poller,
        "2 polls of each loop",
        lambda: all(len(up.calls) >= 2 for up in ups),
        polled_within(2, 0.5),
    )
    # After the first poll each loop settles at its own random phase of the interval.
    later = sorted(up.calls[1] % 0.5 for up in ups if len(up.calls) > 1)
    assert len(later) == 6
    assert max(later) - min(later) > 0.1


async def test_period_is_kept_without_drift(poller: Poller) -> None:
    up = Upstream(delay=0.05)
    b = bound("w", FakeQuery("q", up), interval=0.2)
    poller.set_triggers(b.so, [b])
    await run_until(poller, "12 polls", lambda: len(up.calls) >= 12, polled_within(12, 0.2))
    steady = up.calls[1:]
    # Each tick is due one interval after the previous *due time*, so the 50 ms a poll takes
    # (and any late wake-up) does not accumulate: the mean period stays at 0.2 s.
    mean = (steady[-1] - steady[0]) / (len(steady) - 1)
    assert len(steady) >= 8
    assert abs(mean - 0.2) < 0.02, mean


async def test_updates_keep_the_loop_and_removal_stops_it(poller: Poller) -> None:
    up = Upstream()
    ref = ObjectRef("default", "w")
    poller.set_triggers(ref, [bound("w", FakeQuery("q", up))])
    task = asyncio.create_task(poller.run())
    await until("the loop's steady polls", lambda: len(up.calls) >= 3, polled_within(3, 0.2))
    calls = len(up.calls)
    poller.set_triggers(ref, [bound("w", FakeQuery("q", up))])  # same query: no new request
    assert len(up.calls) == calls and poller.query_count == 1
    poller.remove(ref)
    assert poller.query_count == 0 and poller.store.readings(ref) == {}
    stopped = len(up.calls)
    await asyncio.sleep(2 * 0.2 + TIMEOUT)  # a live loop would have polled twice meanwhile
    assert len(up.calls) == stopped
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_new_trigger_on_a_known_query_is_measured_without_a_request(
    poller: Poller,
) -> None:
    up = Upstream(value=3)
    poller.set_triggers(ObjectRef("default", "a"), [bound("a", FakeQuery("q", up))])
    await poller.poll(FakeQuery("q", up))
    poller.set_triggers(ObjectRef("default", "b"), [bound("b", FakeQuery("q", up), offset=1)])
    assert value(poller.store, "b") == 4 and len(up.calls) == 1


@dataclass(frozen=True)
class BuggyScaler(FakeScaler):
    def measure(self, answer: float) -> float:
        raise ZeroDivisionError("a bug in a scaler")


async def test_a_scaler_bug_fails_its_trigger_and_stops_nothing(poller: Poller) -> None:
    up = Upstream(value=2)
    good = bound("good", FakeQuery("q", up))
    buggy = BoundTrigger(
        ObjectRef("default", "bad"),
        good.trigger,
        KIND,
        BuggyScaler(FakeQuery("q", up)),
        "s0-fake",
        0.2,
    )
    poller.set_triggers(good.so, [good])
    poller.set_triggers(buggy.so, [buggy])
    await run_until(poller, "2 polls", lambda: len(up.calls) >= 2, polled_within(2, 0.2))
    bad = poller.store.readings(buggy.so)["s0-fake"]
    assert bad.value is None
    assert bad.error == "internal error: ZeroDivisionError: a bug in a scaler"
    assert value(poller.store, "good") == 2
    assert len(up.calls) >= 2  # the loop went on polling after the bug


async def test_a_failing_listener_does_not_stop_recording(poller: Poller) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    poller.listeners.append(broken)
    b = bound("w", FakeQuery("q", Upstream(value=4)))
    poller.set_triggers(b.so, [b])
    await poller.poll(b.scaler.query)
    assert value(poller.store, "w") == 4


async def test_shared_clients_open_once_per_identity_and_can_be_discarded() -> None:
    opened: list[str] = []
    closed: list[str] = []

    async def open_client(name: str) -> str:
        await asyncio.sleep(0.01)
        opened.append(name)
        return f"client-{name}"

    async def close_client(client: str) -> None:
        closed.append(client)

    clients = Clients()

    def opener(name: str) -> Callable[[], Awaitable[str]]:
        return lambda: open_client(name)

    got = await asyncio.gather(
        *(clients.shared(("broker", i % 2), opener(str(i % 2)), close_client) for i in range(10))
    )
    assert sorted(opened) == ["0", "1"]
    assert set(got) == {"client-0", "client-1"}
    await clients.discard(("broker", 0))
    assert closed == ["client-0"]
    await clients.shared(("broker", 0), opener("0"), close_client)
    assert sorted(opened) == ["0", "0", "1"]
    await clients.aclose()
    assert sorted(closed) == ["client-0", "client-0", "client-1"]


@dataclass(frozen=True)
class TotalLagScaler(FakeScaler):
    """Like Kafka with excludePersistentLag: the metric is 0, the lag that activates is not."""

    def measure(self, answer: float) -> Measurement:
        return Measurement(value=0.0, activity=answer)


async def test_activity_comes_from_the_measurements_activity_number(poller: Poller) -> None:
    up = Upstream(value=5)
    base = bound("k", FakeQuery("q", up))
    b = BoundTrigger(
        base.so, base.trigger, KIND, TotalLagScaler(FakeQuery("q", up)), "s0-fake", 0.2
    )
    poller.set_triggers(b.so, [b])
    await poller.poll(b.scaler.query)
    reading = poller.store.readings(b.so)["s0-fake"]
    assert reading.value == 0 and reading.activity == 5 and reading.active
    assert b'"value":"0"' in poller.store.answer("default", "k", "s0-fake")


async def test_first_polls_are_paced_from_when_the_poller_runs(poller: Poller) -> None:
    """Loops set before ``run`` are scheduled when it starts (not from when they were set),
    spread over a second and paced at FIRST_POLLS_PER_SECOND; loops added while it runs join
    the same pace. Read from the schedule it computed: no clock in the assertion."""
    count = 1500
    up = Upstream()
    for i in range(count):
        poller.set_triggers(
            ObjectRef("default", f"o{i}"), [bound(f"o{i}", FakeQuery(f"q{i}", up), 300)]
        )
    await asyncio.sleep(0.2)  # time passes between loading and running
    began = time.monotonic()
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0)
    try:
        dues = sorted(loop.due for loop in poller._loops.values())
        last = began + (count - 1) / FIRST_POLLS_PER_SECOND
        assert dues[-1] <= max(last, began + STARTUP_SPREAD_SECONDS) + 0.1
        for k, due in enumerate(dues):
            assert due >= began + k / FIRST_POLLS_PER_SECOND - 1e-6, (k, due - began)
        late_query = FakeQuery("late", up)
        poller.set_triggers(ObjectRef("default", "late"), [bound("late", late_query, 300)])
        late = poller._loops[late_query].due
        assert late >= began + count / FIRST_POLLS_PER_SECOND - 1e-6  # after the others
        # >=: a second poll lands at a random phase of the interval, some within the test.
        await until("every first poll", lambda: len(up.calls) >= count + 1, 30.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_first_polls_waits_for_each_query_once_and_no_longer(poller: Poller) -> None:
    """Readiness after a rolling update's new replica lists its objects: every query polled
    once, a value or an error (a timeout is one), and a query removed meanwhile not waited
    for."""
    fast, slow, failing, gone = Upstream(), Upstream(delay=0.2), Upstream(fail="down"), Upstream()
    gone_ref = ObjectRef("default", "gone")
    for name, up in (("fast", fast), ("slow", slow), ("failing", failing)):
        poller.set_triggers(ObjectRef("default", name), [bound(name, FakeQuery(name, up), 300)])
    poller.set_triggers(gone_ref, [bound("gone", FakeQuery("gone", gone), 300)])
    hung = Upstream(delay=10 * TIMEOUT)  # answers after the poller's timeout: an error
    poller.set_triggers(ObjectRef("default", "hung"), [bound("hung", FakeQuery("hung", hung), 300)])
    task = asyncio.create_task(poller.run())
    try:
        await asyncio.sleep(0)
        poller.remove(gone_ref)
        assert await poller.first_polls() == 0
        assert all(loop.polled for loop in poller._loops.values())
        assert [len(u.ended) for u in (fast, slow, failing, hung)] == [1, 1, 1, 1]
        assert value(poller.store, "fast") == 5.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class NeedsNine(FakeScaler):
    """Reads what only answers from 9 on hold (a stream created with its object)."""

    def measure(self, answer: float) -> float | Measurement:
        if answer < 9:
            raise SourceResponseError('stream "NEW" not found')
        return answer


async def test_a_trigger_the_last_answer_cannot_measure_gets_a_fresh_poll_not_an_error(
    poller: Poller,
) -> None:
    """A trigger joining a loop is measured from its last answer when it can be; when that
    answer predates what it reads, the loop polls again at once and that poll decides."""
    up = Upstream(value=5)
    query = FakeQuery("shared", up)
    poller.set_triggers(ObjectRef("default", "old"), [bound("old", query, interval=300)])
    seen: list[tuple[str, float | None, str | None]] = []
    poller.listeners.append(lambda b, r: seen.append((b.so.name, r.value, r.error)))
    task = asyncio.create_task(poller.run())
    try:
        await until("the first poll", lambda: len(up.ended) == 1, polled_within(1, TIMEOUT))
        up.value = 9  # the new trigger's stream exists from now on
        plain = bound("new", query, interval=300)
        joined = dataclasses.replace(plain, scaler=NeedsNine(query))
        poller.set_triggers(joined.so, [joined])
        assert [s for s in seen if s[0] == "new"] == []  # no error from the older answer
        await until("the fresh poll", lambda: len(up.ended) == 2, 10 * (EXTRA_POLL_GAP + TIMEOUT))
        assert [s for s in seen if s[0] == "new"] == [("new", 9.0, None)]
        wake_polls = poller.telemetry.registry.get_sample_value("metrics_adapter_wake_polls_total")
        assert wake_polls in (None, 0.0)  # not counted as a wake hint's poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
