"""activemq's parameters, URL, origin and metric name, and the Jolokia answers it accepts,
as KEDA reads them."""

from __future__ import annotations

import pytest

from scalers import activemq
from scalers.clients import Clients
from scalers.errors import Problems, SourceResponseError, SourceUnreachable
from scalers.jolokia import read_value
from scalers.params import TriggerInputs

BASE = {"managementEndpoint": "amq.svc:8161", "brokerName": "localhost", "destinationName": "jobs"}
LOGIN = {"username": "admin", "password": "s3cret-pw"}
DEFAULT_URL = (
    "http://amq.svc:8161/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=localhost,"
    "destinationType=Queue,destinationName=jobs/QueueSize"
)


def _parse(
    meta: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> tuple[activemq.ActiveMQScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(meta, env or {}, LOGIN if auth is None else auth)
    built = activemq.KIND.create(inputs, problems)
    assert built is None or isinstance(built, activemq.ActiveMQScaler)
    return built, [str(p) for p in problems]


def test_defaults_url_origin_and_metric_name_as_keda() -> None:
    built, problems = _parse(BASE)
    assert built is not None, problems
    assert (built.target, built.activation_target) == (10, 0)
    assert built.metric_name == "activemq-jobs"
    assert built.query.url == DEFAULT_URL
    assert built.query.origin == "http://amq.svc:8161"
    assert built.measure(7) == 7.0


def test_the_metric_name_is_normalised() -> None:
    built, _ = _parse({**BASE, "destinationName": "orders.v1:eu/(a)"})
    assert built is not None and built.metric_name == "activemq-orders-v1-eu--a-"


def test_a_template_replaces_the_url_and_names_the_queue() -> None:
    template = DEFAULT_URL.replace("amq.svc:8161", "other:9000").replace("=jobs", "=orders")
    built, problems = _parse({"restAPITemplate": template, "destinationName": "ignored"})
    assert built is not None, problems
    assert built.query.url == template
    assert built.metric_name == "activemq-orders"
    assert built.query.origin == "http://other:9000"


def test_a_login_in_a_template_is_dropped_and_never_shown() -> None:
    template = DEFAULT_URL.replace("http://", "http://user:url-pw@")
    built, _ = _parse({"restAPITemplate": template})
    assert built is not None
    assert built.query.url == DEFAULT_URL
    assert "url-pw" not in repr(built) + repr(built.query)
    assert "s3cret-pw" not in repr(built) + repr(built.query)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("testInvalidRestAPITemplate", "is not an http(s)://host:port/... URL"),
        ("http://amq:8161/api/jolokia/read/QueueSize", "names no MBean"),
        (DEFAULT_URL.replace(",destinationName=jobs", ""), "has no destinationName=..."),
        (DEFAULT_URL.replace("brokerName=localhost", "brokerName="), "has no brokerName=..."),
    ],
)
def test_a_template_keda_cannot_use_is_refused(template: str, message: str) -> None:
    built, problems = _parse({"restAPITemplate": template})
    assert built is None
    assert any(p.startswith("metadata.restAPITemplate: ") and message in p for p in problems)


def test_without_a_template_every_missing_name_is_reported_at_once() -> None:
    built, problems = _parse({})
    assert built is None
    for name in ("managementEndpoint", "destinationName", "brokerName"):
        assert f"metadata.{name}: is required unless restAPITemplate is given" in problems
    _, problems = _parse(BASE, {})
    assert problems == ["metadata.username: is required", "metadata.password: is required"]


def test_the_login_comes_from_the_authentication_first_then_env_then_metadata() -> None:
    meta = {**BASE, "username": "meta-user", "passwordFromEnv": "PW"}
    built, _ = _parse(meta, {"username": "auth-user"}, {"PW": "env-pw"})
    assert built is not None
    assert (built.query.username, built.query.password) == ("auth-user", "env-pw")


def test_cors_header_overrides_the_origin() -> None:
    built, _ = _parse({**BASE, "corsHeader": "https://console.example"})
    assert built is not None and built.query.origin == "https://console.example"


def test_a_zero_target_is_refused() -> None:
    _, problems = _parse({**BASE, "targetQueueSize": "0"})
    assert problems == ['metadata.targetQueueSize: "0" must be greater than 0']


def test_equal_requests_are_one_query() -> None:
    a, _ = _parse({**BASE, "targetQueueSize": "3"})
    b, _ = _parse({**BASE, "activationTargetQueueSize": "9"})
    c, _ = _parse(BASE, {**LOGIN, "password": "other"})
    d, _ = _parse({**BASE, "corsHeader": "http://x"})
    assert a is not None and b is not None and c is not None and d is not None
    assert a.query == b.query and hash(a.query) == hash(b.query)
    assert a.query != c.query and a.query != d.query


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"status": 200, "value": 2.5}, "value is 2.5, not a whole number"),
        ({"status": 200, "value": None}, "value is null, not a whole number"),
        ({"status": 200, "value": True}, "value is true, not a whole number"),
        ({"status": 200, "value": "12"}, 'value is "12", not a whole number'),
        ({"status": 200}, "value is null"),
        ({"status": 200, "value": 2**63}, "beyond a 64-bit integer"),
        ({"value": 3}, "not a Jolokia response"),
        ([1, 2], "not a Jolokia response"),
        (
            {
                "status": 404,
                "error_type": "javax.management.InstanceNotFoundException",
                "error": "org.apache.activemq:type=Broker",
            },
            "Jolokia status 404: javax.management.InstanceNotFoundException: "
            "org.apache.activemq:type=Broker (check the names)",
        ),
        (
            {
                "status": 403,
                "error_type": "java.lang.Exception",
                "error": "java.lang.Exception : Origin http://x is not allowed to call this agent",
            },
            "Jolokia status 403: java.lang.Exception : Origin http://x is not allowed to call "
            "this agent (set corsHeader",
        ),
        ({"status": 500}, "Jolokia status 500: no error message"),
    ],
)
def test_a_jolokia_answer_without_a_whole_number_is_an_error(
    document: object, message: str
) -> None:
    with pytest.raises(SourceResponseError) as info:
        read_value(document, "GET u", "check the names")
    assert message in str(info.value)
    assert str(info.value).startswith("GET u: ")


def test_a_jolokia_value_is_read_as_it_is() -> None:
    assert read_value({"status": 200, "value": 0, "timestamp": 1}, "GET u") == 0
    assert read_value({"status": 200, "value": 41}, "GET u") == 41


def test_a_login_in_the_endpoint_reaches_neither_the_url_nor_the_origin() -> None:
    built, _ = _parse({**BASE, "managementEndpoint": "user:end-pw@amq.svc:8161"})
    assert built is not None
    assert (built.query.url, built.query.origin) == (DEFAULT_URL, "http://amq.svc:8161")
    assert "end-pw" not in repr(built.query) + built.query.describe()


@pytest.mark.parametrize("endpoint", ["[::1", "u:pw@[::1"])
async def test_an_endpoint_that_cannot_be_requested_fails_when_polled(endpoint: str) -> None:
    """As KEDA: the trigger is accepted, and each poll fails (never a zero)."""
    built, problems = _parse({**BASE, "managementEndpoint": endpoint})
    assert built is not None, problems
    clients = Clients(timeout=1)
    try:
        with pytest.raises(SourceUnreachable) as info:
            await built.query.run(clients)
    finally:
        await clients.aclose()
    assert "pw" not in str(info.value)
