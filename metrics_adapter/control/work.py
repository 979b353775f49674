"""Per-object serialisation and a deduplicated work queue, shared by both controllers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from metrics_adapter.errors import KubeError
from metrics_adapter.kube.objects import ObjectRef

log = logging.getLogger(__name__)

R = TypeVar("R", bound=ObjectRef)


@dataclass(slots=True)
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Holding or awaiting ``lock``."""


class ObjectWork(Generic[R]):
    """One piece of work per object at a time (:meth:`lock`), and a queue that holds each
    object once however often it is queued before its turn (:meth:`queue`)."""

    def __init__(self) -> None:
        self._locks: dict[R, _Turns] = {}
        self._due: asyncio.Queue[R] = asyncio.Queue()
        self._pending: set[R] = set()

    @contextlib.asynccontextmanager
    async def lock(self, ref: R) -> AsyncIterator[None]:
        """The watch, a new lead, a changed Secret and a new reading may each start work on
        one object while another awaits a write: they take turns. The lock lives only while
        someone holds or awaits it (kept for every object, it was ~280 bytes each)."""
        turns = self._locks.get(ref)
        if turns is None:
            turns = self._locks[ref] = _Turns()
        turns.users += 1
        try:
            async with turns.lock:
                yield
        finally:
            turns.users -= 1
            if not turns.users:
                del self._locks[ref]

    def queue(self, ref: R) -> None:
        if ref not in self._pending:
            self._pending.add(ref)
            self._due.put_nowait(ref)

    async def drain_forever(self, work: Callable[[R], Awaitable[None]], workers: int = 1) -> None:
        """Run ``work`` for each queued object until cancelled, ``workers`` objects at once
        (``work`` takes the object's :meth:`lock`: one piece of work per object still)."""
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self._drain(work))

    async def _drain(self, work: Callable[[R], Awaitable[None]]) -> None:
        while True:
            ref = await self._due.get()
            self._pending.discard(ref)
            await guarded(work(ref))


async def guarded(work: Awaitable[None]) -> None:
    """Run ``work``; a failed API call is retried by the next event or reading, and a bug
    stays with its object: every other object goes on."""
    try:
        await work
    except KubeError as exc:
        log.warning("%s", exc)
    except Exception:
        log.exception("reconcile or activation failed unexpectedly")
