"""One piece of work per object at a time, and nothing kept of an object between them."""

from __future__ import annotations

import asyncio

from metrics_adapter.control.work import ObjectWork
from metrics_adapter.kube.objects import ObjectRef

REF = ObjectRef("shop", "orders")


async def test_work_on_one_object_takes_turns_and_leaves_no_lock_behind() -> None:
    work, order = ObjectWork[ObjectRef](), list[str]()

    async def piece(name: str, hold: asyncio.Event | None = None) -> None:
        async with work.lock(REF):
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    hold = asyncio.Event()
    first = asyncio.create_task(piece("watch", hold))
    await asyncio.sleep(0)
    second = asyncio.create_task(piece("reading"))
    other = asyncio.create_task(_elsewhere(work))
    await asyncio.sleep(0.01)
    assert order == ["watch in"]  # the reading waits its turn; another object does not
    assert await other
    hold.set()
    await asyncio.gather(first, second)
    assert order == ["watch in", "watch out", "reading in", "reading out"]
    assert work._locks == {}


async def _elsewhere(work: ObjectWork[ObjectRef]) -> bool:
    async with work.lock(ObjectRef("shop", "billing")):
        return True


async def test_a_cancelled_wait_leaves_no_lock_behind() -> None:
    work = ObjectWork[ObjectRef]()
    hold = asyncio.Event()

    async def holder() -> None:
        async with work.lock(REF):
            await hold.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting.cancel()
    hold.set()
    await held
    assert waiting.cancelled()
    assert work._locks == {}
