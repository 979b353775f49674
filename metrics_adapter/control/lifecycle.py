"""What both controllers do alike with the objects they own: follow their watch, tell a
spec change from a status update, and hold a deleted object until our finalizer is
removed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from metrics_adapter.control.work import guarded
from metrics_adapter.errors import KubeNotFound
from metrics_adapter.kube.client import KubeClient, Resource
from metrics_adapter.kube.objects import ObjectMeta, finalizers_patch
from metrics_adapter.kube.scope import EVERY_NAMESPACE, Scope
from metrics_adapter.kube.watch import watch_scoped

FINALIZER = "finalizer.keda.sh"
"""KEDA's, so an object KEDA finalized is finalized here too after a switch."""

Version = tuple[object, ...]


def spec_version(meta: ObjectMeta) -> Version:
    """What a reconcile depends on: the generation, and the annotations and labels (pausing
    and other metadata changes do not bump the generation)."""
    return (meta.generation, frozenset(meta.annotations.items()), frozenset(meta.labels.items()))


async def add_finalizer(kube: KubeClient, resource: Resource, meta: ObjectMeta) -> None:
    if FINALIZER not in meta.finalizers:
        patch = finalizers_patch((*meta.finalizers, FINALIZER))
        await kube.patch(resource, meta.name, meta.namespace, patch)


async def remove_finalizer(kube: KubeClient, resource: Resource, meta: ObjectMeta) -> None:
    """Let the deletion finish; an object already gone is fine."""
    remaining = tuple(f for f in meta.finalizers if f != FINALIZER)
    with contextlib.suppress(KubeNotFound):
        await kube.patch(resource, meta.name, meta.namespace, finalizers_patch(remaining))


D = TypeVar("D")


async def follow(
    kube: KubeClient,
    resource: Resource,
    read: Callable[[Mapping[str, Any]], D],
    reconcile: Callable[[D], Awaitable[None]],
    forget: Callable[[D], None],
    synced: asyncio.Event,
    scope: Scope = EVERY_NAMESPACE,
) -> None:
    """Watch ``resource`` until cancelled: each object typed at the edge by ``read``, then
    reconciled (a failure stays with its object) or, once deleted, forgotten; ``synced``
    set once the first list is through; watched where ``scope`` says."""
    async with contextlib.aclosing(watch_scoped(kube, resource, scope)) as events:
        async for event in events:
            if event.type == "SYNCED":
                synced.set()
                continue
            document = read(event.object)
            if event.type == "DELETED":
                forget(document)
            else:
                await guarded(reconcile(document))
