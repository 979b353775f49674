"""The ScaledJob ``status`` KEDA users read (reference keda-scaledjob-webhook-modifiers.md
§1.6): conditions with KEDA's types, reasons and messages, the trigger and authentication
types, the metric names, per-trigger activity and ``lastActiveTime``, as a typed
:class:`~metrics_adapter.model.scaled_job.ScaledJobStatus` whose ``to_json()`` is the merge
patch; and whether a new one is worth writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from metrics_adapter.control.activator import TriggerState
from metrics_adapter.control.status import same_but_a_recent_activity
from metrics_adapter.kube.objects import Condition
from metrics_adapter.model.scaled_job import ScaledJob, ScaledJobStatus

READY_MESSAGE = "ScaledJob is defined correctly and is ready to scaling"
"""KEDA's wording, kept: clients match on it."""


def ready(problem: str | None, states: Sequence[TriggerState], active: bool) -> Condition:
    """False with the object's problems, or when triggers fail and none is active (KEDA
    v2.19+); Unknown when some fail while another is active."""
    if problem is not None:
        return Condition("Ready", "False", "ScaledJobCheckFailed", problem)
    failing = [s for s in states if s.reading.error is not None]
    if failing:
        message = "; ".join(s.why() for s in failing)
        if active:
            return Condition("Ready", "Unknown", "PartialTriggerError", message)
        return Condition("Ready", "False", "TriggerError", message)
    return Condition("Ready", "True", "ScaledJobReady", READY_MESSAGE)


def active_condition(active: bool | None, why: str) -> Condition:
    if active is None:
        return Condition("Active", "Unknown", "UnknownState", why)
    if active:
        return Condition(
            "Active", "True", "ScalerActive", "Scaling is performed because triggers are active"
        )
    return Condition(
        "Active",
        "False",
        "ScalerNotActive",
        "Scaling is not performed because triggers are not active",
    )


def paused_condition(sj: ScaledJob) -> Condition:
    if sj.paused:
        return Condition("Paused", "True", "ScaledJobPaused", "ScaledJob is paused")
    return Condition("Paused", "False", "ScaledJobUnpaused", "ScaledJob is not paused")


FALLBACK = Condition("Fallback", "Unknown", "", "")
"""KEDA initialises it and never uses it for a ScaledJob."""


def status_patch(
    sj: ScaledJob,
    *,
    states: Sequence[TriggerState],
    active: bool | None,
    why: str,
    last_active: datetime | None,
) -> ScaledJobStatus:
    """The whole status after an evaluation (or a reconcile, with ``active=None``)."""
    auths = [t.authentication_ref.name for t in sj.triggers if t.authentication_ref]
    return ScaledJobStatus(
        conditions=(
            ready(None, states, bool(active)),
            active_condition(active, why),
            FALLBACK,
            paused_condition(sj),
        ),
        last_active_time=last_active,
        external_metric_names=tuple(s.bound.metric_name for s in states),
        triggers_types=",".join(t.type for t in sj.triggers),
        authentications_types=",".join(auths),
        triggers_activity={
            s.bound.metric_name: s.reading.active
            for s in states
            if s.reading.error is None and s.reading.value is not None
        },
        paused="true" if sj.paused else "false",
    )


def not_ready(problem: str) -> ScaledJobStatus:
    """A malformed ScaledJob: ``Ready=False`` naming every bad field, ``Active`` unknown."""
    return ScaledJobStatus(
        conditions=(
            ready(problem, (), False),
            Condition("Active", "Unknown", "UnknownState", "the ScaledJob cannot be used"),
        )
    )


def unchanged(status: ScaledJobStatus, written: ScaledJobStatus | None, interval: int) -> bool:
    """Whether writing ``status`` over ``written`` can be skipped: equal but for a
    ``lastActiveTime`` that moved less than the polling interval (at least 30 s). KEDA
    writes it on every active poll."""
    return same_but_a_recent_activity(status, written, max(30.0, interval))
