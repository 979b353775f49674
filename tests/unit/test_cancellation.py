"""A cancel a library swallows is raised again where the loop around it waits."""

from __future__ import annotations

import asyncio
import contextlib

from scalers.cancellation import raise_a_swallowed_cancel


async def swallowing() -> None:
    """What nats-py's ``Client._flush_pending`` does with a cancel: returns."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)


async def test_a_loop_stops_on_the_cancel_its_library_swallowed() -> None:
    async def session() -> None:
        while True:
            await swallowing()
            raise_a_swallowed_cancel()

    task = asyncio.create_task(session())
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)  # without the check: never done
    assert done == {task} and task.cancelled()


async def test_a_failure_during_a_cancel_is_the_cancel() -> None:
    async def retrying() -> None:
        while True:
            try:
                await swallowing()
                raise TimeoutError("a deadline met the cancel")
            except TimeoutError as exc:
                raise_a_swallowed_cancel(exc)

    task = asyncio.create_task(retrying())
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done == {task} and task.cancelled()


async def test_nothing_happens_without_a_cancel() -> None:
    raise_a_swallowed_cancel()
    raise_a_swallowed_cancel(TimeoutError())
