"""``prometheus``: parsing the trigger as KEDA does, the request it makes, reading the answer."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from scalers import prometheus
from scalers.base import is_active
from scalers.clients import Clients
from scalers.errors import Problems, SourceResponseError, SourceUnreachable
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
BASE = {"serverAddress": "http://prom:9090", "query": "sum(queue_depth)", "threshold": "10"}


def create(
    metadata: dict[str, str], auth: dict[str, str] | None = None
) -> tuple[prometheus.PrometheusScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, {}, auth or {}, path=P)
    scaler = prometheus.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, prometheus.PrometheusScaler)
    return scaler, [str(p) for p in problems]


def built(
    metadata: dict[str, str] | None = None, auth: dict[str, str] | None = None
) -> prometheus.PrometheusScaler:
    scaler, problems = create({**BASE, **(metadata or {})}, auth)
    assert problems == []
    assert scaler is not None
    return scaler


# Parsing.


def test_defaults_and_metric_name() -> None:
    scaler = built()
    assert scaler.metric_name == "prometheus"
    assert (scaler.target, scaler.activation_target) == (10.0, 0.0)
    assert scaler.meta.ignore_null_values is True
    assert scaler.query.headers == ()
    assert scaler.query.parameters == ()
    assert scaler.query.timeout is None
    identity = scaler.query.identity
    assert identity.verify is True
    assert (identity.ca_pem, identity.cert_pem, identity.key_pem) == (None, None, None)


def test_thresholds_are_floats_and_activation_may_be_negative() -> None:
    scaler = built({"threshold": "100.50", "activationThreshold": "-5.5"})
    assert (scaler.target, scaler.activation_target) == (100.5, -5.5)


def test_required_parameters_all_at_once() -> None:
    assert create({}) == (
        None,
        [
            f"{P}.serverAddress: is required",
            f"{P}.query: is required",
            f"{P}.threshold: is required",
        ],
    )


@pytest.mark.parametrize(
    ("metadata", "auth", "expected"),
    [
        ({"threshold": "ten"}, {}, [f'{P}.threshold: "ten" is not a number']),
        ({"threshold": "0"}, {}, [f'{P}.threshold: "0" must be greater than 0']),
        ({"activationThreshold": "x"}, {}, [f'{P}.activationThreshold: "x" is not a number']),
        (
            {"ignoreNullValues": "maybe"},
            {},
            [f'{P}.ignoreNullValues: "maybe" is not a boolean (expected true or false)'],
        ),
        (
            {"customHeaders": "X-A=1,X-B"},
            {},
            [f'{P}.customHeaders: "X-B" is not of the form key=value'],
        ),
        (
            {"queryParameters": "a=b=c"},
            {},
            [f'{P}.queryParameters: "a=b=c" is not of the form key=value'],
        ),
        (
            {"queryParameters": "a=b,"},
            {},
            [f'{P}.queryParameters: "" is not of the form key=value'],
        ),
        (
            {"timeout": "soon"},
            {},
            [f'{P}.timeout: "soon" is not a duration (30s, 1m30s) or milliseconds'],
        ),
        ({"timeout": "-5s"}, {}, [f'{P}.timeout: "-5s" is negative']),
        (
            {"authModes": "digest"},
            {},
            [f'{P}.authModes: "digest" is not one of: apiKey, basic, tls, bearer, custom, oauth'],
        ),
        (
            {"authModes": "oauth"},
            {"clientID": "c"},
            [f"{P}.oauthTokenURI: is required by authModes oauth (from the authentication)"],
        ),
        (
            {"authModes": "apiKey"},
            {},
            [f"{P}.apiKey: is required by authModes apiKey (from the authentication)"],
        ),
        ({"method": "body"}, {}, [f'{P}.method: "body" is not one of: header, query']),
        (
            {"authModes": "bearer,basic"},
            {"bearerToken": "t", "username": "u"},
            [f"{P}.authModes: may hold one of bearer, basic, oauth, not bearer and basic"],
        ),
        (
            {"authModes": "bearer"},
            {},
            [f"{P}.bearerToken: is required by authModes bearer (from the authentication)"],
        ),
        (
            {"authModes": "basic"},
            {"password": "p"},
            [f"{P}.username: is required by authModes basic (from the authentication)"],
        ),
        (
            {"authModes": "tls"},
            {"cert": "C"},
            [f"{P}.key: is required by authModes tls (from the authentication)"],
        ),
        (
            {"authModes": "custom"},
            {"customAuthHeader": "X-Auth"},
            [f"{P}.customAuthValue: is required by authModes custom (from the authentication)"],
        ),
        (
            {"authMode": "bearer"},
            {},
            [f"{P}.bearerToken: is required by authModes bearer (from the authentication)"],
        ),
    ],
)
def test_problems(metadata: dict[str, str], auth: dict[str, str], expected: list[str]) -> None:
    assert create({**BASE, **metadata}, auth) == (None, expected)


def test_every_problem_is_reported_at_once() -> None:
    scaler, problems = create(
        {
            "serverAddress": "prom",
            "query": "up",
            "threshold": "-1",
            "ignoreNullValues": "yes please",
            "customHeaders": "broken",
        }
    )
    assert scaler is None
    assert problems == [
        f'{P}.threshold: "-1" must be greater than 0',
        f'{P}.ignoreNullValues: "yes please" is not a boolean (expected true or false)',
    ]
    # Cross-field checks run once every field parses.
    scaler, problems = create(
        {**BASE, "serverAddress": "prom", "customHeaders": "broken", "authModes": "basic"}
    )
    assert problems == [
        f'{P}.customHeaders: "broken" is not of the form key=value',
        f"{P}.username: is required by authModes basic (from the authentication)",
    ]


def test_credentials_come_only_from_the_authentication() -> None:
    scaler, problems = create({**BASE, "authModes": "bearer", "bearerToken": "in-plain-sight"})
    assert scaler is None
    assert problems == [
        f"{P}.bearerToken: is required by authModes bearer (from the authentication)"
    ]


# The request.


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def test_url_carries_query_time_namespace_and_parameters_in_order() -> None:
    scaler = built(
        {
            "serverAddress": "http://thanos:9090/",
            "query": 'sum(rate(http_requests_total{job="a b"}[2m]))',
            "namespace": "team-a",
            "queryParameters": "dedup=true, partial_response = false",
        }
    )
    url = scaler.query.url(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert url.startswith("http://thanos:9090/api/v1/query?query=sum%28rate%28http_requests")
    assert query_of(url) == [
        ("query", 'sum(rate(http_requests_total{job="a b"}[2m]))'),
        ("time", "2026-01-02T03:04:05Z"),
        ("namespace", "team-a"),
        ("dedup", "true"),
        ("partial_response", "false"),
    ]


def test_custom_headers() -> None:
    scaler = built({"customHeaders": "X-Client-Id=cid, X-Tenant-Id = tid"})
    assert scaler.query.headers == (("X-Client-Id", "cid"), ("X-Tenant-Id", "tid"))


@pytest.mark.parametrize(
    ("metadata", "auth", "authorization"),
    [
        ({"authModes": "bearer"}, {"bearerToken": "T0K"}, "Bearer T0K"),
        ({"authModes": "bearer"}, {"token": "T0K"}, "Bearer T0K"),
        ({"authMode": "bearer"}, {"bearerToken": "T0K"}, "Bearer T0K"),
        ({}, {"authModes": "bearer", "bearerToken": "T0K"}, "Bearer T0K"),
        (
            {"authModes": "basic"},
            {"username": "user", "password": "pa:ss"},
            "Basic " + base64.b64encode(b"user:pa:ss").decode(),
        ),
        ({"authModes": "basic"}, {"username": "user"}, "Basic dXNlcjo="),
        # customHeaders come first; the auth mode replaces a header of the same name.
        (
            {"authModes": "bearer", "customHeaders": "authorization=stale"},
            {"bearerToken": "T0K"},
            "Bearer T0K",
        ),
    ],
)
def test_authorization_header(
    metadata: dict[str, str], auth: dict[str, str], authorization: str
) -> None:
    headers = dict(built(metadata, auth).query.headers)
    assert headers == {"Authorization": authorization}


def test_custom_auth_header() -> None:
    scaler = built({"authModes": "custom"}, {"customAuthHeader": "X-Auth", "customAuthValue": "v"})
    assert scaler.query.headers == (("X-Auth", "v"),)


def test_only_the_first_of_bearer_basic_custom_is_sent_as_in_keda() -> None:
    auth = {"bearerToken": "T", "customAuthHeader": "X-Auth", "customAuthValue": "v"}
    scaler = built({"authModes": "custom,bearer"}, auth)
    assert scaler.query.headers == (("Authorization", "Bearer T"),)


def test_tls_mode_presents_the_client_pair_and_the_ca() -> None:
    scaler = built(
        {"authModes": "tls,basic"}, {"cert": "C", "key": "K", "ca": "CA", "username": "u"}
    )
    identity = scaler.query.identity
    assert (identity.ca_pem, identity.cert_pem, identity.key_pem) == ("CA", "C", "K")
    assert dict(scaler.query.headers)["Authorization"].startswith("Basic ")


def test_a_ca_is_trusted_without_tls_mode_and_a_pair_is_not_sent() -> None:
    identity = built({}, {"ca": "CA", "cert": "C", "key": "K"}).query.identity
    assert (identity.ca_pem, identity.cert_pem, identity.key_pem) == ("CA", None, None)


def test_unsafe_ssl_skips_verification() -> None:
    assert built({"unsafeSsl": "true"}).query.identity.verify is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5s", 1.5), ("1500", 1.5), ("0", None)],
)
def test_timeout_is_a_go_duration_or_milliseconds(text: str, seconds: float | None) -> None:
    assert built({"timeout": text}).query.timeout == seconds


def test_triggers_share_a_query_unless_the_request_differs() -> None:
    a = built({"threshold": "5", "ignoreNullValues": "false", "activationThreshold": "2"})
    b = built({"threshold": "7"})
    assert a.query == b.query
    assert hash(a.query) == hash(b.query)
    assert built({"query": "up"}).query != a.query
    assert built({"namespace": "x"}).query != a.query
    assert built({"authModes": "bearer"}, {"bearerToken": "T"}).query != a.query
    assert built({"unsafeSsl": "true"}).query != a.query


def test_logs_and_reprs_never_show_credentials() -> None:
    scaler = built({"authModes": "bearer"}, {"bearerToken": "s3cret"})
    assert "s3cret" not in repr(scaler.query)
    assert "s3cret" not in scaler.query.describe()
    assert scaler.query.describe() == "GET http://prom:9090/api/v1/query?query=sum(queue_depth)"


# Reading the answer.


def measure(scaler: prometheus.PrometheusScaler, answer: Any) -> float:
    """What the scaler reads of ``answer``, decoded as its query decodes it."""
    return scaler.measure(scaler.query.read(answer))


def vector(*values: Any, kind: str = "vector") -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1795338125.629, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": kind, "result": result}}


EMPTY = vector()
SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1795338125.6, "49"]}}
MATRIX = {
    "status": "success",
    "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "3"]]}]},
}


@pytest.mark.parametrize(
    ("answer", "ignore_null_values", "value"),
    [
        (vector("42"), "true", 42.0),
        (vector("0.25"), "false", 0.25),
        (vector("-3"), "false", -3.0),
        (vector("1e3"), "false", 1000.0),
        (EMPTY, "true", 0.0),
        (vector("NaN"), "true", 0.0),
        (vector("+Inf"), "true", 0.0),
        (vector("-Inf"), "true", 0.0),
        (MATRIX, "true", 0.0),  # no "value": KEDA reads it as an empty value list
    ],
)
def test_measure(answer: Any, ignore_null_values: str, value: float) -> None:
    assert measure(built({"ignoreNullValues": ignore_null_values}), answer) == value


W = 'http://prom:9090/api/v1/query: query "sum(queue_depth)"'


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (EMPTY, f"{W} returned no series (is the target lost?) and ignoreNullValues is false"),
        (vector("NaN"), f"{W} returned NaN (is the target lost?) and ignoreNullValues is false"),
        (vector("+Inf"), f"{W} returned +Inf (is the target lost?) and ignoreNullValues is false"),
        (
            MATRIX,
            f"{W} returned a series without a value (is the target lost?) "
            "and ignoreNullValues is false",
        ),
        (vector("1", "2"), f"{W} returned 2 series, expected one (aggregate it)"),
        (SCALAR, f"{W} returned a scalar; wrap the query in vector() to get one series"),
        (vector("lots"), f'{W} returned "lots", not a number'),
        (vector(7), f"{W} returned a malformed sample: [1795338125.629, 7]"),
        (
            {"status": "success", "data": {"result": [{"value": [1]}]}},
            f"{W} returned a malformed sample: [1]",
        ),
        ({"status": "success"}, f"{W} answered without data: {{'status': 'success'}}"),
        (
            {"status": "error", "data": {}},
            f"{W} answered without data: {{'status': 'error', 'data': {{}}}}",
        ),
        ([1, 2], f"{W} answered without data: [1, 2]"),
        (
            {"data": {"resultType": "vector", "result": None}},
            f"{W} returned a result that is not a list: None",
        ),
    ],
)
def test_measure_errors_instead_of_a_zero(answer: Any, message: str) -> None:
    with pytest.raises(SourceResponseError) as info:
        measure(built({"ignoreNullValues": "false"}), answer)
    assert str(info.value) == message


def test_errors_other_than_null_values_ignore_ignore_null_values() -> None:
    with pytest.raises(SourceResponseError, match="2 series"):
        measure(built({"ignoreNullValues": "true"}), vector("1", "2"))


def test_activation_compares_the_raw_value() -> None:
    scaler = built({"activationThreshold": "-10"})
    value = measure(scaler, vector("-5"))
    assert value == -5 and is_active(value, scaler.activation_target)
    assert not is_active(measure(scaler, vector("-20")), scaler.activation_target)
    assert not math.isnan(value)


# What KEDA accepts at parse time and fails (or ignores) later.


async def test_a_server_address_without_a_scheme_fails_when_polled() -> None:
    scaler = built({"serverAddress": "prom:9090"})
    clients = Clients(timeout=1)
    try:
        with pytest.raises(SourceUnreachable, match='serverAddress "prom:9090" must start with'):
            await scaler.query.run(clients)
    finally:
        await clients.aclose()


def test_tls_needs_the_client_pair_but_no_ca_as_in_keda() -> None:
    identity = built({"authModes": "tls"}, {"cert": "C", "key": "K"}).query.identity
    assert (identity.cert_pem, identity.key_pem, identity.ca_pem) == ("C", "K", None)


@pytest.mark.parametrize(
    ("modes", "auth"),
    [
        ("apiKey", {"apiKey": "k3y"}),
        ("oauth", {"oauthTokenURI": "https://idp/token", "clientID": "c", "clientSecret": "s"}),
    ],
)
def test_api_key_and_oauth_are_accepted_and_send_nothing_as_in_keda(
    modes: str, auth: dict[str, str]
) -> None:
    scaler = built({"authModes": modes}, auth)
    assert scaler.query.headers == ()
    assert "k3y" not in scaler.query.url(datetime(2026, 1, 1, tzinfo=UTC))
