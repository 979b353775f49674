"""Single flight: concurrent callers asking for one key share one call.

Three places need it: the poller (equal queries asked once), the authentication and
authorization reviews (each question asked once at a time), and :class:`~scalers.clients.Clients`
(a backend's client opened once). It lives in ``scalers``, the lowest package both layers
may import.

The call runs in a task of its own and every caller awaits it shielded, so a caller that
is cancelled (its HTTP client went away, its poll timed out) does not cancel the call for
the others. Nothing is remembered: once the call has finished, the next caller starts a
new one; a cache, where one is wanted, sits on top.

:class:`InCaller` is the poller's: the first caller runs the call in its own task (a poll is
one task, not two: a task, a shield and their callbacks cost about 5 % of a poll's CPU), and
whoever joins it meanwhile waits for its answer; if that first caller is cancelled (its loop
removed, the poller stopped), one still waiting asks anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    __slots__ = ("call", "waiters")

    def __init__(self, call: asyncio.Future[V]) -> None:
        self.call = call
        self.waiters = 0


class SingleFlight(Generic[K, V]):
    """One call per key at a time, its answer or its failure given to every caller.

    ``cancel_abandoned``: when the last caller of a call leaves before it ends, cancel the
    call and wait for it to unwind, as if it had run in that caller's task (the poller and
    client opening: nobody is left to use the answer, and nothing may outlive its owner).
    Without it the call runs to its end for whoever asks next (the reviews: a question to
    kube-apiserver is cheaper to finish than to ask again).
    """

    def __init__(self, *, cancel_abandoned: bool = False) -> None:
        self.cancel_abandoned = cancel_abandoned
        self._flights: dict[K, _Flight[V]] = {}

    def __len__(self) -> int:
        """Calls out now."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """The answer of ``call()`` for ``key``: of the call out now, else of a new one.
        ``call`` is invoked only when a new call starts."""
        flight = self._flights.get(key)
        if flight is None or flight.call.done():  # done: its clean-up has not run yet
            flight = self._flights[key] = _Flight(asyncio.ensure_future(call()))
            flight.call.add_done_callback(lambda done: self._finished(key, done))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.call)
        except asyncio.CancelledError:
            if flight.waiters == 1 and self.cancel_abandoned and not flight.call.done():
                if self._flights.get(key) is flight:
                    del self._flights[key]  # a caller arriving now starts afresh
                flight.call.cancel()
                await asyncio.wait([flight.call])
            raise
        finally:
            flight.waiters -= 1

    def _finished(self, key: K, done: asyncio.Future[V]) -> None:
        if (flight := self._flights.get(key)) is not None and flight.call is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller got it, or none is left to


class _Answer:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        """Made when a second caller joins: a lone call needs none."""


class _Abandoned(Exception):
    """The caller running the call was cancelled: a caller still waiting asks anew."""


class InCaller(Generic[K, V]):
    """One call per key at a time, run in the task of its first caller; its answer or its
    failure given to every caller that joined it meanwhile."""

    def __init__(self) -> None:
        self._flights: dict[K, _Answer] = {}

    def __len__(self) -> int:
        """Calls out now."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """The answer of ``call()`` for ``key``: of the call out now, else of a new one run
        here. ``call`` is invoked only when a new call starts."""
        while (flight := self._flights.get(key)) is not None:
            if flight.future is None:
                flight.future = asyncio.get_running_loop().create_future()
            try:  # shielded: a joiner leaving must not cancel the answer for the others
                return cast(V, await asyncio.shield(flight.future))
            except _Abandoned:
                continue
        flight = self._flights[key] = _Answer()
        try:
            value = await call()
        except BaseException as exc:
            del self._flights[key]
            if flight.future is not None:
                cancelled = isinstance(exc, asyncio.CancelledError)
                flight.future.set_exception(_Abandoned() if cancelled else exc)
                flight.future.exception()  # retrieved: by every joiner, or none is left to
            raise
        del self._flights[key]
        if flight.future is not None:
            flight.future.set_result(value)
        return value
