"""The ScaledObject ``status`` KEDA users read, built in one place: conditions with KEDA's
types, reasons and messages (keda-semantics §1), the metric names, the HPA's name,
``originalReplicaCount``, ``lastActiveTime`` and per-trigger activity, as a typed
:class:`~metrics_adapter.model.keda.ScaledObjectStatus` whose ``to_json()`` is the merge
patch; and whether a new one is worth writing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from metrics_adapter.binding.composite import COMPOSITE_METRIC
from metrics_adapter.control.activator import Decision, TriggerState
from metrics_adapter.kube.objects import Condition
from metrics_adapter.kube.wire import rfc3339
from metrics_adapter.metrics.store import Composed
from metrics_adapter.model.annotations import PAUSED_SCALE_IN, PAUSED_SCALE_OUT, flag, paused
from metrics_adapter.model.keda import ScaledObject, ScaledObjectStatus, TriggerHealth
from metrics_adapter.model.scaled_job import ScaledJobStatus

READY_MESSAGE = "ScaledObject is defined correctly and is ready for scaling"


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
    if decision.cooldown_ends is not None:
        # When it ends, not the seconds left: a message that changed at every reading was a
        # status write at every poll of every object in its cooldown.
        return Condition(
            "Active",
            "False",
            "ScalerCooldown",
            f"Scaling to zero after the cooldown, at {rfc3339(decision.cooldown_ends)}",
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


def fallback(states: Sequence[TriggerState], composite: Composed | None = None) -> Condition:
    readings = [s.reading for s in states] + ([composite.reading] if composite else [])
    if any(r.in_fallback for r in readings):
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
    composite: Composed | None = None,
) -> ScaledObjectStatus:
    """The whole status; ``lastActiveTime`` only once the object was active. Under
    scalingModifiers (``composite``) ``triggersActivity`` holds the composite metric's
    activity only: KEDA discards the triggers' own then."""
    conditions = (
        ready(problem, states),
        active(decision),
        fallback(states, composite),
        paused_condition(so),
    )
    target = so.scale_target_ref
    return ScaledObjectStatus(
        conditions=conditions,
        scale_target_kind=f"{target.api_version}.{target.kind}",
        hpa_name=so.hpa_name,
        external_metric_names=tuple(s.bound.metric_name for s in states),
        resource_metric_names=tuple(t.type for t in so.triggers if t.is_resource),
        triggers_activity=_activity(states, composite),
        composite_scaler_name=COMPOSITE_METRIC if composite else None,
        health=None
        if so.fallback is None  # KEDA keeps health only with a fallback
        else {
            s.bound.metric_name: TriggerHealth(s.reading.failures, s.reading.error is not None)
            for s in states
        },
        original_replica_count=original_replicas,
        last_active_time=decision.last_active if decision else None,
    )


def _activity(states: Sequence[TriggerState], composite: Composed | None) -> dict[str, bool]:
    """``triggersActivity``: each reading that has a value, active or not."""
    if composite is not None:
        reading = composite.reading
        if reading.in_fallback:
            return {COMPOSITE_METRIC: True}
        return {} if reading.error or reading.value is None else {COMPOSITE_METRIC: reading.active}
    return {
        s.bound.metric_name: s.reading.active
        for s in states
        if s.reading.error is None and s.reading.value is not None
    }


def reconciled(
    so: ScaledObject,
    states: Sequence[TriggerState],
    last_active: datetime | None,
    original_replicas: int | None,
    composite: Composed | None = None,
) -> ScaledObjectStatus:
    """The status after a reconcile, before the activator has decided anything: with no
    ``Active`` condition, or ``Active=Unknown`` keeping a known ``lastActiveTime``."""
    decision = (
        None if last_active is None else Decision(None, None, "not evaluated yet", last_active)
    )
    status = status_patch(
        so,
        problem=None,
        states=states,
        decision=decision,
        original_replicas=original_replicas,
        composite=composite,
    )
    if decision is not None:
        return status
    conditions = tuple(c for c in status.conditions if c.type != "Active")
    return dataclasses.replace(status, conditions=conditions)


def not_ready(problem: str) -> ScaledObjectStatus:
    """A malformed object's status: ``Ready=False`` naming every bad field, and nothing else
    (a merge patch leaves what an earlier status said of the rest)."""
    return ScaledObjectStatus(conditions=(ready(problem, ()),))


def unchanged(
    status: ScaledObjectStatus, written: ScaledObjectStatus | None, cooldown: int
) -> bool:
    """Whether writing ``status`` over ``written`` can be skipped: equal but for a
    ``lastActiveTime`` that moved less than a tenth of the cooldown (at most 30 s). KEDA
    writes it every poll, which is what floods the API server."""
    return same_but_a_recent_activity(status, written, max(1.0, min(30.0, cooldown / 10)))


def only_activity_moved(status: ScaledObjectStatus, written: ScaledObjectStatus | None) -> bool:
    """Whether ``status`` differs from ``written`` by its ``lastActiveTime`` alone: a refresh
    that only a failover reads (the leader keeps the exact time in memory), so it may wait
    for a moment when it delays no other write."""
    return same_but_a_recent_activity(status, written, float("inf"))


_Status = TypeVar("_Status", ScaledObjectStatus, ScaledJobStatus)


def same_but_a_recent_activity(status: _Status, written: _Status | None, seconds: float) -> bool:
    """``status`` equals ``written`` but for a ``lastActiveTime`` that moved less than
    ``seconds``: a write that can be skipped (both controllers' rule)."""
    if written is None:
        return False
    new, old = status.last_active_time, written.last_active_time
    if dataclasses.replace(status, last_active_time=old) != written:
        return False
    if new is None or old is None:
        return new == old
    return (new - old).total_seconds() < seconds
