"""The HorizontalPodAutoscaler a ScaledObject becomes, as KEDA's controller builds it
(keda-semantics §2; kedacore/keda ``controllers/keda/hpa.go``), and whether one that exists
must be rewritten.

Both are pure: :func:`build_hpa` returns the ``autoscaling/v2`` object as a JSON-ready dict,
:func:`differences` compares it with what the API server holds. Reading and writing the
cluster is the controller's job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metrics_adapter import __version__
from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.kube.wire import SCALED_OBJECT_LABEL
from metrics_adapter.model.annotations import (
    EXCLUDED_LABELS,
    PAUSED_REPLICAS,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
    flag,
)
from metrics_adapter.model.keda import API_VERSION, ScaledObject
from scalers import resource
from scalers.errors import Problems, quote
from scalers.params import TriggerInputs
from scalers.quantity import format_quantity, parse_quantity

HPA_API_VERSION = "autoscaling/v2"
COMPOSITE_METRIC = "composite-metric"
MANAGED_BY = "keda-operator"
"""KEDA's value, so that selectors KEDA users already have keep matching."""

_GO_INT32 = re.compile(r"[+-]?\d+")
_GO_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LABEL_INVALID = re.compile(r"[^-A-Za-z0-9_.]")
_QUANTITIES = frozenset({"value", "averageValue", "tolerance"})
"""Keys whose string values are quantities: ``"0.5"`` and ``"500m"`` are the same target."""

# The API server fills every unset rule of a behavior that is present
# (kubernetes pkg/apis/autoscaling/v2/defaults.go); scaleDown's window stays unset.
_SCALE_UP_DEFAULTS: Mapping[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_SCALE_DOWN_DEFAULTS: Mapping[str, Any] = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def resource_targets(so: ScaledObject) -> tuple[resource.ResourceTarget, ...]:
    """The cpu and memory triggers as :func:`~metrics_adapter.binding.triggers.bind` parses them;
    raise ConfigError naming every bad field."""
    problems = Problems()
    found = []
    for trigger in so.triggers:
        if trigger.is_resource:
            inputs = TriggerInputs(trigger.metadata, path=f"triggers[{trigger.index}].metadata")
            target = resource.parse(trigger.type, trigger.metric_type, inputs, problems)
            if target is not None:
                found.append(target)
    problems.raise_for(so.subject)
    return tuple(found)


def build_hpa(
    so: ScaledObject,
    bound: Sequence[BoundTrigger],
    resources: Sequence[resource.ResourceTarget],
    *,
    uid: str,
) -> dict[str, Any]:
    """The HPA for ``so``, owned by it (``uid``), with one metric per trigger.

    Raise ConfigError when ``autoscaling.keda.sh/paused-replicas`` is not an integer, where
    KEDA's reconcile fails too.
    """
    if not uid:
        raise ValueError(f"{so.subject}: an owner reference needs the ScaledObject's uid")
    min_replicas, max_replicas = _replica_bounds(so)
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": so.scale_target_ref.api_version,
            "kind": so.scale_target_ref.kind,
            "name": so.scale_target_ref.name,
        },
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": _metrics(so, bound, resources),
    }
    behavior = _behavior(so)
    if behavior is not None:
        spec["behavior"] = behavior
    metadata: dict[str, Any] = {
        "name": so.hpa_name,
        "namespace": so.ref.namespace,
        "labels": _labels(so),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "ScaledObject",
                "name": so.ref.name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if so.meta.annotations:
        metadata["annotations"] = dict(so.meta.annotations)
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": spec,
    }


def _replica_bounds(so: ScaledObject) -> tuple[int, int]:
    """``(minReplicas, maxReplicas)``; ``paused-replicas`` pins both, as KEDA does until the
    target has reached that count and the HPA is deleted."""
    paused = so.meta.annotations.get(PAUSED_REPLICAS)
    if paused is None:
        return min_replicas(so.min_replica_count), so.max_replica_count
    if not _GO_INT32.fullmatch(paused) or not -(2**31) <= int(paused) < 2**31:
        problems = Problems()
        where = f"metadata.annotations.{PAUSED_REPLICAS}"
        problems.add(where, f"{quote(paused)} is not an integer")
        problems.raise_for(so.subject)
    count = min_replicas(int(paused))
    return count, count


def _labels(so: ScaledObject) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": _label_value(so.hpa_name),
        "app.kubernetes.io/version": _label_value(__version__),
        "app.kubernetes.io/part-of": so.ref.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    # KEDA splits on "," alone; label keys hold no spaces, so stripping only forgives them.
    excluded = {k.strip() for k in so.meta.annotations.get(EXCLUDED_LABELS, "").split(",")}
    # The ScaledObject's own labels come last and win, as in KEDA.
    labels.update((k, v) for k, v in so.meta.labels.items() if k not in excluded)
    return labels


