"""The external triggers' parameters as KEDA reads them, what they pass to the scaler, what
makes their queries and channels equal, and how an answer is measured."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from scalers import external, external_push
from scalers.base import Measurement
from scalers.errors import ConfigError, Problems
from scalers.external import ExternalScaler, Values, passed_metadata
from scalers.external_client import Endpoint, Ref
from scalers.params import TriggerInputs
from scalers.wake import Wake, wake_of
from scalers.wake_external import ExternalWatch

ADDRESS = "scaler.shop.svc:6000"
KEY = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----"


def make(
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    push: bool = False,
) -> ExternalScaler:
    problems = Problems()
    inputs = TriggerInputs(dict(metadata), env or {}, auth or {}, namespace="shop", name="orders")
    built = (external_push.KIND if push else external.KIND).create(inputs, problems)
    problems.raise_for("trigger")
    assert isinstance(built, ExternalScaler)
    return built


@pytest.mark.parametrize(
    ("metadata", "auth", "tls"),
    [
        ({}, {}, False),
        ({"enableTLS": "true"}, {}, True),
        ({}, {"caCert": "CA"}, True),
        ({}, {"tlsClientCert": "C", "tlsClientKey": KEY}, True),
        ({"enableTLS": "false", "unsafeSsl": "true"}, {}, False),  # unsafeSsl alone: plain
    ],
)
def test_tls_as_keda_decides_it(metadata: dict[str, str], auth: dict[str, str], tls: bool) -> None:
    assert make({"scalerAddress": ADDRESS, **metadata}, auth).query.endpoint.tls is tls


def test_tls_parameters_come_from_the_authentication_only() -> None:
    built = make({"scalerAddress": ADDRESS, "caCert": "CA", "tlsClientKey": KEY})
    assert built.query.endpoint == Endpoint(ADDRESS)


@pytest.mark.parametrize(
    ("metadata", "auth", "message"),
    [
        ({}, {"tlsClientCert": "C"}, "metadata.tlsClientKey: is required with tlsClientCert"),
        ({}, {"tlsClientKey": KEY}, "metadata.tlsClientCert: is required with tlsClientKey"),
        ({"enableTLS": "true", "unsafeSsl": "true"}, {}, "unsafeSsl: true is not supported"),
        ({"enableTLS": "yes"}, {}, "enableTLS"),
        ({"scalerAddress": "a b:1"}, {}, 'scalerAddress: "a b:1" is not host:port'),
    ],
)
def test_refusals_name_the_parameter(
    metadata: dict[str, str], auth: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        make({"scalerAddress": ADDRESS, **metadata}, auth)
    assert "c2VjcmV0" not in str(error.value)


def test_what_keda_passes_to_the_scaler() -> None:
    metadata = {
        "scalerAddress": ADDRESS,
        "a": "1",
        "bFromEnv": "B",
        "cFromEnv": "C",
        "dFromEnv": "D",
    }
    env = {"B": "two", "D": ""}
    assert passed_metadata(metadata, env) == {"scalerAddress": ADDRESS, "a": "1", "bFromEnv": "two"}
    built = make(metadata, {"caCert": "CA"}, env)
    assert built.query.ref == Ref.of("orders", "shop", passed_metadata(metadata, env))


def test_equal_questions_are_equal_queries() -> None:
    one = make({"scalerAddress": ADDRESS, "a": "1", "b": "2"})
    two = make({"b": "2", "a": "1", "scalerAddress": ADDRESS})
    assert one.query == two.query and hash(one.query) == hash(two.query)
    assert make({"scalerAddress": ADDRESS, "a": "2", "b": "2"}).query != one.query
    tls = make({"scalerAddress": ADDRESS, "a": "1", "b": "2"}, {"caCert": "CA"})
    assert tls.query != one.query and tls.query.endpoint != one.query.endpoint


def test_no_secret_in_reprs() -> None:
    built = make({"scalerAddress": ADDRESS}, {"tlsClientCert": "C", "tlsClientKey": KEY})
    for shown in (
        repr(built),
        repr(built.query),
        built.query.describe(),
        str(built.query.endpoint),
    ):
        assert "c2VjcmV0" not in shown


def test_unsettled_until_asked() -> None:
    built = make({"scalerAddress": ADDRESS})
    assert not built.settled and built.query.metric_name is None
    assert built.metric_name == "external" and built.target == external.UNSETTLED_TARGET


@pytest.mark.parametrize(
    ("values", "active", "expected"),
    [((3.0,), True, Measurement(3.0, 1.0)), ((1.0, 2.5), False, Measurement(3.5, 0.0))],
)
def test_measure_sums_values_and_takes_activity_from_is_active(
    values: tuple[float, ...], active: bool, expected: Measurement
) -> None:
    assert make({"scalerAddress": ADDRESS}).measure(Values(values, active)) == expected


def test_only_external_push_is_woken() -> None:
    assert not isinstance(wake_of(make({"scalerAddress": ADDRESS})), Wake)
    pushed = make({"scalerAddress": ADDRESS}, push=True)
    wake = wake_of(pushed)
    assert isinstance(wake, Wake)
    assert wake.watcher == ExternalWatch(Endpoint(ADDRESS))
    assert wake.topic == pushed.query.ref
