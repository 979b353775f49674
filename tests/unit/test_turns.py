"""Turns: a poll's timeout counts the source's time, not the time it queued for a turn.

Each wait is a few times the timeout under test, and each piece of work a small share of
it, so a loaded machine (whose sleeps only run long) keeps every margin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from scalers.turns import Turns, bounded, poll_clock

TIMEOUT = 0.5
HELD = 3 * TIMEOUT
"""How long the holders keep their turns: three of the waiter's timeouts."""


async def holding(turns: Turns, seconds: float, taken: asyncio.Event) -> None:
    async with turns.take():
        taken.set()
        await asyncio.sleep(seconds)


async def behind_holders(
    work: Callable[[], Awaitable[None]], *turns: Turns, before: float = 0.0
) -> None:
    """Hold every one of ``turns`` for :data:`HELD`, then, within a poll's clock of
    :data:`TIMEOUT`: spend ``before`` seconds, wait for all the turns at once, run ``work``."""
    holders = []
    for t in turns:
        taken = asyncio.Event()
        holders.append(asyncio.create_task(holding(t, HELD, taken)))
        await taken.wait()

    async def take(t: Turns) -> None:
        async with t.take():
            await work()

    try:
        async with poll_clock(TIMEOUT):
            await asyncio.sleep(before)
            await asyncio.gather(*(take(t) for t in turns))
    finally:
        await asyncio.gather(*holders)


async def quick() -> None:
    await asyncio.sleep(0.05)


async def test_waiting_for_a_turn_longer_than_the_timeout_does_not_time_the_poll_out() -> None:
    turns = Turns(1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await behind_holders(quick, turns)
    assert loop.time() - began >= HELD  # it did wait its turn, three timeouts long
    assert turns.waiting == 0


async def test_a_request_slower_than_the_timeout_in_its_turn_times_out() -> None:
    async def slow() -> None:
        await asyncio.sleep(HELD)

    with pytest.raises(TimeoutError):
        await behind_holders(slow, Turns(1))


async def test_the_time_spent_before_the_wait_still_counts() -> None:
    """The clock stops during the wait and goes on with what was left: 0.3 s before and
    0.4 s after a turn is past a 0.5 s timeout, however long the turn took to come."""

    async def rest() -> None:
        await asyncio.sleep(0.8 * TIMEOUT)

    with pytest.raises(TimeoutError):
        await behind_holders(rest, Turns(1), before=0.6 * TIMEOUT)


async def test_waiting_for_several_turns_at_once_stops_the_clock_until_the_last() -> None:
    """A query may wait for turns of two clients at once: the clock runs again only when
    neither wait is left, with the time it had."""
    first, second = Turns(1), Turns(1)
    await behind_holders(quick, first, second)
    assert first.waiting == second.waiting == 0


async def test_a_free_turn_is_taken_without_waiting_and_outside_a_poll_nothing_stops() -> None:
    turns = Turns(2)
    async with turns.take(), turns.take():
        assert turns.waiting == 0
    # No poll's clock: a plain wait, ended by the holder's release.
    taken = asyncio.Event()
    holder = asyncio.create_task(holding(turns, 0.1, taken))
    await taken.wait()
    async with turns.take():
        pass
    await holder


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    turns = Turns(1)
    taken = asyncio.Event()
    holder = asyncio.create_task(holding(turns, 0.2, taken))
    await taken.wait()

    async def wait() -> None:
        async with poll_clock(TIMEOUT), turns.take():
            pass

    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0.05)
    assert turns.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert turns.waiting == 0
    await holder
    async with turns.take():  # the turn is free again: the cancelled waiter holds none
        pass


async def test_a_call_outside_a_poll_is_bounded_by_its_own_timeout() -> None:
    with pytest.raises(TimeoutError):
        async with bounded(TIMEOUT / 10):
            await asyncio.sleep(TIMEOUT)


async def test_a_call_inside_a_poll_is_bounded_by_the_polls_clock_alone() -> None:
    """One timer a poll: the call's own, shorter here, is not set; the poll's still fires."""
    async with poll_clock(TIMEOUT), bounded(TIMEOUT / 10):
        await asyncio.sleep(TIMEOUT / 5)
    with pytest.raises(TimeoutError):
        async with poll_clock(TIMEOUT / 5), bounded(HELD):
            await asyncio.sleep(TIMEOUT)
