"""The activator: the 0 ↔ N decisions the HPA cannot make (keda-semantics §4).

:func:`decide` is pure; a target applies its decision. Standalone, the target is a dry
run that logs what it would do; in a cluster it patches the workload's ``/scale``.
An error is never read as inactive: a failing trigger blocks scale-to-zero.

Activation goes straight to the replicas the HPA's first step from one replica would reach
(:func:`activation_step`), where KEDA goes to ``max(minReplicaCount, 1)`` and leaves the
rest to the HPA, which acts only at its next sync (15 s by default) and then in steps the
``behavior.scaleUp`` policies bound. The ``metrics-adapter.io/activation: one-replica``
annotation keeps KEDA's way.

Under scalingModifiers the object is active when its composite metric is above
``activationTarget`` (or in fallback), as in KEDA; where KEDA counts a failing trigger as
making the object inactive, here it makes it unknown, which never scales to zero.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_adapter.binding.composite import COMPOSITE_METRIC, Composite
from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.control import hpa
from metrics_adapter.metrics.composite import CompositeFallback
from metrics_adapter.metrics.store import Composed, Fallback, MetricStore, Reading
from metrics_adapter.model.annotations import (
    ACTIVATION,
    FORCE_ACTIVATION,
    ONE_REPLICA,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
    flag,
    forced,
    one_replica_activation,
)
from metrics_adapter.model.keda import FallbackSpec, ObjectRef, ScaledObject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TriggerState:
    bound: BoundTrigger
    reading: Reading

    def why(self) -> str:
        s, r = self.bound.scaler, self.reading
        if r.in_fallback:
            return f"{self.bound.metric_name} failing {r.failures} times: in fallback"
        if r.error is not None:
            return f"{self.bound.metric_name} failing: {r.error}"
        if r.value is None:
            return f"{self.bound.metric_name} has no value yet"
        sign = ">" if r.active else "<="
        compared = r.value if r.activity is None else r.activity  # what activation compared
        return (
            f"{self.bound.metric_name} {s.value_label} {compared:g} {sign} {s.activation_target:g}"
        )


def composite_why(composed: Composed) -> str:
    """What the composite metric says about activity: ``composite-metric 12 > 0``."""
    outcome, name = composed.outcome, COMPOSITE_METRIC
    if outcome.fallback is not None:
        return f"{name} in fallback: {outcome.fallback}"
    if outcome.error is not None:
        return f"{name} failing: {outcome.error}"
    if outcome.served is None:
        return f"{name} has no value yet"
    sign = ">" if outcome.active else "<="
    return f"{name} {outcome.served:g} {sign} {composed.composite.activation_target:g}"


def trigger_states(
    store: MetricStore, so: ObjectRef, triggers: Sequence[BoundTrigger]
) -> list[TriggerState]:
    """Each of ``so``'s triggers with its latest reading (one the store no longer holds is
    left out)."""
    readings = store.readings(so)
    return [
        TriggerState(b, readings[b.metric_name.lower()])
        for b in triggers
        if b.metric_name.lower() in readings
    ]


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int | None
    """Scale the target to this; ``None`` leaves it alone."""
    active: bool | None
    """``None`` when unknown: a trigger is failing or has no value yet."""
    reason: str
    last_active: datetime | None
    cooldown_left: float | None = None
    """Seconds until an inactive object may go to zero, when it is waiting for that."""
    cooldown_ends: datetime | None = None
    """When that wait ends: the same at every reading, where the seconds left are not."""


def decide(
    so: ScaledObject,
    current: int,
    states: Sequence[TriggerState],
    last_active: datetime | None,
    now: datetime,
    composite: Composed | None = None,
    *,
    settling: bool = False,
) -> Decision:
    """What the activator does now (keda-semantics §4), held back by the pause-scale-in/out
    annotations, which block the 0 -> N and N -> 0 steps as they block the HPA's. With
    ``composite`` (scalingModifiers) its value decides activity, not the triggers'.
    ``settling``: the target still has the replicas an activation gave it moments ago, so
    a reading that asks a larger first step (more of a burst that was still arriving)
    raises it there, without waiting for the HPA's next sync."""
    step = activation_step(so, states, composite)
    activity = _activity(states, composite)
    decision = _decide(so, current, activity, last_active, now, step, settling)
    if decision.replicas is None or decision.replicas == current:
        return decision
    blocked = PAUSED_SCALE_OUT if decision.replicas > current else PAUSED_SCALE_IN
    if flag(so.meta.annotations, blocked):
        return dataclasses.replace(
            decision, replicas=None, reason=f"{decision.reason}; held at {current} by {blocked}"
        )
    return decision


