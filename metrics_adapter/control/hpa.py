"""The HorizontalPodAutoscaler a ScaledObject becomes, as KEDA's controller builds it
(keda-semantics §2; kedacore/keda ``controllers/keda/hpa.go``), and whether one that exists
must be rewritten.

Both are pure: :func:`build_hpa` returns the typed ``autoscaling/v2`` object (its JSON is
:meth:`~metrics_adapter.kube.autoscaling.HorizontalPodAutoscaler.to_json`),
:func:`differences` compares it with what the API server holds. Reading and writing the
cluster is the controller's job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from metrics_adapter import __version__
from metrics_adapter.binding.composite import COMPOSITE_METRIC
from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.kube.autoscaling import (
    Behavior,
    ExternalMetric,
    HorizontalPodAutoscaler,
    Metric,
    MetricTarget,
    ResourceMetric,
    ScaleTargetRef,
    ScalingPolicy,
    ScalingRules,
)
from metrics_adapter.kube.objects import (
    KEDA_OPERATOR,
    JsonObject,
    ObjectMeta,
    OwnerReference,
    frozen,
)
from metrics_adapter.kube.wire import SCALED_OBJECT_LABEL
from metrics_adapter.model.annotations import (
    EXCLUDED_LABELS,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
    flag,
)
from metrics_adapter.model.keda import API_VERSION, ScaledObject
from scalers.quantity import format_quantity, parse_quantity
from scalers.resource import ResourceTarget

_GO_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LABEL_INVALID = re.compile(r"[^-A-Za-z0-9_.]")
_QUANTITIES = frozenset({"value", "averageValue", "tolerance"})
"""Keys whose string values are quantities: ``"0.5"`` and ``"500m"`` are the same target."""

# The API server fills every unset rule of a behavior that is present
# (kubernetes pkg/apis/autoscaling/v2/defaults.go); scaleDown's window stays unset.
SCALE_UP_DEFAULTS = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)
_SCALE_UP_DEFAULTS: JsonObject = SCALE_UP_DEFAULTS.to_json()
_SCALE_DOWN_DEFAULTS: JsonObject = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def build_hpa(
    so: ScaledObject,
    bound: Sequence[BoundTrigger],
    resources: Sequence[ResourceTarget],
    *,
    uid: str,
) -> HorizontalPodAutoscaler:
    """The HPA for ``so``, owned by it (``uid``), with one metric per trigger: ``bound`` and
    ``resources`` as :func:`~metrics_adapter.binding.triggers.bind_all` made them."""
    if not uid:
        raise ValueError(f"{so.subject}: an owner reference needs the ScaledObject's uid")
    min_replicas, max_replicas = _replica_bounds(so)
    target = so.scale_target_ref
    owner = OwnerReference(API_VERSION, "ScaledObject", so.ref.name, uid)
    return HorizontalPodAutoscaler(
        meta=ObjectMeta(
            name=so.hpa_name,
            namespace=so.ref.namespace,
            labels=frozen(_labels(so)),
            annotations=so.meta.annotations,
            owner_references=(owner,),
        ),
        scale_target_ref=ScaleTargetRef(target.api_version, target.kind, target.name),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metrics=_metrics(so, bound, resources),
        behavior=behavior_of(so),
    )


def _replica_bounds(so: ScaledObject) -> tuple[int, int]:
    """``(minReplicas, maxReplicas)``; ``paused-replicas`` pins both, as KEDA does until the
    target has reached that count and the HPA is deleted."""
    if so.paused_replicas is None:
        return min_replicas(so.min_replica_count), so.max_replica_count
    count = min_replicas(so.paused_replicas)
    return count, count


def _labels(so: ScaledObject) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": label_value(so.hpa_name),
        "app.kubernetes.io/version": label_value(__version__),
        "app.kubernetes.io/part-of": so.ref.name,
        "app.kubernetes.io/managed-by": KEDA_OPERATOR,
    }
    # KEDA splits on "," alone; label keys hold no spaces, so stripping only forgives them.
    excluded = {k.strip() for k in so.meta.annotations.get(EXCLUDED_LABELS, "").split(",")}
    # The ScaledObject's own labels come last and win, as in KEDA.
    labels.update((k, v) for k, v in so.meta.labels.items() if k not in excluded)
    return labels


def label_value(text: str) -> str:
    """At most 63 characters of ``[-A-Za-z0-9_.]``, alphanumeric at both ends: KEDA cuts the
    name label to 63 and trims what is not a letter or digit from its end."""
    cut = _LABEL_INVALID.sub("-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cut)


def _metrics(
    so: ScaledObject,
    bound: Sequence[BoundTrigger],
    resources: Sequence[ResourceTarget],
) -> tuple[Metric, ...]:
    selector = {SCALED_OBJECT_LABEL: so.ref.name}
    metrics: list[Metric] = [
        ExternalMetric(
            b.metric_name,
            selector,
            _target(b.trigger.target_type, format_quantity(b.scaler.target)),
        )
        for b in sorted(bound, key=lambda b: b.trigger.index)
    ]
    metrics += [_resource_metric(r) for r in resources]
    # KEDA sorts by type string only (#1531): ContainerResource < External < Resource. Its
    # sort.Slice is an insertion sort up to 12 entries, so stable there; stable here always.
    metrics.sort(key=lambda m: m.type)
    composite = _composite(so, selector)
    if composite is not None:
        # hpa.go keeps the entries whose Resource is set (not ContainerResource), then
        # appends the composite metric, unsorted.
        metrics = [m for m in metrics if m.type == "Resource"] + [composite]
    return tuple(metrics)


def _target(metric_type: str, quantity: str) -> MetricTarget:
    if metric_type == "Value":
        return MetricTarget(metric_type, value=quantity)
    return MetricTarget(metric_type, average_value=quantity)


def _resource_metric(r: ResourceTarget) -> ResourceMetric:
    """KEDA's cpu/memory scaler: Utilization as an integer percentage, AverageValue as the
    quantity the user wrote (the API server canonicalises it, as KEDA's MustParse does)."""
    if r.metric_type == "Utilization":
        target = MetricTarget("Utilization", average_utilization=int(r.value))
    else:
        target = MetricTarget("AverageValue", average_value=r.value)
    return ResourceMetric(r.name, target, r.container_name)


def _composite(so: ScaledObject, selector: Mapping[str, str]) -> ExternalMetric | None:
    """The single External metric that replaces the others under ``scalingModifiers``
    (its value: :mod:`metrics_adapter.metrics.composite`). As in hpa.go, there is no
    composite metric unless ``target`` is a number above 0 (the binder refuses any other),
    and the target is cut (not rounded) to milli units.
    """
    modifiers = so.advanced.scaling_modifiers
    if modifiers is None or not modifiers.in_use:
        return None
    text = modifiers.target
    if text is None or not _GO_FLOAT.fullmatch(text):
        return None
    target = float(text)
    if not math.isfinite(target) or target <= 0:
        return None
    milli = int(target * 1000)
    metric_type = modifiers.metric_type or "AverageValue"
    return ExternalMetric(
        COMPOSITE_METRIC, selector, _target(metric_type, format_quantity(milli / 1000))
    )


def behavior_of(so: ScaledObject) -> Behavior | None:
    """``horizontalPodAutoscalerConfig.behavior``, with the pause annotations'
    ``selectPolicy: Disabled`` laid over it."""
    behavior = so.advanced.hpa_behavior
    scale_in = flag(so.meta.annotations, PAUSED_SCALE_IN)
    scale_out = flag(so.meta.annotations, PAUSED_SCALE_OUT)
    if not (scale_in or scale_out):
        return behavior
    behavior = behavior or Behavior()
    return Behavior(
        scale_up=_disabled(behavior.scale_up) if scale_out else behavior.scale_up,
        scale_down=_disabled(behavior.scale_down) if scale_in else behavior.scale_down,
    )


def _disabled(rules: ScalingRules | None) -> ScalingRules:
    return replace(rules or ScalingRules(), select_policy="Disabled")


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Whether an existing HPA must be rewritten.


def differences(existing: Mapping[str, Any], desired: HorizontalPodAutoscaler) -> list[str]:
    """The paths of the fields we own that ``existing`` (as read from the API server) does
    not hold as ``desired`` (from :func:`build_hpa`, compared as its JSON); empty when no
    write is needed.

    Compared: every spec field we set, lists entry by entry, with the server's defaults
    for ``behavior`` applied to both sides and quantities compared by value (``0.5Gi`` is
    ``512Mi``); the labels and annotations we set (other writers' extra keys are left
    alone); our owner reference. Everything the server fills in (status, resourceVersion,
    uid, managedFields, defaulted fields) is ignored. Like KEDA's DeepDerivative, a label or
    annotation merely removed from the ScaledObject is not seen here; it goes with the next
    write (a server-side apply drops what our field manager no longer sets).
    """
    want = desired.to_json()
    have_meta: Mapping[str, Any] = existing.get("metadata") or {}
    want_meta: Mapping[str, Any] = _plain(want["metadata"])
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
    want_spec: dict[str, Any] = _plain(want["spec"])
    # No behavior scales as the default one does: a stored default behavior (as a replace
    # that omits it may leave) is no difference.
    want_behavior, have_behavior = want_spec.pop("behavior", None), have_spec.get("behavior")
    if want_behavior is not None or have_behavior is not None:
        want_spec["behavior"] = _defaulted(want_behavior or {})
    if isinstance(have_behavior, Mapping):
        have_spec["behavior"] = _defaulted(have_behavior)
    found += _drift(want_spec, have_spec, "spec")
    return found


def needs_update(existing: Mapping[str, Any], desired: HorizontalPodAutoscaler) -> bool:
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


def _drift(want: object, have: object, path: str) -> Iterator[str]:
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


def _same(want: object, have: object, key: str) -> bool:
    if want == have and type(want) is type(have):
        return True
    if key in _QUANTITIES and _is_number_or_text(want) and _is_number_or_text(have):
        # A tolerance written as the number 0 comes back as the quantity "0".
        try:
            return parse_quantity(str(want)) == parse_quantity(str(have))
        except ValueError:
            return False
    return False


def _is_number_or_text(value: object) -> bool:
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


def scale_up_limit(rules: ScalingRules | None, current: int) -> int:
    """The most replicas one scale-up from ``current`` may reach under ``scaleUp`` rules
    (unset ones defaulted as the API server does: 4 Pods or 100 % per 15 s, ``Max``), with
    no scale event of the HPA's own in their periods: kubernetes
    ``calculateScaleUpLimitWithScalingRules``. ``Max`` takes the policy allowing most,
    ``Min`` the least, ``Disabled`` stays at ``current``."""
    select = (rules and rules.select_policy) or SCALE_UP_DEFAULTS.select_policy
    policies = (rules and rules.policies) or SCALE_UP_DEFAULTS.policies or ()
    if select == "Disabled":
        return current
    proposed = [
        current + p.value if p.type == "Pods" else math.ceil(current * (1 + p.value / 100))
        for p in policies
    ]
    limit = min(proposed) if select == "Min" else max(proposed)
    return max(limit, current)  # the HPA never lets a limit below current scale down
