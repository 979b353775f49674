"""``metrics-api``: reading a number out of a JSON answer, and building the request."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scalers import http_auth, metrics_api, prometheus_text, yaml_document
from scalers.clients import Clients
from scalers.errors import (
    Problems,
    ScalerError,
    SourceResponseError,
    SourceUnreachable,
    quote,
)
from scalers.jsonpath import PathNotFound, lookup, split_path
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
BASE = {"url": "http://api:8080/stats?x=1", "valueLocation": "value", "targetValue": "5"}


def create(
    metadata: dict[str, str], auth: dict[str, str] | None = None
) -> tuple[metrics_api.MetricsApiScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, {}, auth or {}, path=P)
    scaler = metrics_api.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, metrics_api.MetricsApiScaler)
    return scaler, [str(p) for p in problems]


def built(
    metadata: dict[str, str], auth: dict[str, str] | None = None
) -> metrics_api.MetricsApiScaler:
    scaler, problems = create({**BASE, **metadata}, auth)
    assert problems == []
    assert scaler is not None
    return scaler


DOC: dict[str, Any] = {
    "value": 12,
    "ratio": 0.25,
    "components": {"worker": {"tasks": 7, "memory": "1500m", "disk": "2Gi"}},
    "items": [{"value": 3}, {"value": "4k"}],
    "queue": ["a", "b", "c"],
    "a.b": {"c": 9},
    "empty": [],
    "text": "lots",
    "flag": True,
    "nothing": None,
    "object": {"k": 1},
}


@pytest.mark.parametrize(
    ("location", "value"),
    [
        ("value", 12.0),
        ("ratio", 0.25),
        ("components.worker.tasks", 7.0),
        ("components.worker.memory", 1.5),
        ("components.worker.disk", 2.0**31),
        ("items.0.value", 3.0),
        ("items.1.value", 4000.0),
        ("queue.#", 3.0),
        ("empty.#", 0.0),
        (r"a\.b.c", 9.0),
    ],
)
def test_measure_reads_the_value_location(location: str, value: float) -> None:
    scaler = built({"valueLocation": location})
    assert scaler.measure(DOC) == value


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("missing", 'valueLocation "missing": missing not found'),
        (
            "components.worker.cpu",
            'valueLocation "components.worker.cpu": components.worker.cpu not found',
        ),
        ("items.2.value", 'valueLocation "items.2.value": items.2 not found'),
        ("items.x", 'valueLocation "items.x": items.x not found'),
        ("value.deeper", 'valueLocation "value.deeper": value.deeper not found'),
        ("text", "valueLocation \"text\": 'lots' is not a Kubernetes quantity"),
        ("flag", 'valueLocation "flag" is a bool, expected a number'),
        ("nothing", 'valueLocation "nothing" is a NoneType, expected a number'),
        ("object", 'valueLocation "object" is a dict, expected a number'),
        ("queue", 'valueLocation "queue" is a list, expected a number'),
    ],
)
def test_measure_errors_instead_of_a_zero(location: str, message: str) -> None:
    scaler = built({"valueLocation": location})
    with pytest.raises(SourceResponseError) as info:
        scaler.measure(DOC)
    assert str(info.value) == message


@pytest.mark.parametrize("answer", [None, [], "text", 5])
def test_measure_on_a_document_without_the_path(answer: Any) -> None:
    with pytest.raises(SourceResponseError):
        built({}).measure(answer)


def test_measure_with_a_unicode_digit_step_is_a_scaler_error() -> None:
    with pytest.raises(ScalerError):
        built({"valueLocation": "queue.²"}).measure(DOC)


def test_split_path_and_lookup() -> None:
    assert split_path(r"a\.b.c\\d.0") == ["a.b", "c\\d", "0"]
    assert lookup({"x": [10, {"y": 2}]}, "x.1.y") == 2
    with pytest.raises(PathNotFound, match=r"^x\.5$"):
        lookup({"x": [1]}, "x.5")


def test_query_and_targets() -> None:
    scaler = built({"activationTargetValue": "1.5", "targetValue": "2.5"})
    assert scaler.query.url == BASE["url"]
    assert scaler.query.headers == ()
    assert scaler.query.identity.verify is True
    assert (scaler.target, scaler.activation_target) == (2.5, 1.5)
    assert built({"unsafeSsl": "true"}).query.identity.verify is False


def test_api_key_in_a_header() -> None:
    scaler = built({"authMode": "apiKey"}, {"apiKey": "K"})
    assert scaler.query.headers == (("X-API-KEY", "K"),)
    assert scaler.query.url == BASE["url"]
    named = built({"authMode": "apiKey", "keyParamName": "X-Token"}, {"apiKey": "K"})
    assert named.query.headers == (("X-Token", "K"),)


def test_api_key_in_the_query() -> None:
    scaler = built({"authMode": "apiKey", "method": "query"}, {"apiKey": "K&v"})
    assert scaler.query.headers == ()
    parts = urlsplit(scaler.query.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "api:8080", "/stats")
    assert parse_qs(parts.query) == {"x": ["1"], "api_key": ["K&v"]}
    named = built({"authMode": "apiKey", "method": "query", "keyParamName": "k"}, {"apiKey": "K"})
    assert parse_qs(urlsplit(named.query.url).query) == {"x": ["1"], "k": ["K"]}


def test_api_key_in_the_query_keeps_blank_parameters() -> None:
    scaler = built(
        {"url": "http://api/stats?pretty&x=1", "authMode": "apiKey", "method": "query"},
        {"apiKey": "K"},
    )
    query = parse_qs(urlsplit(scaler.query.url).query, keep_blank_values=True)
    assert query == {"pretty": [""], "x": ["1"], "api_key": ["K"]}


def test_basic_auth() -> None:
    scaler = built({"authMode": "basic"}, {"username": "user", "password": "pa:ss"})
    expected = "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert scaler.query.headers == (("Authorization", expected),)
    no_password = built({"authMode": "basic"}, {"username": "user"})
    assert no_password.query.headers == (("Authorization", "Basic dXNlcjo="),)


def test_bearer_auth_with_auth_mode_from_the_authentication() -> None:
    scaler = built({}, {"authMode": "bearer", "token": "T0K"})
    assert scaler.query.headers == (("Authorization", "Bearer T0K"),)


def test_auth_mode_with_surrounding_space_still_authenticates() -> None:
    scaler, problems = create({**BASE, "authMode": "bearer "}, {"token": "T0K"})
    assert problems == []
    assert scaler is not None
    assert scaler.query.headers == (("Authorization", "Bearer T0K"),)


def test_tls_auth_presents_the_client_pair() -> None:
    scaler = built({"authMode": "tls"}, {"cert": "CERT", "key": "KEY", "ca": "CA"})
    identity = scaler.query.identity
    assert (identity.cert_pem, identity.key_pem, identity.ca_pem) == ("CERT", "KEY", "CA")
    assert scaler.query.headers == ()


def test_credentials_come_only_from_the_authentication() -> None:
    scaler, problems = create({**BASE, "authMode": "bearer", "token": "in-plain-sight"})
    assert scaler is None
    assert problems == [
        f"{P}.bearerToken: is required by authModes bearer (from the authentication)"
    ]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"authMode": "apiKey"},
            [f"{P}.apiKey: is required by authModes apiKey (from the authentication)"],
        ),
        (
            {"authMode": "basic"},
            [f"{P}.username: is required by authModes basic (from the authentication)"],
        ),
        (
            {"authMode": "bearer"},
            [f"{P}.bearerToken: is required by authModes bearer (from the authentication)"],
        ),
        (
            {"authMode": "tls"},
            [
                f"{P}.cert: is required by authModes tls (from the authentication)",
                f"{P}.key: is required by authModes tls (from the authentication)",
            ],
        ),
        (
            {"authModes": "bearer,basic"},
            [
                f"{P}.authModes: may hold one of bearer, basic, oauth, not bearer and basic",
                f"{P}.bearerToken: is required by authModes bearer (from the authentication)",
                f"{P}.username: is required by authModes basic (from the authentication)",
            ],
        ),
        (
            {"authMode": "custom"},
            [
                f"{P}.customAuthHeader: is required by authModes custom (from the authentication)",
                f"{P}.customAuthValue: is required by authModes custom (from the authentication)",
            ],
        ),
        (
            {"authMode": "kerberos"},
            [f'{P}.authMode: "kerberos" is not one of: {", ".join(http_auth.AUTH_MODES)}'],
        ),
        ({"format": "csv"}, [f'{P}.format: "csv" is not one of: json, prometheus, xml, yaml']),
        (
            {"aggregationType": "median"},
            [f'{P}.aggregationType: "median" is not one of: average, sum, max, min'],
        ),
        ({"timeout": "-1s"}, [f'{P}.timeout: "-1s" is negative']),
        ({"method": "body"}, [f'{P}.method: "body" is not one of: header, query']),
        ({"targetValue": "0"}, [f'{P}.targetValue: "0" must be greater than 0']),
    ],
)
def test_check_problems(metadata: dict[str, str], expected: list[str]) -> None:
    scaler, problems = create({**BASE, **metadata})
    assert scaler is None
    assert problems == expected


def test_required_parameters() -> None:
    scaler, problems = create({})
    assert scaler is None
    assert problems == [
        f"{P}.url: is required",
        f"{P}.valueLocation: is required",
        f"{P}.targetValue: is required",
    ]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_errors_not_zero(number: float) -> None:
    with pytest.raises(SourceResponseError, match="not a number"):
        built({"valueLocation": "v"}).measure({"v": number})


def test_an_api_key_in_the_query_is_redacted_from_every_message() -> None:
    s = built(
        {"authMode": "apiKey", "method": "query", "keyParamName": "token"},
        auth={"apiKey": "s3cr3t-key"},
    )
    assert "token=s3cr3t-key" in s.query.url  # sent to the source...
    for text in (s.query.describe(), repr(s.query), repr(s), repr(s.meta)):
        assert "s3cr3t-key" not in text  # ...but never logged or served in an error
    assert "token=***" in s.query.describe()


async def test_errors_of_a_redacted_query_do_not_show_the_key() -> None:
    s = built(
        {"url": "http://127.0.0.1:9/x", "authMode": "apiKey", "method": "query"},
        auth={"apiKey": "s3cr3t-key"},
    )
    clients = Clients(timeout=1)
    try:
        with pytest.raises(ScalerError) as info:
            await s.query.run(clients)
    finally:
        await clients.aclose()
    assert "s3cr3t-key" not in str(info.value) and "api_key=***" in str(info.value)


async def poll_error(scaler: metrics_api.MetricsApiScaler) -> ScalerError:
    clients = Clients(timeout=1)
    try:
        with pytest.raises(ScalerError) as info:
            await scaler.query.run(clients)
    finally:
        await clients.aclose()
    return info.value


@pytest.mark.parametrize("url", ["invalid-invalid", "ftp://api/x", "http://", "/stats"])
async def test_a_url_keda_cannot_request_fails_the_trigger_when_polled(url: str) -> None:
    """KEDA accepts any url and fails when it polls: the trigger fails, the object is Ready."""
    scaler = built({"url": url})
    error = await poll_error(scaler)
    assert isinstance(error, SourceUnreachable)
    assert str(error) == (
        f"url {quote(url)} cannot be requested: it must start with http:// or https:// "
        "and name a host"
    )


async def test_a_bad_url_error_never_shows_an_api_key() -> None:
    scaler = built(
        {"url": "ftp://api/x?a=1", "authMode": "apiKey", "method": "query"}, {"apiKey": "s3cr3t"}
    )
    assert "s3cr3t" not in str(await poll_error(scaler))


async def test_format_xml_is_accepted_and_fails_when_polled() -> None:
    """KEDA v2.20.2 decodes XML into a Go map, which encoding/xml cannot: it always fails."""
    error = await poll_error(built({"format": "xml"}))
    assert isinstance(error, SourceResponseError)
    assert "format xml: reading XML answers is not supported" in str(error)


@pytest.mark.parametrize(
    ("metadata", "auth", "expected"),
    [
        (
            {"aggregateFromKubeServiceEndpoints": "true"},
            {},
            f"{P}.aggregateFromKubeServiceEndpoints: true is not supported by metrics-adapter: "
            "it would need to list the Service's EndpointSlices and poll every ready endpoint; "
            "point url at one endpoint that serves the aggregate instead",
        ),
    ],
)
def test_what_metrics_adapter_cannot_do_is_refused_by_name(
    metadata: dict[str, str], auth: dict[str, str], expected: str
) -> None:
    """Never a silently different number: KEDA accepts these, we say what is missing."""
    scaler, problems = create({**BASE, **metadata}, auth)
    assert scaler is None
    assert problems == [expected]


def test_aggregation_settings_without_aggregation_are_accepted() -> None:
    scaler = built({"aggregateFromKubeServiceEndpoints": "false", "aggregationType": "max"})
    assert scaler.meta.aggregation_type == "max"


def test_api_key_method_and_name_may_come_from_the_trigger_or_the_authentication() -> None:
    """KEDA's APIKeyAuth: ``order=triggerMetadata;authParams``."""
    in_trigger = built({"authMode": "apiKey", "apiKey": "K", "method": "query"})
    assert parse_qs(urlsplit(in_trigger.query.url).query)["api_key"] == ["K"]
    from_auth = built({}, {"authMode": "apiKey", "apiKey": "K", "keyParamName": "X-K"})
    assert from_auth.query.headers == (("X-K", "K"),)


