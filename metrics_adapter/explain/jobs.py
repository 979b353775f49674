"""The ``explain`` report of a ScaledJob: its triggers, the combined queue, the running and
pending Jobs, and the Jobs KEDA's poll would create, with the formula in numbers.

The numbers are those of the cluster controller: the same TriggerMetrics
(:func:`~metrics_adapter.control.scaled_jobs.metrics`: a failing trigger is left out, as
KEDA leaves it out) and the same :func:`~metrics_adapter.control.job_scaling.plan`. Where
the Jobs come from is the caller's: a directory has none (:data:`NO_CLUSTER`), a cluster
has them listed (:class:`JobsSeen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from metrics_adapter.binding.warnings import object_warnings
from metrics_adapter.control.activator import trigger_states
from metrics_adapter.control.job_scaling import JobCounts, plan
from metrics_adapter.control.scaled_jobs import metrics
from metrics_adapter.explain.cells import (
    activation,
    readable,
    table,
    value_cell,
    warning_lines,
)
from metrics_adapter.model.annotations import PAUSED
from metrics_adapter.model.scaled_job import KIND, ScaledJobRef
from metrics_adapter.server import Adapter

NO_CLUSTER = "no cluster: no Jobs counted"


@dataclass(frozen=True, slots=True)
class JobsSeen:
    """A ScaledJob's Jobs as a cluster has them; a directory has none."""

    counts: JobCounts = field(default_factory=JobCounts)
    source: str = NO_CLUSTER
    """Where the counts come from, or why there are none."""


@dataclass(frozen=True, slots=True)
class JobTriggerReport:
    index: int
    type: str
    metric: str
    value: float | None
    error: str | None
    target: float
    activation: str
    active: bool | None


@dataclass(frozen=True, slots=True)
class JobReport:
    """One ScaledJob: the numbers of KEDA's poll (keda-scaledjob reference §1.2)."""

    kind: str = field(default=KIND, init=False)
    """What tells a ScaledJob's report from a ScaledObject's in ``-o json``."""
    scaled_job: str
    problem: str | None
    triggers: tuple[JobTriggerReport, ...] = ()
    min_jobs: int = 0
    max_jobs: int = 0
    """M', KEDA's ``MaxReplicaCount()``: what the formula caps at."""
    strategy: str = ""
    calculation: str = ""
    """``multipleScalersCalculation``."""
    queue_length: float = 0
    running: int = 0
    pending: int = 0
    jobs_from: str = ""
    """Where ``running`` and ``pending`` were counted (:data:`NO_CLUSTER` for a directory)."""
    paused: bool = False
    active: bool = False
    formula: str = ""
    jobs_to_create: int = 0
    decision: str = ""
    """The line standalone mode logs: ``would create 4 Jobs for ns/name: queue 45, ...``."""
    warnings: tuple[str, ...] = ()
    """What it sets and nothing reads (the IgnoredFields Event's list)."""


def job_reports(
    adapter: Adapter, seen: Mapping[ScaledJobRef, JobsSeen] | None = None
) -> list[JobReport]:
    """One report per ScaledJob, from the readings in the store and the Jobs ``seen``."""
    found = seen or {}
    return [
        _report(adapter, ref, found.get(ref, JobsSeen()))
        for ref in adapter.store.objects()
        if isinstance(ref, ScaledJobRef)
    ]


def _report(adapter: Adapter, ref: ScaledJobRef, seen: JobsSeen) -> JobReport:
    assert adapter.inventory is not None, "explain is built from an Inventory"
    sj = adapter.inventory.scaled_jobs.get(ref)
    problem = adapter.store.broken_reason(ref)
    name = f"{ref.namespace}/{ref.name}"
    warnings = () if sj is None else object_warnings(sj, adapter.inventory)
    if sj is None or problem is not None:
        return JobReport(name, problem or "not loaded", warnings=warnings)
    states = trigger_states(adapter.store, ref, adapter.poller.triggers(ref))
    rows = tuple(
        JobTriggerReport(
            index=s.bound.trigger.index,
            type=s.bound.trigger.type,
            metric=s.bound.metric_name,
            value=s.reading.value,
            error=s.reading.error,
            target=s.bound.scaler.target,
            activation=activation(s),
            active=s.reading.active if readable(s.reading) else None,
        )
        for s in states
    )
    decided = plan(sj, metrics(states), seen.counts)
    summary = decided.summary(name)
    return JobReport(
        name,
        None,
        rows,
        min_jobs=decided.min_jobs,
        max_jobs=decided.max_jobs,
        strategy=decided.strategy,
        calculation=decided.calculation,
        queue_length=decided.queue_length,
        running=decided.running,
        pending=decided.pending,
        jobs_from=seen.source,
        paused=sj.paused,
        active=decided.active,
        formula=decided.formula,
        # KEDA stops a paused ScaledJob's loop: nothing is created, whatever the queue.
        jobs_to_create=0 if sj.paused else decided.jobs_to_create,
        decision=f"paused by {PAUSED}: creates no Jobs; unpaused, {summary}"
        if sj.paused
        else summary,
        warnings=warnings,
    )


def render_job(r: JobReport) -> list[str]:
    if r.problem is not None:
        return [f"{KIND} {r.scaled_job}: not ready: {r.problem}", *warning_lines(r.warnings), ""]
    out = [
        f"{KIND} {r.scaled_job} (min {r.min_jobs}, max {r.max_jobs}, "
        f"strategy {r.strategy}, multipleScalersCalculation {r.calculation})"
    ]
    header = ("TRIGGER", "METRIC", "VALUE", "TARGET", "ACTIVATION")
    rows = [
        (
            f"{t.index}:{t.type}",
            t.metric,
            value_cell(t.value, t.error),
            f"{t.target:g}",
            t.activation,
        )
        for t in r.triggers
    ]
    out += table([header, *rows])
    out += warning_lines(r.warnings)
    out += [
        f"  error: {t.metric}: {t.error} (left out, as KEDA does)" for t in r.triggers if t.error
    ]
    out += [
        f"  Jobs: running {r.running}, pending {r.pending} ({r.jobs_from})",
        f"  formula: {r.formula}",
        f"  {r.decision}",
        "",
    ]
    return out
