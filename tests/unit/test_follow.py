"""The watch's events handled several objects at once, each object's in order (the last of
a burst), a deletion never followed by a reconcile it superseded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from metrics_adapter.control.lifecycle import LatestEvents, reconcile_all
from metrics_adapter.errors import KubeError


@dataclass(frozen=True)
class Doc:
    ref: str
    version: int = 1


@dataclass
class Recorder:
    gate: asyncio.Event
    handled: list[tuple[str, Doc]]
    running: int = 0
    most: int = 0

    async def reconcile(self, doc: Doc) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            self.handled.append(("reconcile", doc))
        finally:
            self.running -= 1

    def forget(self, doc: Doc) -> None:
        self.handled.append(("forget", doc))


@asynccontextmanager
async def workers(
    count: int, opened: bool = False
) -> AsyncIterator[tuple[LatestEvents[Doc], Recorder]]:
    gate = asyncio.Event()
    if opened:
        gate.set()
    recorder = Recorder(gate, [])
    latest = LatestEvents(recorder.reconcile, recorder.forget)
    tasks = [asyncio.create_task(latest.work()) for _ in range(count)]
    try:
        yield latest, recorder
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_objects_are_reconciled_several_at_once_up_to_the_workers() -> None:
    async with workers(5) as (latest, recorder):
        for i in range(12):
            latest.add(Doc(f"o{i}"), deleted=False)
        await asyncio.sleep(0.05)
        assert recorder.running == 5
        recorder.gate.set()
        await asyncio.wait_for(latest.drained(), 5)
    assert recorder.most == 5
    assert len(recorder.handled) == 12


async def test_an_object_is_handled_once_at_a_time_with_the_last_of_its_events() -> None:
    async with workers(5) as (latest, recorder):
        latest.add(Doc("o", 1), deleted=False)
        await asyncio.sleep(0.05)  # v1 is being reconciled
        latest.add(Doc("o", 2), deleted=False)
        latest.add(Doc("o", 3), deleted=False)
        await asyncio.sleep(0.05)
        assert recorder.running == 1  # not v3 beside v1
        recorder.gate.set()
        await asyncio.wait_for(latest.drained(), 5)
    assert recorder.handled == [("reconcile", Doc("o", 1)), ("reconcile", Doc("o", 3))]


async def test_a_deletion_supersedes_a_reconcile_not_yet_started() -> None:
    async with workers(1, opened=True) as (latest, recorder):
        latest.add(Doc("o", 1), deleted=False)
        latest.add(Doc("o", 2), deleted=True)
        await asyncio.wait_for(latest.drained(), 5)
    assert recorder.handled == [("forget", Doc("o", 2))]


async def test_drained_waits_for_every_event_added() -> None:
    async with workers(2) as (latest, recorder):
        await asyncio.wait_for(latest.drained(), 1)  # nothing added: drained at once
        latest.add(Doc("a"), deleted=False)
        latest.add(Doc("b"), deleted=False)
        waiting = asyncio.create_task(latest.drained())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        recorder.gate.set()
        await asyncio.wait_for(waiting, 5)
        assert len(recorder.handled) == 2


async def test_a_new_leader_reconciles_every_object_a_few_at_once_failures_apart() -> None:
    done: list[str] = []
    running = most = 0

    async def reconcile(doc: Doc) -> None:
        nonlocal running, most
        if doc.ref == "broken":
            raise KubeError(f"ScaledObject {doc.ref} (patch)", 500, "InternalError", "boom")
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(doc.ref)

    docs = [Doc("broken")] + [Doc(f"o{i}") for i in range(20)]
    await reconcile_all(docs, reconcile, workers=3)
    assert sorted(done) == sorted(f"o{i}" for i in range(20))
    assert most == 3