def test_bearer_token_under_either_name() -> None:
    assert built({"authMode": "bearer"}, {"bearerToken": "B"}).query.headers == (
        ("Authorization", "Bearer B"),
    )


def test_several_auth_modes_at_once() -> None:
    """``authModes`` is a list: a client certificate and an API key together."""
    scaler = built({"authModes": "tls, apiKey"}, {"cert": "CERT", "key": "KEY", "apiKey": "K"})
    assert scaler.query.headers == (("X-API-KEY", "K"),)
    assert scaler.query.identity.cert_pem == "CERT"


def test_oauth_is_checked_and_sends_nothing_as_in_keda() -> None:
    """KEDA's metrics-api scaler requires oauthTokenURI and clientID, then fetches no token."""
    scaler = built({"authModes": "oauth"}, {"oauthTokenURI": "http://idp/token", "clientID": "c"})
    assert scaler.query.headers == ()
    _, problems = create({**BASE, "authModes": "oauth"})
    assert problems == [
        f"{P}.oauthTokenURI: is required by authModes oauth (from the authentication)",
        f"{P}.clientID: is required by authModes oauth (from the authentication)",
    ]


def test_custom_auth_sends_its_header() -> None:
    scaler = built({"authMode": "custom"}, {"customAuthHeader": "X-Secret", "customAuthValue": "V"})
    assert scaler.query.headers == (("X-Secret", "V"),)
    assert "V" not in repr(scaler.meta)


