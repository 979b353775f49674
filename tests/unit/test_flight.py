"""SingleFlight: one call per key at a time, shared; cancellation and failure handled apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scalers.flight import InCaller, SingleFlight


class Call:
    """A call that counts its starts, waits to be released, and says how it ended."""

    def __init__(self, answer: int = 7, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.starts = 0
        self.release = asyncio.Event()
        self.ended: list[str] = []

    async def __call__(self) -> int:
        self.starts += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        if self.error is not None:
            self.ended.append("failed")
            raise self.error
        self.ended.append("answered")
        return self.answer


@pytest.mark.parametrize("cancel_abandoned", [False, True])
async def test_concurrent_callers_share_one_call(cancel_abandoned: bool) -> None:
    flight: SingleFlight[str, int] = SingleFlight(cancel_abandoned=cancel_abandoned)
    call, other = Call(7), Call(8)
    callers = [asyncio.create_task(flight.do("k", call)) for _ in range(5)]
    elsewhere = asyncio.create_task(flight.do("other", other))
    await asyncio.sleep(0)
    assert len(flight) == 2
    call.release.set()
    other.release.set()
    assert await asyncio.gather(*callers) == [7] * 5
    assert await elsewhere == 8
    assert (call.starts, other.starts, len(flight)) == (1, 1, 0)


@pytest.mark.parametrize("cancel_abandoned", [False, True])
async def test_a_cancelled_caller_does_not_cancel_the_call_for_the_others(
    cancel_abandoned: bool,
) -> None:
    flight: SingleFlight[str, int] = SingleFlight(cancel_abandoned=cancel_abandoned)
    call = Call(7)
    first = asyncio.create_task(flight.do("k", call))
    second = asyncio.create_task(flight.do("k", call))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    call.release.set()
    assert await second == 7
    assert first.cancelled()
    assert (call.starts, call.ended) == (1, ["answered"])


async def test_a_failure_is_shared_by_concurrent_callers_and_never_remembered() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    failing = Call(error=RuntimeError("down"))
    callers = [asyncio.create_task(flight.do("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    failing.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["down"] * 3
    assert failing.starts == 1
    working = Call(9)
    working.release.set()
    assert await flight.do("k", working) == 9  # asked again, not the remembered failure
    assert working.starts == 1


async def test_an_answer_is_not_remembered_either() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    call = Call(7)
    call.release.set()
    assert await flight.do("k", call) == 7
    assert await flight.do("k", call) == 7
    assert call.starts == 2


async def test_the_last_caller_leaving_cancels_an_abandoned_call_and_waits_for_it() -> None:
    flight: SingleFlight[str, int] = SingleFlight(cancel_abandoned=True)
    call = Call()
    callers = [asyncio.create_task(flight.do("k", call)) for _ in range(2)]
    await asyncio.sleep(0)
    callers[0].cancel()
    await asyncio.sleep(0)
    assert call.ended == []  # one caller is still there
    callers[1].cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    # Unwound before its last caller finished leaving, as if it had run in its task.
    assert call.ended == ["cancelled"]
    assert len(flight) == 0
    later = Call(5)
    later.release.set()
    assert await flight.do("k", later) == 5


async def test_without_cancel_abandoned_the_call_runs_on_for_the_next_caller() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    call = Call(7)
    gone = asyncio.create_task(flight.do("k", call))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert "k" in flight and call.ended == []
    joining = asyncio.create_task(flight.do("k", Call(0)))
    await asyncio.sleep(0)
    call.release.set()
    assert await joining == 7
    assert call.starts == 1


async def test_in_caller_runs_the_call_in_the_first_callers_task_and_shares_it() -> None:
    flight: InCaller[str, int] = InCaller()
    ran_in: list[asyncio.Task[Any] | None] = []
    call = Call(7)

    async def traced() -> int:
        ran_in.append(asyncio.current_task())
        return await call()

    callers = [asyncio.create_task(flight.do("k", traced)) for _ in range(4)]
    await asyncio.sleep(0)
    assert ("k" in flight, len(flight)) == (True, 1)
    call.release.set()
    assert await asyncio.gather(*callers) == [7] * 4
    assert ran_in == [callers[0]]  # no task of its own
    assert (call.starts, len(flight)) == (1, 0)


async def test_in_caller_a_joiner_leaving_does_not_cancel_the_call() -> None:
    flight: InCaller[str, int] = InCaller()
    call = Call(7)
    first = asyncio.create_task(flight.do("k", call))
    joiner = asyncio.create_task(flight.do("k", call))
    await asyncio.sleep(0)
    joiner.cancel()
    await asyncio.sleep(0)
    call.release.set()
    assert await first == 7
    assert joiner.cancelled()
    assert (call.starts, call.ended) == (1, ["answered"])


async def test_in_caller_a_cancelled_first_caller_has_a_joiner_ask_anew() -> None:
    flight: InCaller[str, int] = InCaller()
    call = Call(7)
    first = asyncio.create_task(flight.do("k", call))
    joiners = [asyncio.create_task(flight.do("k", call)) for _ in range(2)]
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0.01)
    assert call.ended == ["cancelled"]
    assert call.starts == 2  # one joiner asks again, the other joins it
    call.release.set()
    assert await asyncio.gather(*joiners) == [7, 7]
    assert first.cancelled()
    assert len(flight) == 0


async def test_in_caller_a_failure_is_shared_and_never_remembered() -> None:
    flight: InCaller[str, int] = InCaller()
    failing = Call(error=RuntimeError("down"))
    callers = [asyncio.create_task(flight.do("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    failing.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["down"] * 3
    working = Call(9)
    working.release.set()
    assert await flight.do("k", working) == 9
    assert (failing.starts, working.starts) == (1, 1)
