"""``apiserver_request_total`` and ``apiserver_request_duration_seconds`` for the metrics API.

Labels follow k8s.io/apiserver: a read of one External metric is verb ``LIST`` on resource
``externalmetrics`` (the path names a collection, never an object); discovery is ``GET`` with
the group and version it describes and no resource; an admission review is ``POST`` on resource
``admissionreviews`` of ``admission.k8s.io/v1``; any other path is ``GET`` (or its method) with
every label empty. Values come from fixed sets, never from the path, so a client cannot
grow the series count. Probes (``/livez``, ``/readyz``, ``/healthz``) are not recorded: the
kubelet's polling would drown the HPA's traffic.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrics_adapter.api import paths
from metrics_adapter.kube import wire
from metrics_adapter.metrics.telemetry import Telemetry

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT")

Labels = tuple[str, str, str, str]
"""(verb, group, version, resource)"""


def _by_method(group: str, version: str, resource: str = "") -> dict[str, Labels]:
    """The label tuples of one kind of path, built once: a request only looks one up."""
    table = {m: (m, group, version, resource) for m in (*METHODS, "other")}
    if resource:
        table["GET"] = ("LIST", group, version, resource)
    return table


_READS = _by_method(wire.GROUP, wire.VERSION, "externalmetrics")
_ADMISSION = _by_method("admission.k8s.io", "v1", "admissionreviews")
_DISCOVERY = {
    paths.APIS: _by_method("", ""),
    paths.GROUP: _by_method(wire.GROUP, ""),
    paths.GROUP_VERSION: _by_method(wire.GROUP, wire.VERSION),
}
_OTHER = _DISCOVERY[paths.APIS]


def request_labels(method: str, path: str) -> Labels | None:
    """The labels of a request, or ``None`` for a probe."""
    if path in paths.PROBES:
        return None
    if path.startswith(paths.NAMESPACES):
        table = _READS
    elif path in paths.ADMISSION:
        table = _ADMISSION
    else:
        table = _DISCOVERY.get(path.rstrip("/"), _OTHER)
    return table.get(method) or table["other"]


class _Children:
    """One label set's bound series: the histogram, and a counter per status code."""

    __slots__ = ("codes", "duration", "labels", "total")

    def __init__(self, telemetry: Telemetry, labels: Labels) -> None:
        self.labels = labels
        self.duration: Histogram = telemetry.request_duration.labels(*labels)
        self.total: Counter = telemetry.requests
        self.codes: dict[int, Counter] = {}

    def observe(self, code: int, seconds: float) -> None:
        counter = self.codes.get(code)
        if counter is None:
            counter = self.codes[code] = self.total.labels(*self.labels, str(code))
        counter.inc()
        self.duration.observe(seconds)


class RequestMetrics:
    """Pure-ASGI middleware: times each HTTP request and counts it by its status code."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
        self._children: dict[Labels, _Children] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        labels = request_labels(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if labels is None:
            await self.app(scope, receive, send)
            return
        code = 500  # what the client sees when the app raises before it starts a response

        async def send_recording_code(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_recording_code)
        finally:
            self._bound(labels).observe(code, time.perf_counter() - started)

    def _bound(self, labels: Labels) -> _Children:
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = _Children(self.telemetry, labels)
        return children