def test_timeout_is_a_duration_or_milliseconds() -> None:
    assert built({"timeout": "1500"}).query.timeout == 1.5
    assert built({"timeout": "2s"}).query.timeout == 2.0
    assert built({}).query.timeout is None


def test_target_value_is_optional_only_under_scaling_modifiers() -> None:
    problems = Problems()
    inputs = TriggerInputs({"url": "http://a/x", "valueLocation": "v"}, path=P)
    assert metrics_api.KIND.create(inputs, problems) is None
    assert [str(p) for p in problems] == [f"{P}.targetValue: is required"]
    formula = TriggerInputs(
        {"url": "http://a/x", "valueLocation": "v"}, path=P, as_metric_source=True
    )
    assert metrics_api.KIND.create(formula, Problems()) is not None
    zero = TriggerInputs({**formula.metadata, "targetValue": "0"}, as_metric_source=True)
    assert metrics_api.KIND.create(zero, Problems()) is not None  # KEDA: 0 is "unset"


EXPOSITION = """# TYPE queue_depth gauge
queue_depth{queue="a"} 4
queue_depth{queue="b"} 9
ratio 1e-3
"""


@pytest.mark.parametrize(
    ("location", "expected"),
    [("queue_depth", 4), ('queue_depth{queue="b"}', 9), ("ratio", 0.001)],
)
def test_prometheus_answers_are_read_by_selector(location: str, expected: float) -> None:
    scaler = built({"format": "prometheus", "valueLocation": location})
    assert scaler.measure(prometheus_text.parse_families(EXPOSITION)) == expected


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("nope", "valueLocation \"nope\": metric 'nope' not found"),
        ('queue_depth{queue="c"}', "no untyped, counter or gauge sample of it has these labels"),
        ("queue_depth[5m]", "is not a Prometheus metric selector: unexpected '[5m]'"),
    ],
)
def test_prometheus_lookups_that_fail(location: str, message: str) -> None:
    scaler = built({"format": "prometheus", "valueLocation": location})
    with pytest.raises(SourceResponseError) as info:
        scaler.measure(prometheus_text.parse_families(EXPOSITION))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("location", "expected"),
    [("count", 2.43), ("components.0.str", 64), ("components.0.tasks", 32), ("k", 1000)],
)
def test_yaml_answers_are_walked_as_keda_walks_them(location: str, expected: float) -> None:
    answer = yaml_document.parse(
        "{components: [{tasks: 32, str: '64', wrong: NaN, on: yes}], count: 2.43, k: 1k, "
        "big: 18446744073709551615, inf: .inf}"
    )
    scaler = built({"format": "yaml", "valueLocation": location})
    assert scaler.measure(answer) == expected


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("components.0.wrong", 'valueLocation "components.0.wrong": '),
        ("components.0.on", 'valueLocation "components.0.on": '),
        ("components", "valueLocation \"components\": path 'components' does not lead"),
        ("big", "is 18446744073709551615, beyond a 64-bit integer"),
        ("inf", "is inf, not a number"),
        ("nope", "key 'nope' not found in path 'nope'"),
    ],
)
def test_yaml_values_keda_cannot_read(location: str, message: str) -> None:
    answer = yaml_document.parse(
        "{components: [{wrong: NaN, on: yes}], big: 18446744073709551615, inf: .inf}"
    )
    scaler = built({"format": "yaml", "valueLocation": location})
    with pytest.raises(SourceResponseError) as info:
        scaler.measure(answer)
    assert message in str(info.value)
