"""etcd's parameters, metric name, endpoint schemes and value parsing, as KEDA reads them."""

from __future__ import annotations

import base64

import pytest

from scalers import etcd
from scalers.errors import Problems, SourceResponseError
from scalers.params import TriggerInputs

BASE = {"endpoints": "127.0.0.1:2379", "watchKey": "/jobs", "value": "5"}


def _parse(
    auth: dict[str, str] | None = None, **meta: str
) -> tuple[etcd.EtcdScaler | None, list[str]]:
    problems = Problems()
    built = etcd.KIND.create(TriggerInputs({**BASE, **meta}, {}, auth or {}), problems)
    assert built is None or isinstance(built, etcd.EtcdScaler)
    return built, [str(p) for p in problems]


def test_defaults_metric_name_and_endpoints() -> None:
    built, _ = _parse(endpoints="10.0.0.1:2379, http://a:2379,https://b:2379/")
    assert built is not None
    assert built.metric_name == "etcd--jobs"  # NormalizeString("etcd-/jobs")
    assert (built.target, built.activation_target) == (5, 0)
    assert built.meta.watch_progress_notify_interval == 600
    assert built.query.cluster.endpoints == (
        "http://10.0.0.1:2379",
        "http://a:2379",
        "https://b:2379",
    )


def test_tls_makes_a_bare_address_https_as_clientv3() -> None:
    built, _ = _parse({"tls": "enable"}, endpoints="a:2379,http://b:2379")
    assert built is not None
    assert built.query.cluster.endpoints == ("https://a:2379", "http://b:2379")


def test_secrets_stay_out_of_reprs() -> None:
    built, _ = _parse({"username": "u", "password": "hunter2-secret"})
    assert built is not None
    assert "hunter2-secret" not in repr(built) and "hunter2-secret" not in str(built.query.cluster)


@pytest.mark.parametrize(
    ("meta", "auth", "problem"),
    [
        ({"endpoints": "etcd"}, {}, 'metadata.endpoints: "etcd" is not host:port'),
        ({"endpoints": "unix://x:1"}, {}, 'metadata.endpoints: "unix://x:1" is not host:port'),
        ({"watchProgressNotifyInterval": "0"}, {}, "metadata.watchProgressNotifyInterval:"),
        ({"value": "many"}, {}, 'metadata.value: "many" is not a number'),
        ({}, {"tls": "on"}, 'authParams.tls: "on" is not one of: enable, disable'),
        ({}, {"tls": "enable", "key": "K"}, "metadata.cert: must be provided with key"),
        ({}, {"tls": "enable", "cert": "C"}, "metadata.key: must be provided with cert"),
        ({}, {"password": "p"}, "metadata.username: must be provided with password"),
        ({}, {"username": "u"}, "metadata.password: must be provided with username"),
    ],
)
def test_bad_parameters_name_the_value(
    meta: dict[str, str], auth: dict[str, str], problem: str
) -> None:
    built, problems = _parse(auth, **meta)
    assert built is None
    assert any(p.startswith(problem) for p in problems), problems


def _answer(value: str) -> dict[str, object]:
    return {"kvs": [{"key": "L2pvYnM=", "value": base64.b64encode(value.encode()).decode()}]}


@pytest.mark.parametrize(("text", "number"), [("3", 3), ("-2.5", -2.5), (".5", 0.5), ("1E2", 100)])
def test_values_go_reads(text: str, number: float) -> None:
    assert etcd.parse_value(_answer(text), "k") == number


@pytest.mark.parametrize("text", ["", "ten", "1,5", "Infinity", "nan", "1e999"])
def test_values_that_are_errors(text: str) -> None:
    with pytest.raises(SourceResponseError, match=r"^k: value"):
        etcd.parse_value(_answer(text), "k")
    with pytest.raises(SourceResponseError, match=r"^k does not exist"):
        etcd.parse_value({"header": {}}, "k")