def _label_value(text: str) -> str:
    """At most 63 characters of ``[-A-Za-z0-9_.]``, alphanumeric at both ends: KEDA cuts the
    name label to 63 and trims what is not a letter or digit from its end."""
    cut = _LABEL_INVALID.sub("-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cut)


def _metrics(
    so: ScaledObject,
    bound: Sequence[BoundTrigger],
    resources: Sequence[resource.ResourceTarget],
) -> list[dict[str, Any]]:
    selector = {"matchLabels": {SCALED_OBJECT_LABEL: so.ref.name}}
    metrics = [
        _external(b.metric_name, selector, b.trigger.metric_type, format_quantity(b.scaler.target))
        for b in sorted(bound, key=lambda b: b.trigger.index)
    ]
    metrics += [_resource_metric(r) for r in resources]
    # KEDA sorts by type string only (#1531): ContainerResource < External < Resource. Its
    # sort.Slice is an insertion sort up to 12 entries, so stable there; stable here always.
    metrics.sort(key=lambda m: str(m["type"]))
    composite = _composite(so, selector)
    if composite is not None:
        # hpa.go keeps the entries whose Resource is set (not ContainerResource), then
        # appends the composite metric, unsorted.
        metrics = [m for m in metrics if m["type"] == "Resource"] + [composite]
    return metrics


def _external(
    name: str, selector: Mapping[str, Any], metric_type: str, quantity: str
) -> dict[str, Any]:
    return {
        "type": "External",
        "external": {
            "metric": {"name": name, "selector": _plain(selector)},
            "target": _target(metric_type, quantity),
        },
    }


def _target(metric_type: str, quantity: str) -> dict[str, Any]:
    key = "value" if metric_type == "Value" else "averageValue"
    return {"type": metric_type, key: quantity}


def _resource_metric(r: resource.ResourceTarget) -> dict[str, Any]:
    """KEDA's cpu/memory scaler: Utilization as an integer percentage, AverageValue as the
    quantity the user wrote (the API server canonicalises it, as KEDA's MustParse does)."""
    target: dict[str, Any]
    if r.metric_type == "Utilization":
        target = {"type": "Utilization", "averageUtilization": int(r.value)}
    else:
        target = {"type": "AverageValue", "averageValue": r.value}
    if r.container_name:
        source = {"name": r.name, "container": r.container_name, "target": target}
        return {"type": "ContainerResource", "containerResource": source}
    return {"type": "Resource", "resource": {"name": r.name, "target": target}}


def _composite(so: ScaledObject, selector: Mapping[str, Any]) -> dict[str, Any] | None:
    """The single External metric that replaces the others under ``scalingModifiers``.

    Only the HPA's side: serving the composite value (the formula over the triggers'
    values) is not implemented, so such an HPA finds no ``composite-metric`` to read yet.
    As in hpa.go, there is no composite metric unless ``target`` is a number above 0, and
    the target is cut (not rounded) to milli units.
    """
    modifiers = so.advanced.scaling_modifiers or {}
    keys = ("formula", "target", "activationTarget", "metricType")
    if not any(modifiers.get(k) for k in keys):
        return None
    text = modifiers.get("target")
    if not isinstance(text, str) or not _GO_FLOAT.fullmatch(text):
        return None
    target = float(text)
    if not math.isfinite(target) or target <= 0:
        return None
    milli = int(target * 1000)
    metric_type = modifiers.get("metricType") or "AverageValue"
    return _external(COMPOSITE_METRIC, selector, str(metric_type), format_quantity(milli / 1000))


def _behavior(so: ScaledObject) -> dict[str, Any] | None:
    """``horizontalPodAutoscalerConfig.behavior`` copied, with the pause annotations'
    ``selectPolicy: Disabled`` laid over the copy; the ScaledObject is left untouched."""
    source = so.advanced.hpa_behavior
    behavior: dict[str, Any] | None = None if source is None else _plain(source)
    for annotation, direction in ((PAUSED_SCALE_IN, "scaleDown"), (PAUSED_SCALE_OUT, "scaleUp")):
        if not flag(so.meta.annotations, annotation):
            continue
        if behavior is None:
            behavior = {}
        rules = behavior.get(direction)
        if not isinstance(rules, dict):
            rules = behavior[direction] = {}
        rules["selectPolicy"] = "Disabled"
    return behavior


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Whether an existing HPA must be rewritten.


def differences(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """The paths of the fields we own that ``existing`` (as read from the API server) does
    not hold as ``desired`` (from :func:`build_hpa`); empty when no write is needed.

    Compared: every spec field we set, lists entry by entry, with the server's defaults
    for ``behavior`` applied to both sides and quantities compared by value (``0.5Gi`` is
    ``512Mi``); the labels and annotations we set (other writers' extra keys are left
    alone); our owner reference. Everything the server fills in (status, resourceVersion,
    uid, managedFields, defaulted fields) is ignored. Like KEDA's DeepDerivative, a label or
    annotation merely removed from the ScaledObject is not seen here; it goes with the next
    write (a server-side apply drops what our field manager no longer sets).
    """
    have_meta: Mapping[str, Any] = existing.get("metadata") or {}
    want_meta: Mapping[str, Any] = desired["metadata"]
    found: list[str] = []
    for key in ("labels", "annotations"):
        have = have_meta.get(key) or {}
        found += [
            f"metadata.{key}.{k}" for k, v in (want_meta.get(key) or {}).items() if have.get(k) != v
        ]
    owners = have_meta.get("ownerReferences") or []
    for owner in want_meta.get("ownerReferences") or []:
        if not any(not list(_drift(owner, o, "")) for o in owners):
            found.append("metadata.ownerReferences")
    have_spec = dict(existing.get("spec") or {})
    want_spec = dict(desired["spec"])
    # No behavior scales as the default one does: a stored default behavior (as a replace
    # that omits it may leave) is no difference.
    want_behavior, have_behavior = want_spec.pop("behavior", None), have_spec.get("behavior")
    if want_behavior is not None or have_behavior is not None:
        want_spec["behavior"] = _defaulted(want_behavior or {})
    if isinstance(have_behavior, Mapping):
        have_spec["behavior"] = _defaulted(have_behavior)
    found += _drift(want_spec, have_spec, "spec")
    return found


def needs_update(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether ``existing`` must be rewritten to ``desired``; see :func:`differences`."""
    return bool(differences(existing, desired))


def _defaulted(behavior: Mapping[str, Any]) -> dict[str, Any]:
    """``behavior`` as the API server stores it: every unset rule filled in."""
    out: dict[str, Any] = _plain(behavior)
    for direction, defaults in (
        ("scaleUp", _SCALE_UP_DEFAULTS),
        ("scaleDown", _SCALE_DOWN_DEFAULTS),
    ):
        rules = out.get(direction) or {}
        out[direction] = {**_plain(defaults), **{k: v for k, v in rules.items() if v is not None}}
    return out


def _drift(want: Any, have: Any, path: str) -> Iterator[str]:
    """Paths where ``have`` differs from ``want``; keys ``want`` does not set are ignored."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            yield path
            return
        for key, value in want.items():
            yield from _drift(value, have.get(key), f"{path}.{key}" if path else key)
    elif isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            yield path
            return
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            yield from _drift(w, h, f"{path}[{i}]")
    elif not _same(want, have, path.rpartition(".")[2]):
        yield path


def _same(want: Any, have: Any, key: str) -> bool:
    if want == have and type(want) is type(have):
        return True
    if key in _QUANTITIES and _is_number_or_text(want) and _is_number_or_text(have):
        # A tolerance written as the number 0 comes back as the quantity "0".
        try:
            return parse_quantity(str(want)) == parse_quantity(str(have))
        except ValueError:
            return False
    return False


def _is_number_or_text(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


# What the HPA controller computes from our values (keda-semantics §2).

TOLERANCE = 0.1


@dataclass(frozen=True, slots=True)
class Proposal:
    replicas: int
    why: str


def metric_replicas(metric_type: str, value: float, target: float, current: int) -> Proposal:
    """Replicas one External metric asks for, with the formula in numbers."""
    if metric_type == "Value":
        ratio = value / target
        if current > 0 and abs(ratio - 1.0) <= TOLERANCE:
            return Proposal(current, f"{value:g}/{target:g} within 10% of target: keep {current}")
        wanted = math.ceil(current * ratio)
        return Proposal(wanted, f"ceil({current} * {value:g} / {target:g}) = {wanted}")
    wanted = math.ceil(value / target)
    if current > 0 and abs(value / (target * current) - 1.0) <= TOLERANCE:
        return Proposal(current, f"{value:g}/({target:g} * {current}) within 10%: keep {current}")
    return Proposal(wanted, f"ceil({value:g} / {target:g}) = {wanted}")


def min_replicas(min_replica_count: int) -> int:
    """The HPA's ``minReplicas``: KEDA takes the 0 <-> 1 step itself, the HPA never sees 0."""
    return max(min_replica_count, 1)


def clamp(replicas: int, min_replica_count: int, max_replicas: int) -> int:
    """The HPA's bounds for a ScaledObject's ``minReplicaCount`` and ``maxReplicaCount``."""
    return max(min_replicas(min_replica_count), min(replicas, max_replicas))
