"""Events counted, not repeated: an Event equal to one already written (same object, reason,
message, type and component) becomes that Event's ``count`` + 1 and a new
``lastTimestamp``, as client-go's recorder (its EventCorrelator) does. ``kubectl describe``
then shows one line ``(x12 over 5m)`` instead of twelve, and etcd holds one object.

The series is remembered per process in a bounded LRU (client-go's 4096). An Event that
kube-apiserver has dropped meanwhile (events live an hour) answers the patch with 404, and
the next one starts a new series."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from metrics_adapter.errors import KubeNotFound
from metrics_adapter.kube.objects import Event
from metrics_adapter.kube.wire import rfc3339

MAX_SERIES = 4096
"""client-go's ``maxLruCacheEntries``."""

SeriesKey = tuple[str, str, str, str, str, str, str, str]


@dataclass(slots=True)
class Series:
    name: str
    namespace: str
    count: int


def series_key(event: Event) -> SeriesKey:
    r = event.regarding
    return (
        event.component,
        r.kind,
        event.namespace,
        r.name,
        r.uid,
        event.type,
        event.reason,
        event.message,
    )


Create = Callable[[Event], Awaitable[object]]
Patch = Callable[[str, str, dict[str, object]], Awaitable[object]]


class EventSeries:
    """Writes each Event once, then counts its repetitions on it."""

    def __init__(self, create: Create, patch: Patch, maxsize: int = MAX_SERIES) -> None:
        self._create = create
        self._patch = patch
        self._series: OrderedDict[SeriesKey, Series] = OrderedDict()
        self._maxsize = maxsize

    async def record(self, event: Event) -> None:
        key = series_key(event)
        known = self._series.get(key)
        if known is not None:
            self._series.move_to_end(key)
            body: dict[str, object] = {"count": known.count + 1, "lastTimestamp": rfc3339(event.at)}
            try:
                await self._patch(known.namespace, known.name, body)
            except KubeNotFound:
                self._series.pop(key, None)  # expired on the server: a new series
            else:
                known.count += 1
                return
        await self._create(event)
        self._series[key] = Series(event.name, event.namespace, 1)
        if len(self._series) > self._maxsize:
            self._series.popitem(last=False)  # the least recently seen series
