"""List+watch of one resource, as an async iterator that runs until cancelled: an informer
without the cache (the consumer keeps the objects it needs, in the shape it needs).

It lists, yields each object and ``SYNCED``, then watches from the list's resourceVersion;
a watch the server ends is resumed from the last resourceVersion seen (bookmarks keep it
fresh), and a ``410 Gone`` starts over with a list, whose difference to what was yielded
comes out as ADDED/MODIFIED/DELETED. On kube-apiserver 1.34 an expired resourceVersion is
no HTTP error: the watch answers 200, sends one ``ERROR`` event with a ``Status``
(``code: 410``, ``reason: Expired``, ``too old resource version: 1 (228)``) and closes.

Every failure is logged and retried, never raised: the first retry at once, then with
exponential backoff, at most SOON seconds apart while kube-apiserver restarts (connections
refused, 429 while its storage initializes) and MAX_BACKOFF otherwise. An expired version is
re-listed at once, as client-go does. A watch that ends early without delivering anything
counts as a failure, so nothing ever loops hot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, Literal, NamedTuple

from metrics_adapter.errors import KubeError, KubeGone, KubeUnreachable
from metrics_adapter.kube.client import KubeClient, Obj, Resource
from metrics_adapter.kube.scope import EVERYWHERE, Scope

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "SYNCED"]
_CHANGES: dict[str, EventType] = {"ADDED": "ADDED", "MODIFIED": "MODIFIED", "DELETED": "DELETED"}
MAX_BACKOFF = 30.0
SOON = 2.0
"""Seconds between attempts at most while kube-apiserver restarts: connections refused or
reset, or 429 while its storage initializes. It is watched again within this of its return,
and such an attempt costs it nothing. A timeout (a slow server) or an answer that refuses
(403, 500) backs off to MAX_BACKOFF."""
HEALTHY_SECONDS = 5.0
"""A watch that delivered nothing and ended sooner than this counts as a failure."""


class WatchEvent(NamedTuple):
    """``ADDED``/``MODIFIED``/``DELETED`` of one object, or ``SYNCED`` once a (re-)list has
    been yielded in full (its object holds only ``metadata.resourceVersion``)."""

    type: EventType
    object: Obj


async def watch(
    client: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    *,
    field_selector: str = "",
    label_selector: str = "",
    resource_version: str | None = None,
) -> AsyncGenerator[WatchEvent, None]:
    """Events of ``resource`` (in ``namespace``, else everywhere) until cancelled.

    After a re-list, objects deleted while no watch ran come as ``DELETED`` with the object
    cut to its name. Started from ``resource_version``, the first list is skipped, so objects
    the caller knew from before and that were deleted meanwhile are not reported. Iterate it
    inside ``contextlib.aclosing`` so that stopping, or a cancel, closes the connection.
    """
    what = resource.subject(namespace)
    known: dict[tuple[str, str], str] = {}
    version, backoff = resource_version, _Backoff()
    while True:
        began, progressed, listed = time.monotonic(), False, version is None
        soon = relist_now = False
        try:
            if version is None:
                items, version = await client.list_objects(
                    resource,
                    namespace,
                    field_selector=field_selector,
                    label_selector=label_selector,
                )
                for event in relist_events(resource, known, items):
                    yield event
                yield WatchEvent("SYNCED", {"metadata": {"resourceVersion": version}})
            stream = client.open_watch(resource, namespace, field_selector, version, label_selector)
            async with contextlib.aclosing(stream) as events:
                async for kind, obj in events:
                    progressed = True
                    version = _version(obj) or version
                    if change := _CHANGES.get(kind):
                        _remember(known, change, obj)
                        yield WatchEvent(change, obj)
            level, why, reason = logging.DEBUG, "the server ended the watch", "ended"
        except KubeGone as exc:
            level, why, version = logging.INFO, f"{exc.message}; re-listing", None
            reason = "expired"
            # As client-go: an expired version is re-listed at once, unless it came from a
            # list just made (a server that expires everything is not asked in a loop).
            relist_now = not listed
        except KubeUnreachable as exc:  # refused or reset: a restart, most often
            level, why, reason = logging.WARNING, str(exc), "error"
            soon = exc.reason != "Timeout"  # a slow server is not asked faster
        except KubeError as exc:
            level, why, reason = logging.WARNING, str(exc), "error"
            soon = exc.code == 429  # "storage is (re)initializing": a starting server
        except Exception:  # a watch must outlive any one bad answer; the traceback says which
            log.exception("watch %s failed", what)
            level, why, reason = logging.ERROR, "unexpected failure", "error"
        client.observer.watch_restart(resource.plural, reason)
        if progressed or time.monotonic() - began >= HEALTHY_SECONDS:
            backoff.reset()
        delay = 0.0 if relist_now else backoff.next(SOON if soon else None)
        log.log(level, "watch %s: %s; reconnecting in %.1fs", what, why, delay)
        await asyncio.sleep(delay)


async def watch_scoped(
    client: KubeClient,
    resource: Resource,
    scope: Scope,
    *,
    label_selector: str = "",
    field_selector: str = "",
) -> AsyncGenerator[WatchEvent, None]:
    """:func:`watch` of ``resource`` wherever ``scope`` watches it: everywhere at once, or one
    watch per namespace merged into one stream, ``SYNCED`` first once every namespace has
    been listed (then each re-list's own). Nowhere: ``SYNCED`` at once, then nothing."""
    watched = scope.watched(resource)
    selectors = {"label_selector": label_selector, "field_selector": field_selector}
    if watched == EVERYWHERE or len(watched) == 1:
        one = watch(client, resource, watched[0], **selectors)
        async with contextlib.aclosing(one) as events:
            async for event in events:
                yield event
        return
    if not watched:
        yield WatchEvent("SYNCED", {"metadata": {"resourceVersion": ""}})
        await asyncio.Event().wait()  # until cancelled
    queue: asyncio.Queue[tuple[str | None, WatchEvent]] = asyncio.Queue()

    async def feed(namespace: str | None) -> None:
        async with contextlib.aclosing(watch(client, resource, namespace, **selectors)) as events:
            async for event in events:
                await queue.put((namespace, event))

    feeds = [
        asyncio.create_task(feed(ns), name=f"watch {resource.plural} in {ns}") for ns in watched
    ]
    unsynced = set(watched)
    try:
        while True:
            namespace, event = await queue.get()
            if event.type == "SYNCED" and unsynced:
                unsynced.discard(namespace)
                if unsynced:
                    continue
            yield event
    finally:
        for task in feeds:
            task.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name"))


def _remember(known: dict[tuple[str, str], str], change: str, obj: Mapping[str, Any]) -> None:
    if change == "DELETED":
        known.pop(_key(obj), None)
    else:
        known[_key(obj)] = _version(obj)


def relist_events(
    resource: Resource, known: dict[tuple[str, str], str], items: list[Obj]
) -> Iterator[WatchEvent]:
    """What a fresh list changes for a consumer that has seen ``known``; updates ``known``."""
    listed = {_key(item): item for item in items}
    for key, item in listed.items():
        if key not in known:
            yield WatchEvent("ADDED", item)
        elif known[key] != _version(item):
            yield WatchEvent("MODIFIED", item)
    for (namespace, name), version in list(known.items()):
        if (namespace, name) not in listed:
            meta = {"name": name, "resourceVersion": version}
            if namespace:
                meta["namespace"] = namespace
            gone = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta}
            yield WatchEvent("DELETED", gone)
    known.clear()
    known.update({key: _version(item) for key, item in listed.items()})


class _Backoff:
    """0, then 0.5 s doubling to MAX_BACKOFF, each with ±20 % jitter so watches do not retry
    in step."""

    def __init__(self) -> None:
        self._failures = 0

    def reset(self) -> None:
        self._failures = 0

    def next(self, most: float | None = None) -> float:
        """The next delay, at most ``most`` seconds when given."""
        self._failures += 1
        if self._failures == 1:
            return 0.0
        ceiling = MAX_BACKOFF if most is None else min(most, MAX_BACKOFF)
        return min(ceiling, 0.5 * 2.0 ** (self._failures - 2)) * random.uniform(0.8, 1.2)
