"""Which objects this replica polls and which it may write for.

Two questions, kept apart because their failures cost different things:

- ``polls(ref)``: bind and poll the object's triggers, and so answer reads of its metrics
  from memory. Polling an object another replica polls too costs the source a request; it
  never harms a workload, so this follows the last membership known even while it is stale.
- ``writes(ref)``: write its HPA, status, ``/scale`` and Events. Two writers can undo each
  other, so this is fenced: false as soon as this replica cannot be sure it alone owns the
  object (:mod:`metrics_adapter.control.shards`).

Every write for an object is made inside :func:`acting_for`, so the Kubernetes client checks
the fence again right before it sends the write (after any wait for the write budget):
a replica paused between deciding and writing does not write once it wakes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from metrics_adapter.control.leader import LeaderElector
from metrics_adapter.errors import KubeFenced
from metrics_adapter.model.keda import ObjectRef


def shard_key(ref: ObjectRef) -> str:
    """What an object is assigned by: ``namespace/name`` (a ScaledJob and a ScaledObject of
    the same name go to the same replica)."""
    return f"{ref.namespace}/{ref.name}"


@dataclass(frozen=True, slots=True)
class Held:
    """What this replica does for one object."""

    polls: bool
    writes: bool

    NOT: ClassVar[Held]

    @classmethod
    def of(cls, polls: bool, writes: bool) -> Held:
        return cls(polls, writes and polls)

    def gains(self, before: Held) -> bool:
        """Starts polling it, or starts writing for it: it must be reconciled again."""
        return (self.polls and not before.polls) or (self.writes and not before.writes)


Held.NOT = Held(polls=False, writes=False)


class Ownership(Protocol):
    listeners: list[Callable[[], None]]
    """Called when ``polls`` or ``writes`` may have changed for some object."""

    def polls(self, ref: ObjectRef) -> bool: ...

    def writes(self, ref: ObjectRef) -> bool: ...

    @property
    def acting(self) -> bool:
        """Writes for some objects now: wake hints are watched only then."""
        ...

    async def run(self) -> None:
        """Keep ownership current until cancelled; on cancel, hand over at once."""
        ...

    async def known(self) -> None:
        """Return once ``polls`` means something (the shard group has been listed)."""
        ...


class Everything:
    """One replica, no election: it polls and writes for every object."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[], None]] = []

    def polls(self, ref: ObjectRef) -> bool:
        return True

    def writes(self, ref: ObjectRef) -> bool:
        return True

    @property
    def acting(self) -> bool:
        return True

    async def run(self) -> None:
        return

    async def known(self) -> None:
        return


class Leadership:
    """One Lease for the install: every replica polls every object (so any replica answers
    from memory), only the leader writes."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self.listeners: list[Callable[[], None]] = []
        elector.listeners.append(lambda _: self._changed())

    def polls(self, ref: ObjectRef) -> bool:
        return True

    def writes(self, ref: ObjectRef) -> bool:
        return self.elector.is_leader

    @property
    def acting(self) -> bool:
        return self.elector.is_leader

    async def run(self) -> None:
        await self.elector.run()

    async def known(self) -> None:
        return

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()


def held(ownership: Ownership, ref: ObjectRef) -> Held:
    return Held.of(ownership.polls(ref), ownership.writes(ref))


class Holding(Protocol):
    """What a controller tracks of one object, as far as ownership goes."""

    held: Held
    written: Any

    @property
    def ref(self) -> ObjectRef: ...


H = TypeVar("H", bound=Holding)


def sort_moved(tracked: Iterable[H], ownership: Ownership) -> tuple[list[H], list[H]]:
    """After ownership moved: the objects to reconcile again (now polled, or now written
    for: the status to compare with is the previous writer's, so ours is forgotten) and the
    objects to stop polling."""
    gained: list[H] = []
    lost: list[H] = []
    for t in tracked:
        now = held(ownership, t.ref)
        if now.gains(t.held):
            if now.writes and not t.held.writes:
                t.written = None
            gained.append(t)
            continue
        if t.held.polls and not now.polls:
            lost.append(t)
        t.held = now
    return gained, lost


_acting: ContextVar[ObjectRef | None] = ContextVar("acting_for", default=None)


@contextlib.contextmanager
def acting_for(ref: ObjectRef) -> Iterator[None]:
    """Writes made inside (and in tasks started inside) are made for ``ref``."""
    token = _acting.set(ref)
    try:
        yield
    finally:
        _acting.reset(token)


def fence(ownership: Ownership) -> Callable[[], None]:
    """The check the Kubernetes client runs before each write: KubeFenced when the write is
    made for an object this replica may no longer write for."""

    def check() -> None:
        ref = _acting.get()
        if ref is not None and not ownership.writes(ref):
            raise KubeFenced(
                str(ref), 0, "Fenced", "this replica no longer owns it: the write is not sent"
            )

    return check
