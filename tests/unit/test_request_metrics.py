"""The metrics API's request series: k8s.io/apiserver's names, a bounded label set."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.request_metrics import RequestMetrics, request_labels
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import REQUEST_BUCKETS, Telemetry
from metrics_adapter.model.keda import ObjectRef

BASE = "/apis/external.metrics.k8s.io/v1beta1"
READ = f"{BASE}/namespaces/apps/s0-queue?labelSelector=scaledobject.keda.sh%2Fname%3Dworker"
GROUP = "external.metrics.k8s.io"


def client(app: RequestMetrics) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter")


def served() -> tuple[RequestMetrics, Telemetry]:
    store = MetricStore()
    worker = ObjectRef("apps", "worker")
    store.register(worker, ["s0-queue"])
    store.record_value(worker, "s0-queue", 3, True, datetime.now(UTC))
    telemetry = Telemetry()
    return RequestMetrics(create_app(store, Health(True, lambda: True)), telemetry), telemetry


def total(
    telemetry: Telemetry, verb: str, group: str, version: str, resource: str, code: str
) -> float:
    labels = {"verb": verb, "group": group, "version": version, "resource": resource, "code": code}
    return telemetry.registry.get_sample_value("apiserver_request_total", labels) or 0.0


def observations(telemetry: Telemetry, verb: str, group: str, version: str, resource: str) -> float:
    labels = {"verb": verb, "group": group, "version": version, "resource": resource}
    count = telemetry.registry.get_sample_value("apiserver_request_duration_seconds_count", labels)
    return count or 0.0


async def test_metric_reads_are_lists_of_externalmetrics_by_code() -> None:
    app, telemetry = served()
    async with client(app) as http:
        assert (await http.get(READ)).status_code == 200
        assert (await http.get(READ)).status_code == 200
        unknown = f"{BASE}/namespaces/apps/s0-other?labelSelector=scaledobject.keda.sh%2Fname%3Dw"
        assert (await http.get(unknown)).status_code == 404
        assert (await http.get(f"{BASE}/namespaces/apps/s0-queue")).status_code == 400
    assert total(telemetry, "LIST", GROUP, "v1beta1", "externalmetrics", "200") == 2
    assert total(telemetry, "LIST", GROUP, "v1beta1", "externalmetrics", "404") == 1
    assert total(telemetry, "LIST", GROUP, "v1beta1", "externalmetrics", "400") == 1
    assert observations(telemetry, "LIST", GROUP, "v1beta1", "externalmetrics") == 4


async def test_discovery_is_labelled_with_the_group_and_version_it_describes() -> None:
    app, telemetry = served()
    async with client(app) as http:
        for path in ("/apis", f"/apis/{GROUP}", BASE):
            assert (await http.get(path)).status_code == 200
    assert total(telemetry, "GET", "", "", "", "200") == 1
    assert total(telemetry, "GET", GROUP, "", "", "200") == 1
    assert total(telemetry, "GET", GROUP, "v1beta1", "", "200") == 1


async def test_probes_are_not_recorded() -> None:
    app, telemetry = served()
    async with client(app) as http:
        for path in ("/livez", "/readyz", "/healthz"):
            assert (await http.get(path)).status_code == 200
    samples = [s for m in telemetry.registry.collect() for s in m.samples]
    assert not [s for s in samples if s.name.startswith("apiserver_request") and s.value]


async def test_labels_never_carry_a_path_or_metric_name() -> None:
    """Whatever a client sends, the series count stays bounded by fixed label values."""
    app, telemetry = served()
    async with client(app) as http:
        for i in range(20):
            await http.get(f"{BASE}/namespaces/ns-{i}/s0-metric-{i}?labelSelector=a%3Db")
            await http.get(f"/random/{i}")
            await http.request(f"BREW{i}", f"/apis/{i}")
        await http.delete(READ)
    series = {
        tuple(s.labels[k] for k in ("verb", "group", "version", "resource", "code"))
        for m in telemetry.registry.collect()
        if m.name == "apiserver_request"
        for s in m.samples
    }
    assert series == {
        ("LIST", GROUP, "v1beta1", "externalmetrics", "400"),  # the selector a=b
        ("GET", "", "", "", "404"),
        ("other", "", "", "", "404"),
        ("DELETE", GROUP, "v1beta1", "externalmetrics", "405"),
    }
    assert total(telemetry, "other", "", "", "", "404") == 20
    assert total(telemetry, "DELETE", GROUP, "v1beta1", "externalmetrics", "405") == 1


async def test_an_app_that_raises_counts_as_500_and_still_raises() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    telemetry = Telemetry()
    app = RequestMetrics(broken, telemetry)
    scope: Scope = {"type": "http", "method": "GET", "path": READ.split("?")[0]}

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    with pytest.raises(RuntimeError, match="boom"):
        await app(scope, receive, send)
    assert total(telemetry, "LIST", GROUP, "v1beta1", "externalmetrics", "500") == 1


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    telemetry = Telemetry()

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await RequestMetrics(inner, telemetry)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


def test_label_tuples_are_shared_not_built_per_request() -> None:
    first = request_labels("GET", f"{BASE}/namespaces/a/s0-x")
    assert first == ("LIST", GROUP, "v1beta1", "externalmetrics")
    assert request_labels("GET", f"{BASE}/namespaces/b/s1-y") is first
    assert request_labels("GET", f"{BASE}/") == ("GET", GROUP, "v1beta1", "")
    assert request_labels("GET", "/livez") is None


async def test_children_are_bound_once_per_label_set(monkeypatch: pytest.MonkeyPatch) -> None:
    app, telemetry = served()
    bound: list[tuple[str, ...]] = []
    for series in (telemetry.requests, telemetry.request_duration):
        real = series.labels

        def counting(*labels: str, _real=real) -> object:  # type: ignore[no-untyped-def]
            bound.append(labels)
            return _real(*labels)

        monkeypatch.setattr(series, "labels", counting)
    async with client(app) as http:
        for _ in range(10):
            await http.get(READ)
    assert len(bound) == 2  # one histogram child, one counter child for code 200


def test_buckets_span_a_memory_read_to_the_aggregators_timeout() -> None:
    assert REQUEST_BUCKETS[0] == 0.0005
    assert REQUEST_BUCKETS[-1] == 10
    assert list(REQUEST_BUCKETS) == sorted(REQUEST_BUCKETS)
