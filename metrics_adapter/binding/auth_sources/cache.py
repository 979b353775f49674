"""The reads authentication sources need, each made once and kept current.

Objects that need reads (a ScaledObject, a ScaledJob) are the *owners*:
:meth:`SourceCache.settle` records what an owner needs, starts a reader for each read nobody made
yet and waits, a bounded time, for their first answers, so the owner's first bind has them.
:meth:`SourceCache.release` drops an owner; a read no owner needs is stopped.

Each reader reads, waits ``refresh_in`` and reads again. A refresh that fails keeps the last
good values (logged: credentials that worked are never dropped for one bad answer) and is
retried sooner, with a backoff; a read that never succeeded is its error, which binding turns
into a problem naming the source. Every change of what :meth:`SourceCache.get` answers is
reported to ``on_change``, so the owners reading it are bound again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field

from metrics_adapter.binding.auth_sources.base import ReadContext, SourceRead, SourceValues
from metrics_adapter.errors import AuthSourceError
from scalers.cancellation import raise_a_swallowed_cancel

log = logging.getLogger(__name__)

MIN_REFRESH = 1.0
"""Seconds between two reads of one source at least, whatever it asks."""
RETRY = 5.0
"""Seconds before a failed read is retried; doubled at each failure, up to :data:`MAX_RETRY`."""
MAX_RETRY = 120.0
SETTLE_WITHIN = 10.0
"""Seconds an object's first bind waits for the first answers of the sources it reads: an
object is Ready=False ("not read yet") no sooner, and bound again when they answer."""
READ_TIMEOUT = 60.0
"""Seconds one read may take in all, its own timeouts failing; then it is an error."""


@dataclass
class _Entry:
    values: SourceValues | None = None
    error: AuthSourceError | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> SourceValues | AuthSourceError | None:
        return self.values if self.values is not None else self.error


class SourceCache:
    """Every read the owners need, each made by one task until no owner needs it."""

    def __init__(
        self,
        context: ReadContext,
        on_change: Callable[[SourceRead], None] | None = None,
        *,
        retry: float = RETRY,
        max_retry: float = MAX_RETRY,
        min_refresh: float = MIN_REFRESH,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.context = context
        self.on_change = on_change
        """Called on the event loop when what :meth:`get` answers for a read changed."""
        self.retry, self.max_retry = retry, max_retry
        self.min_refresh, self.read_timeout = min_refresh, read_timeout
        self._entries: dict[SourceRead, _Entry] = {}
        self._owners: dict[Hashable, frozenset[SourceRead]] = {}

    def get(self, read: SourceRead) -> SourceValues | AuthSourceError | None:
        entry = self._entries.get(read)
        return entry.state if entry is not None else None

    def need(self, owner: Hashable, reads: Collection[SourceRead]) -> None:
        """Record that ``owner`` needs ``reads`` (only them): start what is new, stop what
        nobody needs any more."""
        old = self._owners.get(owner, frozenset())
        new = frozenset(reads)
        if new:
            self._owners[owner] = new
        else:
            self._owners.pop(owner, None)
        for read in new - old:
            if read not in self._entries:
                entry = self._entries[read] = _Entry()
                entry.task = asyncio.get_running_loop().create_task(
                    self._follow(read, entry), name=f"read {read.describe()}"
                )
        self._stop_unneeded(old - new)

    async def settle(self, owner: Hashable, reads: Collection[SourceRead], within: float) -> None:
        """:meth:`need`, then wait until each read has answered once (values or error), at
        most ``within`` seconds: what is still unread binds as "not read yet" and is bound
        again when it answers."""
        self.need(owner, reads)
        waits = [self._entries[r].answered.wait() for r in reads]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await asyncio.gather(*waits)

    def release(self, owner: Hashable) -> None:
        """``owner`` is gone: stop the reads only it needed."""
        self._stop_unneeded(self._owners.pop(owner, frozenset()))

    def owners(self, read: SourceRead) -> list[Hashable]:
        return [owner for owner, reads in self._owners.items() if read in reads]

    async def aclose(self) -> None:
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        self._entries.clear()
        self._owners.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_unneeded(self, reads: Collection[SourceRead]) -> None:
        needed = frozenset().union(*self._owners.values())
        for read in reads:
            entry = None if read in needed else self._entries.pop(read, None)
            if entry is not None and entry.task is not None:
                entry.task.cancel()

    async def _follow(self, read: SourceRead, entry: _Entry) -> None:
        retry = self.retry
        while True:
            before = entry.state
            try:
                async with asyncio.timeout(self.read_timeout):
                    values = await read.read(self.context)
            except AuthSourceError as exc:
                delay = self._failed(read, entry, exc, retry)
                retry = min(retry * 2, self.max_retry)
            except TimeoutError as exc:
                raise_a_swallowed_cancel(exc)  # a library may have turned our cancel into this
                error = AuthSourceError(
                    f"{read.describe()}: no answer within {self.read_timeout:g}s"
                )
                delay = self._failed(read, entry, error, retry)
                retry = min(retry * 2, self.max_retry)
            except Exception as exc:  # a source's bug: one read fails, never the process
                raise_a_swallowed_cancel(exc)
                log.exception("reading %s failed", read.describe())
                error = AuthSourceError(f"{read.describe()}: {type(exc).__name__}: {exc}")
                delay = self._failed(read, entry, error, retry)
                retry = min(retry * 2, self.max_retry)
            else:
                entry.values, entry.error = values, None
                delay, retry = max(values.refresh_in, self.min_refresh), self.retry
                log.debug("read %s; again in %.0fs", read.describe(), delay)
            entry.answered.set()
            if _changed(before, entry.state) and self.on_change is not None:
                self.on_change(read)
            await asyncio.sleep(delay)

    def _failed(
        self, read: SourceRead, entry: _Entry, error: AuthSourceError, retry: float
    ) -> float:
        if entry.values is not None:
            log.warning("%s; keeping the values last read, retrying in %.0fs", error, retry)
        else:
            log.error("%s; retrying in %.0fs", error, retry)
            entry.error = error
        return retry


def _changed(
    before: SourceValues | AuthSourceError | None, after: SourceValues | AuthSourceError | None
) -> bool:
    if isinstance(before, SourceValues) and isinstance(after, SourceValues):
        return before.values != after.values
    if isinstance(before, AuthSourceError) and isinstance(after, AuthSourceError):
        return str(before) != str(after)
    return before is not after
