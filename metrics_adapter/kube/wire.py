"""Kubernetes wire types: the JSON shapes of ``external.metrics.k8s.io`` and ``Status``,
label selectors and timestamps. Routes and the store use these; nothing else builds JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from metrics_adapter.errors import APIError, BadRequest
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


def external_metric_value_list(metric_name: str, value: float, measured_at: datetime) -> bytes:
    """The one-item ``ExternalMetricValueList`` the HPA sums, with a canonical quantity."""
    return _dump(
        {
            "kind": "ExternalMetricValueList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": [
                {
                    "metricName": metric_name,
                    "metricLabels": None,
                    "timestamp": rfc3339(measured_at),
                    "value": format_quantity(value),
                }
            ],
        }
    )


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


# Label selectors, as labels.Parse in apimachinery accepts them.
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"^(?:{_PREFIX}/)?{_NAME}$")
_VALUE = re.compile(rf"^(?:{_NAME})?$")
_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!,()]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[^\s=!,()]*)"
    r"|\s(?P<setop>in|notin)\s*\((?P<set>[^()]*)\))?\s*$"
)


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    """One of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``."""
    values: tuple[str, ...]


def parse_selector(selector: str) -> tuple[Requirement, ...]:
    """Parse a label selector; raise :class:`BadRequest` naming the bad term."""
    if len(selector) > 4096:
        raise BadRequest("labelSelector is longer than 4096 characters")
    terms = _split_terms(selector)
    requirements = []
    for term in terms:
        match = _TERM.match(term)
        if not match or (match["neg"] and (match["op"] or match["setop"])):
            raise BadRequest(f"labelSelector: cannot parse {term.strip()!r}")
        key = match["key"]
        if len(key) > 316 or not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise BadRequest(f"labelSelector: {key!r} is not a valid label key")
        if match["op"]:
            values: tuple[str, ...] = (match["val"],)
            op = "!=" if match["op"] == "!=" else "="
        elif match["setop"]:
            values = tuple(v.strip() for v in match["set"].split(","))
            op = match["setop"]
            if not any(values):
                raise BadRequest(f"labelSelector: {term.strip()!r} has an empty set")
        else:
            values, op = (), "!" if match["neg"] else "exists"
        for value in values:
            if not _VALUE.match(value):
                raise BadRequest(f"labelSelector: {value!r} is not a valid label value")
        requirements.append(Requirement(key, op, values))
    return tuple(requirements)


def _split_terms(selector: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    if not selector.strip():
        return []
    for term in terms:
        if not term.strip():
            raise BadRequest(f"labelSelector: empty term in {selector!r}")
    return terms


def scaled_object_name(selector: str | None) -> str:
    """The ScaledObject a request is for: the one value of ``scaledobject.keda.sh/name``."""
    if not selector:
        raise BadRequest(
            "scaledObject name is not specified: labelSelector "
            f"{SCALED_OBJECT_LABEL}=<name> is required"
        )
    for req in parse_selector(selector):
        single = req.operator in ("=", "in") and len(req.values) == 1 and req.values[0]
        if req.key == SCALED_OBJECT_LABEL and single:
            return req.values[0]
    raise BadRequest(
        f"scaledObject name is not specified: labelSelector {selector!r} has no "
        f"{SCALED_OBJECT_LABEL}=<name> term"
    )