@dataclass(frozen=True, slots=True)
class _Activity:
    """Why the object is active, unknown, or (with neither) inactive."""

    active: list[str]
    unknown: list[str]
    inactive: str
    always: bool
    """Only cpu/memory triggers: nothing to read, always active."""


def _activity(states: Sequence[TriggerState], composite: Composed | None) -> _Activity:
    # A reading in fallback counts as active (KEDA >= 2.19), so a fallback scales from zero.
    if composite is None:
        active = [
            s.why()
            for s in states
            if s.reading.in_fallback or (s.reading.active and s.reading.error is None)
        ]
        unknown = [
            s.why()
            for s in states
            if not s.reading.in_fallback
            and (s.reading.error is not None or s.reading.value is None)
        ]
        reason = "; ".join(s.why() for s in states)
        return _Activity(active, unknown, reason, not states)
    why, reading = composite_why(composite), composite.reading
    failing = [s.why() for s in states if s.reading.error is not None and not s.reading.in_fallback]
    if reading.in_fallback or (reading.active and reading.error is None):
        return _Activity([why], failing, why, False)
    if reading.error is not None or reading.value is None:
        return _Activity([], [why], why, False)
    return _Activity([], failing, why, False)  # not active, but not while a trigger fails


def _decide(
    so: ScaledObject,
    current: int,
    activity: _Activity,
    last_active: datetime | None,
    now: datetime,
    step: hpa.Proposal,
    settling: bool,
) -> Decision:
    is_forced = forced(so.meta.annotations)
    active, unknown = activity.active, activity.unknown
    min_r, idle = so.min_replica_count, so.idle_replica_count

    if is_forced or active or activity.always:
        reason = (
            f"{FORCE_ACTIVATION} is set"
            if is_forced
            else active[0]
            if active
            else "only cpu/memory triggers: always active"
        )
        if current == 0 or (idle is not None and current < min_r):
            if step.replicas > max(min_r, 1):
                reason = f"{reason}; {step.why}"
            return Decision(step.replicas, True, reason, now)
        if settling and step.replicas > current:
            return Decision(step.replicas, True, f"{reason}; still activating: {step.why}", now)
        # KEDA leaves lastActiveTime alone while another trigger fails (PartialTriggerError).
        return Decision(None, True, reason, last_active if unknown else now)

    if unknown:
        return Decision(
            None,
            None,
            "; ".join(unknown) + ": not scaling down while a trigger is unknown",
            last_active,
        )

    reason = activity.inactive
    floor = idle if idle is not None else min_r
    if (idle is not None and current > idle) or (current > 0 and min_r == 0):
        if last_active is None:
            created = so.meta.creation_timestamp or now
            due = created + timedelta(seconds=so.initial_cooldown_period)
        else:
            due = last_active + timedelta(seconds=so.cooldown_period)
        if now >= due:
            return Decision(floor, False, reason, last_active)
        left = (due - now).total_seconds()
        why = f"{reason}; cooldown: {left:.0f}s left"
        return Decision(None, False, why, last_active, left, due)
    if idle is None and current < min_r:
        return Decision(min_r, False, f"below minReplicaCount {min_r}", last_active)
    return Decision(None, False, reason, last_active)


def fallback_replicas(fallback: FallbackSpec, current: int) -> int:
    """R: ``fallback.replicas``, or the current count, per ``fallback.behavior``."""
    return {
        "currentReplicas": current,
        "currentReplicasIfHigher": max(current, fallback.replicas),
        "currentReplicasIfLower": min(current, fallback.replicas),
    }.get(fallback.behavior, fallback.replicas)


