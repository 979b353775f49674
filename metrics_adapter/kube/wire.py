"""Kubernetes wire types: the JSON shapes of ``external.metrics.k8s.io`` and ``Status``,
label selectors and timestamps. Routes and the store use these; nothing else builds JSON."""

from __future__ import annotations

import functools
import json
import json.encoder
from datetime import UTC, datetime

from metrics_adapter.errors import APIError, BadRequest
from scalers.label_selector import Requirement, SelectorError, parse_label_selector
from scalers.quantity import format_quantity

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
SCALED_OBJECT_LABEL = "scaledobject.keda.sh/name"


def _dump(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def rfc3339(moment: datetime, *, micro: bool = False) -> str:
    """A Kubernetes timestamp in UTC: ``Time`` (whole seconds, as every status and Event
    field), or ``MicroTime`` with ``micro`` (a Lease's acquire and renew times)."""
    return moment.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    )


def parse_time(value: object) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z`` or an offset); ``None`` when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


API_RESOURCE_LIST = _dump(
    {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
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
)

_GROUP = {
    "name": GROUP,
    "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
    "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
}
API_GROUP = _dump({"kind": "APIGroup", "apiVersion": "v1", **_GROUP})
API_GROUP_LIST = _dump({"kind": "APIGroupList", "apiVersion": "v1", "groups": [_GROUP]})


_VALUE_LIST = (
    b'{"kind":"ExternalMetricValueList","apiVersion":"' + GROUP_VERSION.encode() + b'",'
    b'"metadata":{},"items":[{"metricName":%s,"metricLabels":null,"timestamp":"%s",'
    b'"value":"%s"}]}'
)
"""What :func:`_dump` makes of the list, filled in rather than encoded at every poll (~8 us):
the timestamp and the quantity need no escaping."""


def external_metric_value_list(metric_name: str, value: float, measured_at: datetime) -> bytes:
    """The one-item ``ExternalMetricValueList`` the HPA sums, with a canonical quantity."""
    name = json.encoder.encode_basestring_ascii(metric_name).encode()
    stamp = rfc3339(measured_at).encode()
    return _VALUE_LIST % (name, stamp, format_quantity(value).encode())


def status(error: APIError) -> bytes:
    return _dump(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": str(error),
            "reason": error.reason,
            "code": error.code,
        }
    )


# Label selectors, as labels.Parse in apimachinery accepts them (scalers.label_selector).
MAX_SELECTOR = 4096


@functools.lru_cache(maxsize=1024)
def parse_selector(selector: str) -> tuple[Requirement, ...]:
    """Parse a label selector; raise :class:`BadRequest` naming what is wrong. Cached: an
    HPA asks with the same selector at every sync, and a parse costs ~25 µs."""
    if len(selector) > MAX_SELECTOR:
        raise BadRequest(f"labelSelector is longer than {MAX_SELECTOR} characters")
    try:
        return parse_label_selector(selector).requirements
    except SelectorError as exc:
        raise BadRequest(f"labelSelector {selector!r}: {exc}") from None


def scaled_object_name(selector: str | None) -> str:
    """The ScaledObject a request is for: the one value of ``scaledobject.keda.sh/name``."""
    if not selector:
        raise BadRequest(
            "scaledObject name is not specified: labelSelector "
            f"{SCALED_OBJECT_LABEL}=<name> is required"
        )
    for req in parse_selector(selector):
        single = req.operator in ("=", "==", "in") and len(req.values) == 1 and req.values[0]
        if req.key == SCALED_OBJECT_LABEL and single:
            return req.values[0]
    raise BadRequest(
        f"scaledObject name is not specified: labelSelector {selector!r} has no "
        f"{SCALED_OBJECT_LABEL}=<name> term"
    )
