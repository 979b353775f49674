"""The external metrics API through a real TLS socket, as the aggregator calls it."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.tls import self_signed_pair
from metrics_adapter.errors import APIError, BadRequest, MethodNotAllowed, api_error_for
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.model.keda import ObjectRef
from tests.support.servers import serving

BASE = "/apis/external.metrics.k8s.io/v1beta1"
SELECTOR = {"labelSelector": "scaledobject.keda.sh/name=echo-worker"}
PROTOBUF_FIRST = "application/vnd.kubernetes.protobuf, */*"
WHEN = datetime(2026, 11, 22, 8, 30, 0, tzinfo=UTC)


@dataclass
class Api:
    client: httpx.AsyncClient
    store: MetricStore
    health: Health


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    cert, key = self_signed_pair(tmp_path / "certs")
    store = MetricStore()
    ref = ObjectRef("event-demo", "echo-worker")
    store.register(ref, ["s0-nats-jetstream-JOBS", "s1-metric-api-queue-depth", "s2-cron-x"])
    store.record_value(ref, "s0-nats-jetstream-JOBS", 50, True, WHEN)
    store.record_value(ref, "s1-metric-api-queue-depth", 1.5, True, WHEN)
    store.record_error(ref, "s2-cron-x", "GET http://x: boom")
    health = Health(loaded=True, poller_running=lambda: True)
    app = create_app(store, health)
    async with serving(app, cert=cert, key=key) as url:
        context = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=url, verify=context) as client:
            yield Api(client, store, health)


async def test_discovery_lists_the_one_fixed_resource(api: Api) -> None:
    response = await api.client.get(BASE, headers={"Accept": PROTOBUF_FIRST})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "external.metrics.k8s.io/v1beta1",
        "resources": [
            {
                "name": "externalmetrics",
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
        ],
    }


async def test_value_as_the_hpa_reads_it(api: Api) -> None:
    response = await api.client.get(
        f"{BASE}/namespaces/event-demo/s0-nats-jetstream-JOBS",
        params=SELECTOR,
        headers={"Accept": PROTOBUF_FIRST},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": "s0-nats-jetstream-JOBS",
                "metricLabels": None,
                "timestamp": "2026-11-22T08:30:00Z",
                "value": "50",
            }
        ],
    }


async def test_fractions_are_milli_quantities(api: Api) -> None:
    response = await api.client.get(
        f"{BASE}/namespaces/event-demo/s1-metric-api-queue-depth", params=SELECTOR
    )
    assert response.json()["items"][0]["value"] == "1500m"


async def test_selector_in_set_form_and_encoded(api: Api) -> None:
    url = (
        f"{BASE}/namespaces/event-demo/s0-nats-jetstream-JOBS"
        "?labelSelector=scaledobject.keda.sh%2Fname%20in%20%28echo-worker%29"
    )
    response = await api.client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "code", "reason", "message"),
    [
        ("s0-nats-jetstream-JOBS", {}, 400, "BadRequest", "scaledObject name is not specified"),
        (
            "s0-nats-jetstream-JOBS",
            {"labelSelector": "a=b=c"},
            400,
            "BadRequest",
            "found '=', expected",
        ),
        (
            "s0-nats-jetstream-JOBS",
            {"labelSelector": "app=x"},
            400,
            "BadRequest",
            "scaledObject name is not specified",
        ),
        (
            "s0-nats-jetstream-JOBS",
            {"labelSelector": "scaledobject.keda.sh/name=other"},
            404,
            "NotFound",
            "ScaledObject event-demo/other not found",
        ),
        ("s9-nothing", SELECTOR, 404, "NotFound", "no matching metrics found for s9-nothing"),
        (
            "s2-cron-x",
            SELECTOR,
            503,
            "ServiceUnavailable",
            "metric:s2-cron-x encountered error: GET http://x: boom",
        ),
    ],
)
async def test_errors_are_kubernetes_status(
    api: Api, path: str, params: dict[str, str], code: int, reason: str, message: str
) -> None:
    response = await api.client.get(f"{BASE}/namespaces/event-demo/{path}", params=params)
    assert response.status_code == code
    body = response.json()
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    assert message in body["message"]


async def test_no_value_yet_is_503_not_zero(api: Api) -> None:
    ref = ObjectRef("event-demo", "fresh")
    api.store.register(ref, ["s0-cron-y"])
    response = await api.client.get(
        f"{BASE}/namespaces/event-demo/s0-cron-y",
        params={"labelSelector": "scaledobject.keda.sh/name=fresh"},
    )
    assert response.status_code == 503
    assert "has no value yet" in response.json()["message"]


async def test_unknown_paths_answer_status_json(api: Api) -> None:
    response = await api.client.get("/apis/custom.metrics.k8s.io/v1beta1")
    assert response.status_code == 404
    assert response.json()["kind"] == "Status"
    response = await api.client.post(BASE)
    assert response.status_code == 405
    assert response.json()["kind"] == "Status"


async def test_routing_errors_carry_their_own_reason(api: Api) -> None:
    """A method the route does not take is 405 MethodNotAllowed, with the methods it does."""
    response = await api.client.delete(f"{BASE}/namespaces/event-demo/s0-nats-jetstream-JOBS")
    assert response.status_code == 405
    body = response.json()
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 405, "MethodNotAllowed")
    assert response.headers["allow"] == "GET"
    response = await api.client.get("/apis/custom.metrics.k8s.io/v1beta1")
    assert (response.json()["code"], response.json()["reason"]) == (404, "NotFound")


def test_each_status_has_its_class_and_an_unknown_one_is_ours_to_fix() -> None:
    assert isinstance(api_error_for(405, "no"), MethodNotAllowed)
    assert isinstance(api_error_for(400, "bad"), BadRequest)
    unknown = api_error_for(418, "teapot")
    assert (type(unknown), unknown.code, unknown.reason) == (APIError, 500, "InternalError")


async def test_health_endpoints(api: Api) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        assert (await api.client.get(path)).status_code == 200
    api.health.loaded = False
    response = await api.client.get("/readyz")
    assert response.status_code == 503 and b"objects not loaded" in response.content
    assert (await api.client.get("/livez")).status_code == 200


async def test_group_documents(api: Api) -> None:
    groups = (await api.client.get("/apis")).json()
    assert groups["groups"][0]["name"] == "external.metrics.k8s.io"
    group = (await api.client.get("/apis/external.metrics.k8s.io")).json()
    assert group["preferredVersion"]["groupVersion"] == "external.metrics.k8s.io/v1beta1"


async def test_keep_alive_serves_many_requests_on_one_connection(api: Api) -> None:
    for _ in range(50):
        response = await api.client.get(
            f"{BASE}/namespaces/event-demo/s0-nats-jetstream-JOBS", params=SELECTOR
        )
        assert json.loads(response.content)["items"][0]["value"] == "50"


async def test_plain_http_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed_pair(tmp_path)
    app = create_app(MetricStore(), Health(loaded=True))
    async with serving(app, cert=cert, key=key) as url, httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(url.replace("https://", "http://") + "/healthz")


async def test_unknown_certificate_authority_is_refused_by_clients(
    api: Api, tmp_path: Path
) -> None:
    other_cert, _ = self_signed_pair(tmp_path / "other")
    context = ssl.create_default_context(cafile=str(other_cert))
    async with httpx.AsyncClient(base_url=str(api.client.base_url), verify=context) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/healthz")