def replicas_value(metric_type: str, target: float, replicas: int, current: int) -> float | None:
    """The value that makes the HPA compute ``replicas``: target x R for AverageValue,
    target x R / current for Value (``None`` at 0 replicas, where KEDA fails too)."""
    if metric_type == "Value":
        return target * replicas / current if current > 0 else None
    return target * replicas


def fallback_value(so: ScaledObject, bound: BoundTrigger, current: int) -> float | None:
    """What one trigger serves in fallback (none under ``behavior: scalingModifiers``, where
    the composite metric falls back instead)."""
    fallback = so.fallback
    if fallback is None or fallback.behavior == "scalingModifiers":
        return None
    replicas = fallback_replicas(fallback, current)
    return replicas_value(bound.trigger.target_type, bound.scaler.target, replicas, current)


def composite_fallback(
    so: ScaledObject, composite: Composite, current: int
) -> CompositeFallback | None:
    """What the composite metric serves when triggers fail: the modifiers' target times R
    (``fallback.replicas`` when a formula that gave nil falls back)."""
    fallback = so.fallback
    if fallback is None:
        return None
    per_trigger = fallback.behavior == "scalingModifiers"
    replicas = fallback.replicas if per_trigger else fallback_replicas(fallback, current)
    value = replicas_value(composite.metric_type, composite.target, replicas, current)
    return CompositeFallback(fallback.failure_threshold, value, per_trigger)


def set_fallbacks(
    store: MetricStore, so: ScaledObject, triggers: Sequence[BoundTrigger], current: int
) -> None:
    """Give each trigger of ``so``, and its composite metric, the fallback the store serves
    once they fail enough."""
    assert so.fallback is not None
    threshold = so.fallback.failure_threshold
    for bound in triggers:
        value = fallback_value(so, bound, current)
        rule = None if value is None else Fallback(threshold, value)
        store.set_fallback(bound.so, bound.metric_name, rule)
    composed = store.composite(so.ref)
    if composed is not None:
        store.set_composite_fallback(so.ref, composite_fallback(so, composed.composite, current))


def hpa_proposal(
    so: ScaledObject,
    current: int,
    states: Sequence[TriggerState],
    composite: Composed | None = None,
) -> hpa.Proposal | None:
    """The replicas the HPA would compute now, or ``None`` when it would not act. With
    ``composite``, from the one composite metric (its served value: fallback included)."""
    if composite is not None:
        served = composite.outcome.served
        if current == 0 or served is None:
            return None
        c = composite.composite
        p = hpa.metric_replicas(c.metric_type, served, c.target, current)
        return _bounded(so, hpa.Proposal(p.replicas, f"{COMPOSITE_METRIC}: {p.why}"))
    if current == 0 or any(s.reading.value is None or s.reading.error for s in states):
        return None
    best: hpa.Proposal | None = None
    for s in states:
        assert s.reading.value is not None
        p = hpa.metric_replicas(
            s.bound.trigger.target_type, s.reading.value, s.bound.scaler.target, current
        )
        if best is None or p.replicas > best.replicas:
            best = hpa.Proposal(p.replicas, f"{s.bound.metric_name}: {p.why}")
    return None if best is None else _bounded(so, best)


def activation_step(
    so: ScaledObject, states: Sequence[TriggerState], composite: Composed | None = None
) -> hpa.Proposal:
    """What the HPA's first step from one replica would reach: per active trigger (or the
    active composite metric) the HPA's own arithmetic at one replica, 10 % tolerance
    included, on the value polled or the one fallback serves; the largest, held to what
    ``behavior.scaleUp`` allows from one replica (5 with its defaults), then to
    ``[max(minReplicaCount, 1), maxReplicaCount]``. Only polled values count (an error is
    never a number, a hint never a value); the annotation keeps KEDA's one replica."""
    floor = hpa.min_replicas(so.min_replica_count)
    if one_replica_activation(so.meta.annotations):
        return hpa.Proposal(floor, f"{ACTIVATION}: {ONE_REPLICA}")
    wanted = max(
        (p for p in _first_steps(so, states, composite) if p.replicas > 1),
        key=lambda p: p.replicas,
        default=None,
    )
    if wanted is None:
        return hpa.Proposal(floor, f"max(minReplicaCount, 1) = {floor}")
    # Without a behavior the HPA controller takes its legacy limit, max(2 x current, 4): 4
    # from 1. On purpose, the documented defaults (5 from 1) apply instead, as to any HPA
    # with a behavior: the HPA then computes 5 from 5 and keeps it, where 4 would leave the
    # rest of a burst to its next sync.
    behavior = hpa.behavior_of(so)
    limit = hpa.scale_up_limit(behavior.scale_up if behavior else None, 1)
    why = f"the HPA's first step: {wanted.why}"
    if wanted.replicas > limit:
        why += f", scaleUp policies allow {limit} from 1"
    return _bounded(so, hpa.Proposal(min(wanted.replicas, limit), why))


