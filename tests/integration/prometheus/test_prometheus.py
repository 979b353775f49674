"""prometheus against a real Prometheus: answers, auth, TLS, failures, one request per query."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.keda import parse_scaled_object
from scalers import prometheus as prometheus_scaler
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.support import triggers
from tests.support.pki import Pki
from tests.support.prometheus import PASSWORD, USERNAME, Exposition, PrometheusServer
from tests.support.servers import serving
from tests.support.triggers import build, new_poller, reading
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration
bound_trigger = functools.partial(triggers.bound_trigger, trigger_type="prometheus")


def scaler(
    server_address: str, metadata: dict[str, str], auth: dict[str, str] | None = None
) -> prometheus_scaler.PrometheusScaler:
    fields = {"serverAddress": server_address, "query": "vector(5)", "threshold": "10", **metadata}
    return build(prometheus_scaler.KIND, prometheus_scaler.PrometheusScaler, fields, auth)


async def poll_once(metadata: dict[str, str], client_timeout: float = 2) -> Reading:
    poller = new_poller(client_timeout)
    store, clients = poller.store, poller.clients
    bound = bound_trigger("w", metadata)
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
    finally:
        await clients.aclose()
    return reading(store, bound)


# Fidelity: what the target serves (conftest.SAMPLES) and the trigger → what the HPA sees.

FIDELITY: list[tuple[str, str, dict[str, str], float, bool, int]] = [
    ("one-series", 'queue_depth{queue="jobs"}', {}, 42, True, 5),
    ("aggregated", "sum(queue_depth)", {}, 49, True, 5),
    ("at-activation", 'queue_depth{queue="mail"}', {"activationThreshold": "7"}, 7, False, 1),
    ("fraction", "queue_ratio", {"threshold": "0.1"}, 0.25, True, 3),
    ("negative-raw-activation", "queue_negative", {"activationThreshold": "-5"}, -3, True, 0),
    ("constant", "vector(5)", {"threshold": "2"}, 5, True, 3),
    ("empty-ignored", "nothing_here", {}, 0, False, 0),
    ("nan-ignored", "queue_nan", {}, 0, False, 0),
    ("inf-ignored", "queue_inf", {}, 0, False, 0),
    ("range-vector-reads-empty", "queue_ratio[1m]", {}, 0, False, 0),
]


@pytest.mark.parametrize(
    ("query", "metadata", "value", "active", "replicas"),
    [pytest.param(*row[1:], id=row[0]) for row in FIDELITY],
)
async def test_fidelity(
    prometheus: PrometheusServer,
    query: str,
    metadata: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    got = await poll_once(
        {"serverAddress": prometheus.url, "query": query, "threshold": "10", **metadata}
    )
    assert got.error is None
    assert (got.value, got.active) == (value, active)
    threshold = float(metadata.get("threshold", "10"))
    assert math.ceil(value / threshold) == replicas


FIDELITY_ERRORS: list[tuple[str, str, dict[str, str], str]] = [
    ("empty", "nothing_here", {"ignoreNullValues": "false"}, "returned no series"),
    ("nan", "queue_nan", {"ignoreNullValues": "false"}, "returned NaN"),
    ("inf", "queue_inf", {"ignoreNullValues": "false"}, r"returned \+Inf"),
    ("two-series", "queue_depth", {}, "returned 2 series, expected one"),
    ("scalar", "scalar(sum(queue_depth))", {}, "returned a scalar"),
    ("bad-promql", "sum(", {}, "HTTP 400: .*parse error"),
]


@pytest.mark.parametrize(
    ("query", "metadata", "error"),
    [pytest.param(*row[1:], id=row[0]) for row in FIDELITY_ERRORS],
)
async def test_fidelity_errors_are_never_a_zero(
    prometheus: PrometheusServer, query: str, metadata: dict[str, str], error: str
) -> None:
    got = await poll_once(
        {"serverAddress": prometheus.url, "query": query, "threshold": "1", **metadata}
    )
    assert got.error is not None
    assert got.value is None and not got.active
    with pytest.raises(SourceResponseError, match=error):
        await measure(scaler(prometheus.url, {"query": query, **metadata}))


async def test_a_changed_value_and_a_lost_target(
    prometheus: PrometheusServer, exposition: Exposition
) -> None:
    series = f"live_{uuid.uuid4().hex}"
    exposition.set(series, 3)
    prometheus.wait_for_value(series, 3)
    ignoring, strict = (
        scaler(prometheus.url, {"query": series}),
        scaler(prometheus.url, {"query": series, "ignoreNullValues": "false"}),
    )
    assert await measure(ignoring) == 3
    exposition.set(series, 30)
    prometheus.wait_for_value(series, 30)
    assert await measure(ignoring) == 30
    # The series leaves the target: Prometheus marks it stale and the query turns empty.
    exposition.remove(series)
    prometheus.wait_for(series, lambda result: result == [])
    assert await measure(ignoring) == 0
    with pytest.raises(SourceResponseError, match="is the target lost"):
        await measure(strict)


# The request as it leaves: a recording proxy in front of the real server.


@pytest.fixture
async def recorder(prometheus: PrometheusServer) -> AsyncIterator[tuple[str, list[Request]]]:
    seen: list[Request] = []
    upstream = httpx.AsyncClient(base_url=prometheus.url, trust_env=False)

    async def forward(request: Request) -> Response:
        seen.append(request)
        answer = await upstream.get(f"{request.url.path}?{request.url.query}")
        return Response(answer.content, answer.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", forward)])
    try:
        async with serving(app) as url:
            yield url, seen
    finally:
        await upstream.aclose()


async def test_the_request_carries_time_namespace_parameters_and_headers(
    recorder: tuple[str, list[Request]],
) -> None:
    url, seen = recorder
    s = scaler(
        url,
        {
            "query": 'sum(queue_depth{queue=~"jobs|mail"})',
            "namespace": "team-a",
            "queryParameters": "dedup=true,partial_response=false",
            "customHeaders": "X-Tenant-Id=tid, X-Client-Id=cid",
            "authModes": "bearer",
        },
        {"bearerToken": "T0K"},
    )
    before = datetime.now(UTC).replace(microsecond=0)
    assert await measure(s) == 49  # Prometheus ignores the parameters it does not know
    (request,) = seen
    assert request.url.path == "/api/v1/query"
    params = request.query_params.multi_items()
    assert [name for name, _ in params] == [
        "query",
        "time",
        "namespace",
        "dedup",
        "partial_response",
    ]
    assert dict(params)["query"] == 'sum(queue_depth{queue=~"jobs|mail"})'
    sent = datetime.strptime(dict(params)["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= sent <= before + timedelta(seconds=2)
    assert (dict(params)["namespace"], dict(params)["dedup"]) == ("team-a", "true")
    assert request.headers["authorization"] == "Bearer T0K"
    assert (request.headers["x-tenant-id"], request.headers["x-client-id"]) == ("tid", "cid")


async def test_custom_auth_header(recorder: tuple[str, list[Request]]) -> None:
    url, seen = recorder
    auth = {"customAuthHeader": "X-Auth-Token", "customAuthValue": "v4lue"}
    assert await measure(scaler(url, {"authModes": "custom"}, auth)) == 5
    assert seen[0].headers["x-auth-token"] == "v4lue"
    assert "authorization" not in seen[0].headers


# TLS and basic auth against the real server (web.config.file).


def secure_auth(pki: Pki, **change: str) -> dict[str, str]:
    auth = {
        "ca": pki.ca_pem,
        "cert": pki.client_cert_pem,
        "key": pki.client_key_pem,
        "username": USERNAME,
        "password": PASSWORD,
    }
    return {k: v for k, v in {**auth, **change}.items() if v}


async def test_tls_client_certificate_and_basic_auth(
    secure_prometheus: PrometheusServer, prometheus_pki: Pki
) -> None:
    s = scaler(secure_prometheus.url, {"authModes": "tls,basic"}, secure_auth(prometheus_pki))
    assert s.query.endpoint.startswith("https://127.0.0.1:")
    assert await measure(s) == 5


async def test_unsafe_ssl_accepts_a_server_the_ca_does_not_vouch_for(
    secure_prometheus: PrometheusServer, prometheus_pki: Pki, other_pki: Pki
) -> None:
    auth = secure_auth(prometheus_pki, ca=other_pki.ca_pem)
    s = scaler(secure_prometheus.url, {"authModes": "tls,basic", "unsafeSsl": "true"}, auth)
    assert await measure(s) == 5
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await measure(scaler(secure_prometheus.url, {"authModes": "tls,basic"}, auth))


@pytest.mark.parametrize(
    ("modes", "change", "error", "reason"),
    [
        ("tls,basic", {"password": "wrong"}, SourceResponseError, "HTTP 401"),
        ("tls", {}, SourceResponseError, "HTTP 401"),
        # TLS 1.3 refuses the certificate after the handshake: the alert or a reset.
        ("basic", {}, SourceUnreachable, "BAD_CERTIFICATE|CERTIFICATE_REQUIRED|reset|closed"),
    ],
    ids=["wrong-password", "no-basic-auth", "no-client-certificate"],
)
async def test_refused_credentials_are_errors(
    secure_prometheus: PrometheusServer,
    prometheus_pki: Pki,
    modes: str,
    change: dict[str, str],
    error: type[Exception],
    reason: str,
) -> None:
    s = scaler(secure_prometheus.url, {"authModes": modes}, secure_auth(prometheus_pki, **change))
    with pytest.raises(error, match=reason):
        await measure(s)


# Failures: never a zero, even with ignoreNullValues (KEDA #3064: an outage read as 0).


async def test_server_down_is_unreachable(fresh_prometheus: PrometheusServer) -> None:
    s = scaler(fresh_prometheus.url, {})
    fresh_prometheus.stop()
    with pytest.raises(SourceUnreachable, match=r"GET http://127\.0\.0\.1:\d+/api/v1/query"):
        await measure(s)


async def test_a_paused_server_times_out(fresh_prometheus: PrometheusServer) -> None:
    s = scaler(fresh_prometheus.url, {})
    fresh_prometheus.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.3s"):
            await measure(s, client_timeout=0.3)
        # The trigger's own timeout, when shorter than the adapter's.
        with pytest.raises(SourceTimeout, match=r"the trigger's timeout 0\.2s"):
            await measure(scaler(fresh_prometheus.url, {"timeout": "200ms"}), client_timeout=5)
    finally:
        fresh_prometheus.resume()


async def test_an_answer_that_is_not_prometheus_is_an_error(exposition: Exposition) -> None:
    # The scrape target answers every path with metrics text, not JSON.
    with pytest.raises(SourceResponseError, match="answer is not JSON"):
        await measure(scaler(f"http://{exposition.address}", {}))


async def test_a_wrong_path_is_an_error(prometheus: PrometheusServer) -> None:
    with pytest.raises(SourceResponseError, match="HTTP 404"):
        await measure(scaler(f"{prometheus.url}/not-here", {}))


async def test_an_outage_keeps_the_error_and_not_a_zero(fresh_prometheus: PrometheusServer) -> None:
    poller = new_poller(0.5)
    store, clients = poller.store, poller.clients
    bound = bound_trigger(
        "w", {"serverAddress": fresh_prometheus.url, "query": "vector(12)", "threshold": "5"}
    )
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
        assert (reading(store, bound).value, reading(store, bound).active) == (12, True)
        fresh_prometheus.pause()
        try:
            await poller.poll(bound.scaler.query)
        finally:
            fresh_prometheus.resume()
        got = reading(store, bound)
        assert got.error is not None and "no answer within 0.5s" in got.error
        assert got.value == 12 and not got.active and got.failures == 1
        fresh_prometheus.stop()
        await poller.poll(bound.scaler.query)
        got = reading(store, bound)
        assert got.error is not None and "GET http://" in got.error
        assert got.value == 12 and not got.active and got.failures == 2
    finally:
        await clients.aclose()


# Sharing: one request per distinct query per poll, over one kept-alive connection.


async def test_one_request_per_distinct_query(prometheus: PrometheusServer) -> None:
    poller = new_poller(2)
    store, clients = poller.store, poller.clients
    bound: list[BoundTrigger] = []
    # 20 ScaledObjects on 2 queries, each with its own threshold, activation and null policy.
    for i in range(20):
        metadata = {
            "serverAddress": prometheus.url,
            "query": "sum(queue_depth)" if i % 2 else 'queue_depth{queue="jobs"}',
            "threshold": str(i + 1),
            "activationThreshold": str(40 + i % 10),
            "ignoreNullValues": "true" if i % 3 else "false",
        }
        so = parse_scaled_object(triggers.so_doc(f"so{i}", metadata, "prometheus"))
        bound += bind(so, Inventory())
        poller.set_triggers(so.ref, bound[-1:])
    assert poller.query_count == 2
    queries = {b.scaler.query for b in bound}
    try:
        for query in queries:  # warm up: open the client's connection
            await poller.poll(query)
        served, connections = prometheus.queries_served(), prometheus.connections_accepted()
        for query in queries:
            await poller.poll(query)
        assert prometheus.queries_served() - served == 2
        # No new connection for the polls: the +2 are the two reads of /metrics just above.
        assert prometheus.connections_accepted() - connections == 2
        for i, b in enumerate(bound):
            got = reading(store, b)
            value = 49 if i % 2 else 42
            assert (got.value, got.active) == (value, value > 40 + i % 10)

        # On its schedule: one request per poll of each query, not one per trigger (ten).
        served = prometheus.queries_served()
        polls = await triggers.run_until_polled(poller, bound, 3)
        # Plus at most one poll per query in flight when the poller stopped.
        requests = prometheus.queries_served() - served
        assert sum(polls.values()) <= requests <= sum(polls.values()) + len(polls)
    finally:
        await clients.aclose()
