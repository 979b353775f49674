"""The ``autoscaling/v2`` HorizontalPodAutoscaler parts the adapter writes, typed, with their
JSON made in one place (:meth:`HorizontalPodAutoscaler.to_json`).

A ScaledObject's ``horizontalPodAutoscalerConfig.behavior`` is parsed into
:class:`Behavior` where the ScaledObject is parsed, so a malformed behavior is a field
error of the ScaledObject, not a failed HPA write. Only the fields that are set are
written, so what the API server defaults stays its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.objects import Condition, JsonObject, ObjectMeta, bad_response
from scalers.errors import Problems, quote
from scalers.quantity import parse_quantity

API_VERSION = "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"
SELECT_POLICIES = ("Max", "Min", "Disabled")
POLICY_TYPES = ("Pods", "Percent")


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    type: str
    value: int
    period_seconds: int

    def to_json(self) -> JsonObject:
        return {"type": self.type, "value": self.value, "periodSeconds": self.period_seconds}


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction of a behavior; ``None`` is unset (the API server's default)."""

    stabilization_window_seconds: int | None = None
    select_policy: str | None = None
    policies: tuple[ScalingPolicy, ...] | None = None
    tolerance: int | float | str | None = None
    """A quantity, kept as written: the number ``0`` and the text ``"0"`` are the same."""

    @classmethod
    def parse(cls, f: Fields) -> ScalingRules:
        window = f.integer("stabilizationWindowSeconds", minimum=0)
        select = f.enum("selectPolicy", SELECT_POLICIES, "Max") if f.has("selectPolicy") else None
        policies = None
        if f.has("policies"):
            policies = tuple(
                ScalingPolicy(
                    type=p.enum("type", POLICY_TYPES, "Pods"),
                    value=p.integer("value", 1, minimum=1, required=True) or 1,
                    period_seconds=p.integer("periodSeconds", 1, minimum=1, required=True) or 1,
                )
                for p in f.items("policies")
            )
        return cls(window, select, policies, _tolerance(f))

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        if self.stabilization_window_seconds is not None:
            out["stabilizationWindowSeconds"] = self.stabilization_window_seconds
        if self.select_policy is not None:
            out["selectPolicy"] = self.select_policy
        if self.policies is not None:
            out["policies"] = [p.to_json() for p in self.policies]
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        return out


def _tolerance(f: Fields) -> int | float | str | None:
    value = f.raw.get("tolerance")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        f.problems.add(f.at("tolerance"), f"{quote(value)} is not a quantity")
        return None
    try:
        parse_quantity(str(value))
    except ValueError:
        f.problems.add(f.at("tolerance"), f"{quote(value)} is not a Kubernetes quantity")
        return None
    return value


@dataclass(frozen=True, slots=True)
class Behavior:
    """``spec.behavior``: the HPA's rules for each direction."""

    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None

    @classmethod
    def parse(cls, f: Fields) -> Behavior:
        return cls(
            scale_up=ScalingRules.parse(f.child("scaleUp")) if f.has("scaleUp") else None,
            scale_down=ScalingRules.parse(f.child("scaleDown")) if f.has("scaleDown") else None,
        )

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        if self.scale_up is not None:
            out["scaleUp"] = self.scale_up.to_json()
        if self.scale_down is not None:
            out["scaleDown"] = self.scale_down.to_json()
        return out


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """What a metric is compared with: one of ``value``, ``average_value`` (quantities) or
    ``average_utilization`` (a percentage of the pods' requests)."""

    type: str
    """``Value``, ``AverageValue`` or ``Utilization``."""
    value: str | None = None
    average_value: str | None = None
    average_utilization: int | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"type": self.type}
        if self.value is not None:
            out["value"] = self.value
        if self.average_value is not None:
            out["averageValue"] = self.average_value
        if self.average_utilization is not None:
            out["averageUtilization"] = self.average_utilization
        return out


@dataclass(frozen=True, slots=True)
class ExternalMetric:
    """An ``External`` metric: read from the external metrics API, which we serve."""

    name: str
    match_labels: Mapping[str, str]
    target: MetricTarget

    @property
    def type(self) -> str:
        return "External"

    def to_json(self) -> JsonObject:
        metric: JsonObject = {
            "name": self.name,
            "selector": {"matchLabels": dict(self.match_labels)},
        }
        return {"type": self.type, "external": {"metric": metric, "target": self.target.to_json()}}


@dataclass(frozen=True, slots=True)
class ResourceMetric:
    """A ``Resource`` metric (cpu, memory of the pods), or a ``ContainerResource`` one when
    ``container`` is set; the HPA reads these itself."""

    name: str
    target: MetricTarget
    container: str | None = None

    @property
    def type(self) -> str:
        return "Resource" if self.container is None else "ContainerResource"

    def to_json(self) -> JsonObject:
        if self.container is None:
            return {
                "type": self.type,
                "resource": {"name": self.name, "target": self.target.to_json()},
            }
        source: JsonObject = {
            "name": self.name,
            "container": self.container,
            "target": self.target.to_json(),
        }
        return {"type": self.type, "containerResource": source}


Metric = ExternalMetric | ResourceMetric


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    """``spec.scaleTargetRef`` (a CrossVersionObjectReference)."""

    api_version: str
    kind: str
    name: str

    def to_json(self) -> JsonObject:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}


@dataclass(frozen=True, slots=True)
class HorizontalPodAutoscaler:
    meta: ObjectMeta
    scale_target_ref: ScaleTargetRef
    min_replicas: int
    max_replicas: int
    metrics: tuple[Metric, ...]
    behavior: Behavior | None = None

    def to_json(self) -> JsonObject:
        spec: JsonObject = {
            "scaleTargetRef": self.scale_target_ref.to_json(),
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "metrics": [m.to_json() for m in self.metrics],
        }
        if self.behavior is not None:
            spec["behavior"] = self.behavior.to_json()
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": self.meta.to_json(),
            "spec": spec,
        }


@dataclass(frozen=True, slots=True)
class HorizontalPodAutoscalerStatus:
    """What the HPA controller reports of an HPA: replica counts and conditions."""

    name: str
    current_replicas: int = 0
    desired_replicas: int = 0
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def from_response(
        cls, obj: Mapping[str, object], subject: str
    ) -> HorizontalPodAutoscalerStatus:
        problems = Problems()
        f = Fields(obj, "", problems, [])
        status = f.child("status")
        found = cls(
            name=f.child("metadata").string("name", "") or "",
            current_replicas=status.integer("currentReplicas", 0) or 0,
            desired_replicas=status.integer("desiredReplicas", 0) or 0,
            conditions=tuple(Condition.parse(c) for c in status.items("conditions")),
        )
        if problems:
            raise bad_response(subject, problems)
        return found
