"""What both controllers do alike with the objects they own: follow their watch, tell a
spec change from a status update, and hold a deleted object until our finalizer is
removed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from metrics_adapter.control.work import guarded
from metrics_adapter.errors import KubeError, KubeNotFound
from metrics_adapter.kube.client import KubeClient, Resource
from metrics_adapter.kube.objects import ObjectMeta, finalizers_patch
from metrics_adapter.kube.scope import EVERY_NAMESPACE, Scope
from metrics_adapter.kube.watch import watch_scoped

log = logging.getLogger(__name__)

FINALIZER = "finalizer.keda.sh"
"""KEDA's, so an object KEDA finalized is finalized here too after a switch."""

Version = tuple[object, ...]


def spec_version(meta: ObjectMeta) -> Version:
    """What a reconcile depends on: the generation, and the annotations and labels (pausing
    and other metadata changes do not bump the generation)."""
    # Sorted tuples, not frozensets: an empty one is shared, where each empty frozenset took
    # 216 bytes, twice per object (tracemalloc).
    return (
        meta.generation,
        tuple(sorted(meta.annotations.items())),
        tuple(sorted(meta.labels.items())),
    )


async def add_finalizer(kube: KubeClient, resource: Resource, meta: ObjectMeta) -> None:
    if FINALIZER not in meta.finalizers:
        patch = finalizers_patch((*meta.finalizers, FINALIZER))
        await kube.patch(resource, meta.name, meta.namespace, patch)


async def remove_finalizer(kube: KubeClient, resource: Resource, meta: ObjectMeta) -> None:
    """Let the deletion finish; an object already gone is fine."""
    remaining = tuple(f for f in meta.finalizers if f != FINALIZER)
    with contextlib.suppress(KubeNotFound):
        await kube.patch(resource, meta.name, meta.namespace, finalizers_patch(remaining))


RECONCILE_WORKERS = 5
"""Objects reconciled at once (KEDA's default for ScaledObjects): each waits for a few API
round trips and writes, so 5,000 new objects are not reconciled one after another."""


class _Document(Protocol):
    @property
    def ref(self) -> Hashable: ...


D = TypeVar("D", bound=_Document)


class LatestEvents(Generic[D]):
    """The latest event of each object, handled by workers one object at a time: an object
    whose events arrive while it is being handled is handled again, with the last one."""

    def __init__(
        self, reconcile: Callable[[D], Awaitable[None]], forget: Callable[[D], None]
    ) -> None:
        self._reconcile, self._forget = reconcile, forget
        self._latest: dict[Hashable, tuple[bool, D]] = {}
        self._due: asyncio.Queue[Hashable] = asyncio.Queue()
        self._running: set[Hashable] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, document: D, deleted: bool) -> None:
        ref = document.ref
        if ref not in self._latest and ref not in self._running:
            self._due.put_nowait(ref)
        self._latest[ref] = (deleted, document)
        self._idle.clear()

    async def drained(self) -> None:
        """Until every event added so far has been handled."""
        await self._idle.wait()

    async def work(self) -> None:
        while True:
            ref = await self._due.get()
            self._running.add(ref)
            try:
                while (event := self._latest.pop(ref, None)) is not None:
                    deleted, document = event
                    if deleted:
                        self._forget(document)
                    else:
                        await guarded(self._reconcile(document))
            finally:
                self._running.discard(ref)
                if not self._latest and not self._running:
                    self._idle.set()


class _Meta(Protocol):
    @property
    def meta(self) -> ObjectMeta: ...


M = TypeVar("M", bound=_Meta)


async def latest(
    kube: KubeClient, resource: Resource, read: Callable[[Mapping[str, Any]], M], document: M
) -> M | None:
    """``document`` as kube-apiserver holds it now, for a replica about to write for an
    object another replica wrote for until now: its watch may not have delivered that
    replica's last status yet, and a status written from an older one would move
    ``lastActiveTime`` back (a cooldown ended early) and lose ``originalReplicaCount``.
    None: it is gone. When it cannot be read, the watched one: the watch catches up, and
    nothing else would be better (a ScaledObject watched as its metadata alone is read
    again later)."""
    meta = document.meta
    try:
        raw = await kube.get(resource, meta.name, meta.namespace)
    except KubeNotFound:
        return None
    except KubeError as exc:
        log.warning("%s; its watched copy stands in", exc)
        return document
    return read(raw)


async def take_over(
    kube: KubeClient,
    resource: Resource,
    read: Callable[[Mapping[str, Any]], M],
    document: M,
    *,
    writes: bool,
    reconcile: Callable[[M], Awaitable[None]],
) -> None:
    """Reconcile an object this replica gained: from kube-apiserver's copy when it
    ``writes`` for it from now on (:func:`latest`), else from the watched one."""
    current = await latest(kube, resource, read, document) if writes else document
    if current is not None:
        await reconcile(current)


async def reconcile_all(
    documents: Iterable[D],
    reconcile: Callable[[D], Awaitable[None]],
    workers: int = RECONCILE_WORKERS,
) -> None:
    """Reconcile every one of ``documents``, ``workers`` at once (a new leader's 5,000
    objects, a few writes each, in a fifth of the time); a failure stays with its object."""
    turns = asyncio.Semaphore(workers)

    async def one(document: D) -> None:
        async with turns:
            await guarded(reconcile(document))

    await asyncio.gather(*(one(d) for d in documents))


async def follow(
    kube: KubeClient,
    resource: Resource,
    read: Callable[[Mapping[str, Any]], D],
    reconcile: Callable[[D], Awaitable[None]],
    forget: Callable[[D], None],
    synced: asyncio.Event,
    scope: Scope = EVERY_NAMESPACE,
    workers: int = RECONCILE_WORKERS,
) -> None:
    """Watch ``resource`` until cancelled: each object typed at the edge by ``read``, then
    reconciled (a failure stays with its object) or, once deleted, forgotten, ``workers``
    objects at once and each object's events in order (a burst of them: the last);
    ``synced`` set once the first list is through and reconciled; watched where ``scope``
    says."""
    latest = LatestEvents(reconcile, forget)
    async with asyncio.TaskGroup() as group:
        running = [group.create_task(latest.work()) for _ in range(workers)]
        try:
            async with contextlib.aclosing(watch_scoped(kube, resource, scope)) as events:
                async for event in events:
                    if event.type == "SYNCED":
                        await latest.drained()
                        synced.set()
                        continue
                    latest.add(read(event.object), deleted=event.type == "DELETED")
        finally:
            for task in running:
                task.cancel()
