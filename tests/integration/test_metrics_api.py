"""metrics-api against a real HTTP(S) server on loopback: paths, auth, TLS, bad answers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from metrics_adapter.api.tls import self_signed_pair
from scalers import metrics_api
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.support.servers import serving
from tests.support.triggers import (
    bound_trigger,
    build,
    new_poller,
    reading,
)
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

DOCUMENT = {"queue": {"depth": 42, "ratio": "1500m"}, "workers": [{"busy": 3}, {"busy": 4}]}
BASIC = "Basic " + base64.b64encode(b"scaler:s3cret").decode()


async def stats(request: Request) -> Response:
    return JSONResponse(DOCUMENT)


async def guarded(request: Request) -> Response:
    ok = (
        request.headers.get("x-api-key") == "k1"
        or request.headers.get("x-custom") == "c1"
        or request.query_params.get("token") == "k1"
        or request.headers.get("authorization") in (BASIC, "Bearer t0k")
    )
    return JSONResponse(DOCUMENT) if ok else JSONResponse({"error": "denied"}, status_code=401)


async def garbage(request: Request) -> Response:
    return PlainTextResponse("<html>oops</html>")


async def slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return JSONResponse(DOCUMENT)


YAML_STATS = "queue:\n  depth: 42\n  ratio: 1500m\nworkers:\n  - busy: 3\n  - busy: 4\n"
EXPOSITION = (
    "# HELP queue_depth Items waiting.\n# TYPE queue_depth gauge\n"
    'queue_depth{queue="orders"} 42\r\nqueue_depth{queue="mail"} 7\n'
    "# TYPE lat summary\nlat_sum 3\nlat_count 2\nbusy_workers 3"  # no final newline
)


async def yaml_stats(request: Request) -> Response:
    return PlainTextResponse(YAML_STATS, media_type="application/yaml")


async def exposition(request: Request) -> Response:
    return PlainTextResponse(EXPOSITION, media_type="text/plain; version=0.0.4")


async def xml_stats(request: Request) -> Response:
    return Response("<queue><depth>42</depth></queue>", media_type="application/xml")


APP = Starlette(
    routes=[
        Route("/stats", stats),
        Route("/stats.yaml", yaml_stats),
        Route("/metrics", exposition),
        Route("/stats.xml", xml_stats),
        Route("/guarded", guarded),
        Route("/garbage", garbage),
        Route("/slow", slow),
    ]
)


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    async with serving(APP) as url:
        yield url


def make(
    url: str, auth: dict[str, str] | None = None, **metadata: str
) -> metrics_api.MetricsApiScaler:
    fields = {"url": url, "valueLocation": "queue.depth", "targetValue": "10", **metadata}
    return build(metrics_api.KIND, metrics_api.MetricsApiScaler, fields, auth)


@pytest.mark.parametrize(
    ("location", "expected"),
    [("queue.depth", 42), ("queue.ratio", 1.5), ("workers.1.busy", 4), ("workers.#", 2)],
)
async def test_value_locations(http_url: str, location: str, expected: float) -> None:
    assert await measure(make(f"{http_url}/stats", valueLocation=location)) == expected


@pytest.mark.parametrize(
    ("auth_mode", "metadata", "auth"),
    [
        ("apiKey", {}, {"apiKey": "k1"}),
        ("apiKey", {"method": "query", "keyParamName": "token"}, {"apiKey": "k1"}),
        ("basic", {}, {"username": "scaler", "password": "s3cret"}),
        ("bearer", {}, {"token": "t0k"}),
        ("bearer", {}, {"bearerToken": "t0k"}),
        ("custom", {}, {"customAuthHeader": "X-Custom", "customAuthValue": "c1"}),
        ("apiKey", {"apiKey": "k1"}, {}),
    ],
)
async def test_auth_modes(
    http_url: str, auth_mode: str, metadata: dict[str, str], auth: dict[str, str]
) -> None:
    scaler = make(f"{http_url}/guarded", auth, authMode=auth_mode, **metadata)
    assert await measure(scaler) == 42


async def test_refused_auth_is_an_error_with_the_status(http_url: str) -> None:
    scaler = make(f"{http_url}/guarded", {"apiKey": "wrong"}, authMode="apiKey")
    with pytest.raises(SourceResponseError, match="HTTP 401"):
        await measure(scaler)


async def test_garbage_and_missing_paths_are_errors(http_url: str) -> None:
    with pytest.raises(SourceResponseError, match="not JSON"):
        await measure(make(f"{http_url}/garbage"))
    with pytest.raises(SourceResponseError, match=r'valueLocation "queue\.nope": queue\.nope'):
        await measure(make(f"{http_url}/stats", valueLocation="queue.nope"))
    with pytest.raises(SourceResponseError, match="is a dict, expected a number"):
        await measure(make(f"{http_url}/stats", valueLocation="queue"))


async def test_slow_server_times_out(http_url: str) -> None:
    with pytest.raises(SourceTimeout, match=r"no answer within 0\.3s"):
        await measure(make(f"{http_url}/slow"), client_timeout=0.3)


async def test_tls_verified_with_ca_or_skipped_with_unsafe_ssl(tmp_path: Path) -> None:
    cert, key = self_signed_pair(tmp_path)
    async with serving(APP, cert=cert, key=key) as url:
        with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            await measure(make(f"{url}/stats"))
        assert await measure(make(f"{url}/stats", unsafeSsl="true")) == 42
        trusted = make(f"{url}/stats", {"ca": cert.read_text()})
        assert await measure(trusted) == 42


async def test_per_trigger_timeout_ends_the_poll_before_the_adapters(http_url: str) -> None:
    """KEDA's ``timeout``: shorter than the adapter's own, it bounds this trigger's call."""
    with pytest.raises(SourceTimeout, match=r"within the trigger's timeout 0\.3s"):
        await measure(make(f"{http_url}/slow", timeout="300ms"), client_timeout=5)


