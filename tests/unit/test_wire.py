"""Kubernetes wire types: selectors, ExternalMetricValueList, Status, discovery (DESIGN.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from metrics_adapter.errors import (
    APIError,
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from metrics_adapter.kube import wire
from metrics_adapter.kube.wire import parse_selector, scaled_object_name
from scalers.label_selector import Requirement

LABEL = "scaledobject.keda.sh/name"


@pytest.mark.parametrize(
    "selector",
    [
        f"{LABEL}=echo",
        f"{LABEL}==echo",
        f"{LABEL} in (echo)",
        f"{LABEL} in ( echo )",
        f" {LABEL} = echo ",
        f"app=web,{LABEL}=echo",
        f"app in (a,b), {LABEL}=echo, !legacy, tier",
        f"{LABEL}!=other,{LABEL}=echo",
    ],
)
def test_scaled_object_name_from_selector(selector: str) -> None:
    assert scaled_object_name(selector) == "echo"


@pytest.mark.parametrize(
    "selector",
    [
        None,
        "",
        "app=web",
        f"{LABEL}=",
        f"{LABEL}!=echo",
        f"{LABEL} notin (echo)",
        f"{LABEL} in (a,b)",
        f"!{LABEL}",
        LABEL,
        "scaledobject.keda.sh/other=echo",
    ],
)
def test_missing_scaled_object_name_is_a_bad_request(selector: str | None) -> None:
    with pytest.raises(BadRequest, match=r"^scaledObject name is not specified"):
        scaled_object_name(selector)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a=b=c", "found '=', expected: ',' or end of string"),
        ("(", r"found '\(', expected: !, identifier, or end of string"),
        (f"{LABEL}=(echo)", r"found '\(', expected: identifier"),
        ("a in x", "found 'x' expected: '\\('"),
        ("!a=b", "found '=', expected: ',' or end of string"),
        ("a$b=c", "key 'a\\$b': name part must consist of"),
        ("x/y/z=1", "must be a name with an optional DNS subdomain prefix"),
        ("Upper.Case/name=1", "prefix must be a lowercase DNS subdomain"),
        ("-a=1", "key '-a': name part must consist of"),
        ("k" * 64 + "=1", "name part must be no more than 63 characters"),
        ("k=" + "v" * 64, "must be no more than 63 characters"),
        ("k=-v", "value '-v' must be empty or consist of"),
        ("k in (ok, bad value)", "found 'value', expected: ',' or '\\)'"),
        ("k=" + "v" * 4096, "longer than 4096"),
    ],
)
def test_malformed_selectors_are_bad_requests(selector: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_selector(selector)
    with pytest.raises(BadRequest):
        scaled_object_name(f"{selector},{LABEL}=echo")


def test_parse_selector_operators() -> None:
    """apimachinery's requirements: sorted by key, ``==`` kept, ``in ()`` the empty value."""
    assert parse_selector("b!=2, a=1, c in (y, x), d notin (z), e, !f, g==3, h in ()") == (
        Requirement("a", "=", ("1",)),
        Requirement("b", "!=", ("2",)),
        Requirement("c", "in", ("x", "y")),
        Requirement("d", "notin", ("z",)),
        Requirement("e", "exists", ()),
        Requirement("f", "!", ()),
        Requirement("g", "==", ("3",)),
        Requirement("h", "in", ("",)),
    )
    assert parse_selector("") == ()
    assert parse_selector("k=" + "v" * 63) == (Requirement("k", "=", ("v" * 63,)),)
    assert scaled_object_name(f"{LABEL}==echo") == "echo"


def test_external_metric_value_list_shape() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))
    body = json.loads(wire.external_metric_value_list("s0-nats-jetstream-JOBS", 1.5, at))
    assert body == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": "s0-nats-jetstream-JOBS",
                "metricLabels": None,
                "timestamp": "2026-03-04T03:06:07Z",
                "value": "1500m",
            }
        ],
    }


@pytest.mark.parametrize("name", ["s0-nats-jetstream-JOBS", 'a"b\\c', "s1-métrique-ü", "x\ny"])
def test_external_metric_value_list_is_the_json_encoders_own_bytes(name: str) -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    expected = {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": name,
                "metricLabels": None,
                "timestamp": "2026-03-04T05:06:07Z",
                "value": "2500m",
            }
        ],
    }
    body = wire.external_metric_value_list(name, 2.5, at)
    assert body == json.dumps(expected, separators=(",", ":")).encode()


@pytest.mark.parametrize(("value", "text"), [(47, "47"), (2000, "2k"), (-5, "0"), (0.0004, "0")])
def test_external_metric_value_is_a_canonical_quantity(value: float, text: str) -> None:
    body = json.loads(wire.external_metric_value_list("m", value, datetime(2026, 1, 1, tzinfo=UTC)))
    assert body["items"][0]["value"] == text
    assert body["items"][0]["timestamp"] == "2026-01-01T00:00:00Z"


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert wire.rfc3339(moment) == "2027-01-01T04:30:00Z"


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (APIError("boom"), 500, "InternalError"),
        (BadRequest("bad selector"), 400, "BadRequest"),
        (Unauthorized("who are you"), 401, "Unauthorized"),
        (Forbidden("not you"), 403, "Forbidden"),
        (NotFound("no such metric"), 404, "NotFound"),
        (ServiceUnavailable("no value yet"), 503, "ServiceUnavailable"),
    ],
)
def test_status_shape(error: APIError, code: int, reason: str) -> None:
    assert json.loads(wire.status(error)) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": str(error),
        "reason": reason,
        "code": code,
    }


def test_api_resource_list_is_the_one_fixed_resource() -> None:
    assert json.loads(wire.API_RESOURCE_LIST) == {
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


def test_api_group_discovery() -> None:
    version = {"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"}
    group = json.loads(wire.API_GROUP)
    assert group["kind"] == "APIGroup"
    assert group["name"] == "external.metrics.k8s.io"
    assert group["versions"] == [version]
    assert group["preferredVersion"] == version
    groups = json.loads(wire.API_GROUP_LIST)
    assert groups["kind"] == "APIGroupList"
    assert [g["name"] for g in groups["groups"]] == ["external.metrics.k8s.io"]


@pytest.mark.parametrize("selector", ["scaledobject.keda.sh/name=x,", ",a=b", "a=b,,c"])
def test_empty_terms_and_sets_are_malformed(selector: str) -> None:
    with pytest.raises(BadRequest, match="labelSelector"):
        parse_selector(selector)
