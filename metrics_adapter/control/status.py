"""The ScaledObject ``status`` KEDA users read, built in one place as a merge patch:
conditions with KEDA's types, reasons and messages (keda-semantics §1), the metric names,
the HPA's name, ``originalReplicaCount``, ``lastActiveTime`` and per-trigger activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metrics_adapter.control.activator import Decision, TriggerState
from metrics_adapter.kube import wire
from metrics_adapter.model.annotations import PAUSED_SCALE_IN, PAUSED_SCALE_OUT, flag, paused
from metrics_adapter.model.keda import ScaledObject

READY_MESSAGE = "ScaledObject is defined correctly and is ready for scaling"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


def ready(problem: str | None, states: Sequence[TriggerState]) -> Condition:
    """False with the object's problems, or when every trigger fails; Unknown when some do."""
    if problem is not None:
        return Condition("Ready", "False", "ScaledObjectCheckFailed", problem)
    failing = [s for s in states if s.reading.error is not None]
    if failing:
        message = "; ".join(s.why() for s in failing)
        if len(failing) == len(states):
            return Condition("Ready", "False", "TriggerError", message)
        return Condition("Ready", "Unknown", "PartialTriggerError", message)
    return Condition("Ready", "True", "ScaledObjectReady", READY_MESSAGE)


def active(decision: Decision | None) -> Condition:
    if decision is None or decision.active is None:
        reason = decision.reason if decision else "no trigger has been read yet"
        return Condition("Active", "Unknown", "UnknownState", reason)
    if decision.active:
        return Condition(
            "Active", "True", "ScalerActive", "Scaling is performed because triggers are active"
        )
    if decision.cooldown_left is not None:
        return Condition(
            "Active",
            "False",
            "ScalerCooldown",
            f"Scaling to zero after the cooldown: {decision.cooldown_left:.0f}s left",
        )
    return Condition(
        "Active",
        "False",
        "ScalerNotActive",
        "Scaling is not performed because triggers are not active",
    )


def paused_condition(so: ScaledObject) -> Condition:
    annotations = so.meta.annotations
    if paused(annotations):
        return Condition("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused")
    directions = [
        d for d, a in (("in", PAUSED_SCALE_IN), ("out", PAUSED_SCALE_OUT)) if flag(annotations, a)
    ]
    if directions:
        return Condition(
            "Paused",
            "True",
            "ScaledObjectPaused",
            f"ScaledObject is paused for scale {' and '.join(directions)}",
        )
    return Condition("Paused", "False", "ScaledObjectUnpaused", "ScaledObject is not paused")


def fallback(states: Sequence[TriggerState]) -> Condition:
    if any(s.reading.in_fallback for s in states):
        return Condition(
            "Fallback",
            "True",
            "FallbackExists",
            "At least one trigger is falling back on this scaled object",
        )
    return Condition(
        "Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object"
    )


def status_patch(
    so: ScaledObject,
    *,
    problem: str | None,
    states: Sequence[TriggerState],
    decision: Decision | None,
    original_replicas: int | None,
) -> dict[str, Any]:
    """The merge patch of ``status``; ``lastActiveTime`` only once the object was active."""
    conditions = [ready(problem, states), active(decision), fallback(states), paused_condition(so)]
    target = so.scale_target_ref
    status: dict[str, Any] = {
        "conditions": [c.as_dict() for c in conditions],
        "scaleTargetKind": f"{target.api_version}.{target.kind}",
        "hpaName": so.hpa_name,
        "externalMetricNames": [s.bound.metric_name for s in states],
        "resourceMetricNames": [t.type for t in so.triggers if t.is_resource],
        "triggersActivity": {
            s.bound.metric_name: {"isActive": s.reading.active}
            for s in states
            if s.reading.error is None and s.reading.value is not None
        },
    }
    if so.fallback is not None:  # KEDA keeps health only with a fallback
        status["health"] = {
            s.bound.metric_name: {
                "numberOfFailures": s.reading.failures,
                "status": "Failing" if s.reading.error else "Happy",
            }
            for s in states
        }
    if original_replicas is not None:
        status["originalReplicaCount"] = original_replicas
    last_active: datetime | None = decision.last_active if decision else None
    if last_active is not None:
        status["lastActiveTime"] = wire.rfc3339(last_active)
    return {"status": status}