async def test_a_url_keda_cannot_request_fails_its_trigger_not_the_object(http_url: str) -> None:
    """KEDA accepts ``url: invalid-invalid`` and fails when it polls: bound through the real
    parser and binder, the trigger polls and fails naming the url, while a good trigger
    polled by the same poller is served."""
    meta = {"valueLocation": "queue.depth", "targetValue": "10"}
    bad = bound_trigger("bad-url", {**meta, "url": "invalid-invalid"}, "metrics-api")
    good = bound_trigger("good-url", {**meta, "url": f"{http_url}/stats"}, "metrics-api")
    poller = new_poller(timeout=5)
    try:
        for bound in (bad, good):
            poller.set_triggers(bound.so, [bound])
            await poller.poll(bound.scaler.query)
    finally:
        await poller.clients.aclose()
    failed = reading(poller.store, bad)
    assert failed.value is None
    assert failed.error is not None and 'url "invalid-invalid" cannot be requested' in failed.error
    assert reading(poller.store, good).value == 42


@pytest.mark.parametrize(
    ("path", "fmt", "location", "expected"),
    [
        ("/stats.yaml", "yaml", "queue.depth", 42),
        ("/stats.yaml", "yaml", "queue.ratio", 1.5),
        ("/stats.yaml", "yaml", "workers.1.busy", 4),
        ("/metrics", "prometheus", "queue_depth", 42),
        ("/metrics", "prometheus", 'queue_depth{queue="mail"}', 7),
        ("/metrics", "prometheus", "busy_workers", 3),
    ],
)
async def test_each_format_keda_reads(
    http_url: str, path: str, fmt: str, location: str, expected: float
) -> None:
    scaler = make(f"{http_url}{path}", format=fmt, valueLocation=location)
    assert await measure(scaler) == expected


async def test_a_format_the_answer_is_not_fails_the_poll(http_url: str) -> None:
    with pytest.raises(SourceResponseError, match="answer is not YAML"):
        await measure(make(f"{http_url}/metrics", format="yaml"))
    with pytest.raises(SourceResponseError, match="answer is not the Prometheus text format"):
        await measure(make(f"{http_url}/stats.yaml", format="prometheus"))
    with pytest.raises(SourceResponseError, match="metric 'lat_count' not found"):
        await measure(make(f"{http_url}/metrics", format="prometheus", valueLocation="lat_count"))


async def test_xml_fails_when_polled_as_in_keda(http_url: str) -> None:
    with pytest.raises(SourceResponseError, match="format xml: reading XML answers"):
        await measure(make(f"{http_url}/stats.xml", format="xml"))


async def test_formats_use_the_same_auth_and_timeout(http_url: str) -> None:
    guarded = make(f"{http_url}/guarded", {"bearerToken": "t0k"}, authMode="bearer", format="yaml")
    assert await measure(guarded) == 42  # JSON is YAML
    with pytest.raises(SourceResponseError, match="HTTP 401"):
        await measure(make(f"{http_url}/guarded", format="prometheus"))
    with pytest.raises(SourceTimeout, match=r"within the trigger's timeout 0\.3s"):
        await measure(make(f"{http_url}/slow", format="yaml", timeout="300ms"), client_timeout=5)