def _first_steps(
    so: ScaledObject, states: Sequence[TriggerState], composite: Composed | None
) -> Iterator[hpa.Proposal]:
    """What the HPA computes at one replica from each metric that makes the object active."""
    if composite is not None:
        reading, c = composite.reading, composite.composite
        value: float | None = None
        if reading.in_fallback or composite.outcome.fallback is not None:
            fallback = composite_fallback(so, c, 1)
            value = None if fallback is None else fallback.value
        elif reading.active and reading.error is None:
            value = composite.outcome.served
        if value is not None:
            p = hpa.metric_replicas(c.metric_type, value, c.target, 1)
            yield hpa.Proposal(p.replicas, f"{COMPOSITE_METRIC}: {p.why}")
        return
    for s in states:
        reading, bound = s.reading, s.bound
        if reading.in_fallback:
            value = fallback_value(so, bound, 1)
        elif reading.active and reading.error is None:
            value = reading.value
        else:
            continue
        if value is not None:
            p = hpa.metric_replicas(bound.trigger.target_type, value, bound.scaler.target, 1)
            yield hpa.Proposal(p.replicas, f"{bound.metric_name}: {p.why}")


def _bounded(so: ScaledObject, wanted: hpa.Proposal) -> hpa.Proposal:
    bounded = hpa.clamp(wanted.replicas, so.min_replica_count, so.max_replica_count)
    if bounded == wanted.replicas:
        return wanted
    return hpa.Proposal(bounded, f"{wanted.why}, bounded to {bounded}")


class DryRunActivator:
    """Standalone: applies decisions to simulated replica counts and logs what it would do."""

    def __init__(self, initial: dict[ObjectRef, int] | None = None) -> None:
        self.replicas: dict[ObjectRef, int] = dict(initial or {})
        self.last_active: dict[ObjectRef, datetime | None] = {}
        self.activity: dict[ObjectRef, bool | None] = {}

    def evaluate(
        self,
        so: ScaledObject,
        states: Sequence[TriggerState],
        now: datetime,
        composite: Composed | None = None,
    ) -> None:
        ref = so.ref
        current = self.replicas.setdefault(ref, so.min_replica_count)
        decision = decide(so, current, states, self.last_active.get(ref), now, composite)
        self.last_active[ref] = decision.last_active
        if ref not in self.activity or self.activity[ref] != decision.active:  # first, changes
            state = {True: "active", False: "inactive", None: "unknown"}[decision.active]
            log.info("%s is %s: %s", ref, state, decision.reason, extra={"scaledObject": str(ref)})
            self.activity[ref] = decision.active
        if decision.replicas is not None and decision.replicas != current:
            log.info(
                "would scale %s from %d to %d: %s",
                ref,
                current,
                decision.replicas,
                decision.reason,
                extra={"scaledObject": str(ref)},
            )
            self.replicas[ref] = current = decision.replicas
        if decision.active:
            proposal = hpa_proposal(so, current, states, composite)
            if proposal is not None and proposal.replicas != current:
                log.info(
                    "HPA %s would scale %s from %d to %d: %s",
                    so.hpa_name,
                    ref,
                    current,
                    proposal.replicas,
                    proposal.why,
                    extra={"scaledObject": str(ref)},
                )
                self.replicas[ref] = proposal.replicas
