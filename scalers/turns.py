"""Turns: how many requests a shared client lets out at once, and a poll's clock that stops
while the poll waits for one.

A poll's timeout (``--scaler-timeout``) is the time its source may take to answer. Waiting
behind other polls of the same client is this process's own time, not the source's: when
more polls are due than a client lets out, counting that wait would time every queued poll
out and turn a backlog of ours into errors of healthy sources. :func:`poll_clock` runs a
poll's timeout and :meth:`Turns.take` stops it for as long as the poll waits for its turn,
so a backlog only makes values older (the poller bounds how old, ``--stale-intervals``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class _Clock:
    timeout: asyncio.Timeout
    waiting: int = 0
    """Turns being waited for now (a poll's query may wait for several at once)."""
    remaining: float | None = None
    """Seconds of the timeout left when the first of them began (None: it had none)."""


_CLOCK: ContextVar[_Clock | None] = ContextVar("poll_clock", default=None)


@contextlib.asynccontextmanager
async def poll_clock(seconds: float) -> AsyncIterator[None]:
    """Raise TimeoutError when the block has run ``seconds``, not counting its waits for a
    turn (:meth:`Turns.take`) inside it."""
    async with asyncio.timeout(seconds) as timeout:
        token = _CLOCK.set(_Clock(timeout))
        try:
            yield
        finally:
            _CLOCK.reset(token)


def bounded(seconds: float) -> contextlib.AbstractAsyncContextManager[object]:
    """A timeout of ``seconds`` for a call, unless a poll's clock bounds it already (one timer
    a poll, not two)."""
    if _CLOCK.get() is not None:
        return contextlib.nullcontext()
    return asyncio.timeout(seconds)


class Turns:
    """At most ``size`` requests of one client at once; the others wait, first come first
    served, with their poll's clock stopped."""

    def __init__(self, size: int) -> None:
        self._semaphore = asyncio.Semaphore(size)
        self.waiting = 0
        """Requests waiting for a turn now."""

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        if not self._semaphore.locked():
            async with self._semaphore:
                yield
            return
        self.waiting += 1
        clock = _stop()
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
            _restart(clock)
        try:
            yield
        finally:
            self._semaphore.release()


def _stop() -> _Clock | None:
    """Stop the current poll's clock, if it runs; nested waits stop it once."""
    clock = _CLOCK.get()
    if clock is None or clock.timeout.expired():
        return None
    clock.waiting += 1
    when = clock.timeout.when()
    if clock.waiting == 1:
        now = asyncio.get_running_loop().time()
        clock.remaining = None if when is None else max(0.0, when - now)
        clock.timeout.reschedule(None)
    return clock


def _restart(clock: _Clock | None) -> None:
    """Run the clock again with the time it had left, once the last wait has ended."""
    if clock is None:
        return
    clock.waiting -= 1
    if clock.waiting == 0 and clock.remaining is not None and not clock.timeout.expired():
        clock.timeout.reschedule(asyncio.get_running_loop().time() + clock.remaining)
