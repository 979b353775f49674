"""``admission.k8s.io/v1`` AdmissionReview on the wire: the request parsed at the edge into
a typed :class:`AdmissionRequest`, and the response written as kube-apiserver reads it.

A body that is not an AdmissionReview (not JSON, nested absurdly deep, a field of the wrong
type) raises :class:`~metrics_adapter.errors.BadRequest` naming what is wrong: the route
answers 400, and kube-apiserver applies the webhook's failurePolicy. Nothing here raises
anything else on any input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metrics_adapter.errors import BadRequest
from metrics_adapter.kube.fields import Fields
from scalers.errors import Problems

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
GROUP = "keda.sh"
PATHS: Mapping[str, str] = {
    "/validate-keda-sh-v1alpha1-scaledobject": "ScaledObject",
    "/validate-keda-sh-v1alpha1-scaledjob": "ScaledJob",
    "/validate-keda-sh-v1alpha1-triggerauthentication": "TriggerAuthentication",
    "/validate-keda-sh-v1alpha1-clustertriggerauthentication": "ClusterTriggerAuthentication",
}
"""KEDA's webhook paths (config/webhooks/validation_webhooks.yaml), and the kind each
validates: a ValidatingWebhookConfiguration written for KEDA works unchanged."""
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
MAX_BODY = 4 * 1024 * 1024
"""Bytes of an AdmissionReview: the object and, on UPDATE, its old version, each at most the
API server's 1.5 MiB limit for a stored object, with the review around them."""
MAX_DEPTH = 64
"""Nesting a review may have. A ScaledJob's pod template is the deepest real object (about
15 levels); the limit keeps every later walk of the object far from Python's recursion limit."""
MAX_WARNING = 256
MAX_WARNINGS_TOTAL = 4096
"""kube-apiserver may truncate a warning over 256 characters and drops those past 4096
characters in all: ours are cut first, so the cut is ours and says so."""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """``request`` of an AdmissionReview: what is being done to which object."""

    uid: str
    kind: str
    """``request.kind.kind``: the kind of ``object``, e.g. ``ScaledObject``."""
    operation: str
    namespace: str
    name: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool

    @property
    def action(self) -> str:
        """The ``action`` label of KEDA's webhook series: ``create`` or ``update``."""
        return self.operation.lower()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision: a refusal carries its message; warnings go back either way."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


def parse_review(body: bytes) -> AdmissionRequest:
    """The request of the AdmissionReview in ``body``; BadRequest naming what is wrong."""
    try:
        raw = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(
            f"malformed AdmissionReview: nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
        raise BadRequest(f"malformed AdmissionReview: not JSON ({exc})") from None
    if _deeper_than(raw, MAX_DEPTH):
        raise BadRequest(f"malformed AdmissionReview: nested deeper than {MAX_DEPTH} levels")
    problems = Problems()
    review = Fields(raw, "", problems, [])
    if review.raw.get("apiVersion") != API_VERSION or review.raw.get("kind") != KIND:
        problems.add("", f"expected apiVersion {API_VERSION}, kind {KIND}")
    r = review.child("request")
    if not review.has("request"):
        problems.add("request", "is required")
    request = AdmissionRequest(
        uid=r.string("uid", "", required=True) or "",
        kind=r.child("kind").string("kind", "", required=True) or "",
        operation=r.enum("operation", OPERATIONS, "CREATE"),
        namespace=r.string("namespace", "") or "",
        name=r.string("name", "") or "",
        object=_object(r, "object"),
        old_object=_object(r, "oldObject"),
        dry_run=r.boolean("dryRun", False),
    )
    if request.operation in ("CREATE", "UPDATE") and request.object is None:
        problems.add("request.object", f"is required for {request.operation}")
    if request.operation == "UPDATE" and request.old_object is None:
        problems.add("request.oldObject", "is required for UPDATE")
    if problems:
        reasons = "; ".join(str(p) for p in problems)
        raise BadRequest(f"malformed AdmissionReview: {reasons}")
    return request


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _object(f: Fields, key: str) -> Mapping[str, Any] | None:
    value = f.raw.get(key)
    if value is not None and not isinstance(value, Mapping):
        f.problems.add(f.at(key), "must be an object")
        return None
    return value


def _deeper_than(value: object, limit: int) -> bool:
    """Without recursion, so that the check itself cannot overflow."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def response(uid: str, verdict: Verdict) -> bytes:
    """The AdmissionReview kube-apiserver expects back: a refusal is 403 Forbidden with the
    message, as controller-runtime's validators answer (so kubectl prints it the same way)."""
    answer: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        answer["status"] = {
            "metadata": {},
            "status": "Failure",
            "message": verdict.message,
            "reason": "Forbidden",
            "code": 403,
        }
    if warnings := bounded_warnings(verdict.warnings):
        answer["warnings"] = warnings
    review = {"apiVersion": API_VERSION, "kind": KIND, "response": answer}
    return json.dumps(review, ensure_ascii=False).encode()


def bounded_warnings(warnings: tuple[str, ...]) -> list[str]:
    """Each one line of printable text of at most :data:`MAX_WARNING` characters, at most
    :data:`MAX_WARNINGS_TOTAL` in all; the last says how many were left out."""
    out: list[str] = []
    total = 0
    for i, warning in enumerate(warnings):
        text = "".join(c if c.isprintable() else " " for c in warning)
        if len(text) > MAX_WARNING:
            text = text[: MAX_WARNING - 1] + "…"
        if total + len(text) > MAX_WARNINGS_TOTAL - 40:
            out.append(f"{len(warnings) - i} more warnings not shown")
            break
        out.append(text)
        total += len(text)
    return out
