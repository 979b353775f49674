"""How many Jobs a ScaledJob's poll creates, computed as KEDA v2.20.2's code does
(keda-scaledjob reference §1.2; kedacore/keda ``pkg/scaling/scaledjob/metrics.go`` and
``pkg/scaling/executor/scale_jobs.go``). Where KEDA's docs and code disagree, this follows
the code: ``accurate`` subtracts pending Jobs in its cap test (v2.19+), ``eager`` subtracts
them twice.

Pure: the metrics are measured and the Jobs and Pods listed by the caller; :func:`plan` says
what to do and, in :attr:`JobPlan.formula`, why, with every number that entered.

Where Go's float → int64 conversion would turn a value into garbage (NaN, ±inf, a negative
queue that makes KEDA allocate a negative number of Jobs and panic), the value is taken as
the nearest sensible one instead, and the formula says so; see :func:`plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from metrics_adapter.kube.batch import Job, Pod
from metrics_adapter.model.scaled_job import ScaledJob, ScalingStrategy

RUNNING_PHASES = frozenset({"Running", "Succeeded"})
"""A Job with a Pod in one of these phases is not pending (no ``pendingPodConditions``)."""


@dataclass(frozen=True, slots=True)
class TriggerMetric:
    """One trigger's measurement this poll (reference §1.2 step A)."""

    name: str
    queue: float
    """Q_i: the trigger's metric value (the sum of its values under its metric name)."""
    target: float
    """T_i: the mean of the trigger's ``AverageValue`` targets (0 when it has none)."""
    active: bool


@dataclass(frozen=True, slots=True)
class JobCounts:
    """The ScaledJob's Jobs this poll (step C)."""

    running: int = 0
    """R: Jobs not finished; pending ones are included."""
    pending: int = 0
    """P: the running Jobs none of whose Pods has started (see :func:`count_jobs`)."""


def count_jobs(
    jobs: Sequence[Job], pods: Sequence[Pod], pending_pod_conditions: Sequence[str]
) -> JobCounts:
    """R and P from the ScaledJob's Jobs and the Pods of its namespace.

    A Job's Pods are those labelled with its name. Without ``pendingPodConditions`` a running
    Job is pending while none of its Pods is Running or Succeeded (so also while it has no Pod).
    With them it is pending until one single Pod has every listed condition type ``True``
    (v2.18+; before, fulfilled conditions were summed over all the Pods). As in KEDA, the
    distinct fulfilled types are compared with the length of the list, so a type listed twice
    is never met and the Job stays pending.
    """
    pods_of: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod.job_name is not None:
            pods_of.setdefault(pod.job_name, []).append(pod)
    required = frozenset(pending_pod_conditions)

    def started(pod: Pod) -> bool:
        if pending_pod_conditions:
            return len(required & pod.true_conditions) == len(pending_pod_conditions)
        return pod.phase in RUNNING_PHASES

    running = [job for job in jobs if job.finished is None]
    pending = sum(1 for job in running if not any(map(started, pods_of.get(job.name, ()))))
    return JobCounts(running=len(running), pending=pending)


@dataclass(frozen=True, slots=True)
class _Scaler:
    """KEDA's ``ScalerMetrics``: one trigger's Q_i and maxValue_i = min(Q_i / T_i, M')."""

    metric: TriggerMetric
    queue: float
    max_value: float
    capped: bool
    """Q_i / T_i was above M'."""


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What one poll decides, and the numbers it decided with."""

    strategy: str
    calculation: str
    """``multipleScalersCalculation``: how the triggers were combined."""
    queue_length: float
    """Q: the combined queue of the triggers that entered (:attr:`used`)."""
    max_value: float
    """min(combined maxValue, M'): how many Jobs the queue asks for, before the strategy."""
    max_scale: int
    """ceil(:attr:`max_value`)."""
    scale_to: int
    """The cap the strategy left on the Jobs to create: ceil(Q), M' for ``eager``, or
    min - R when below the minimum."""
    max_jobs: int
    """M': KEDA's ``MaxReplicaCount()``."""
    min_jobs: int
    """m: KEDA's ``MinReplicaCount()``."""
    running: int
    pending: int
    active: bool
    """A trigger entered the computation, or m > 0."""
    effective_max: int
    """The strategy's upper bound, floored at 0."""
    jobs_to_create: int
    used: tuple[str, ...]
    """The triggers whose queue entered Q: one for max and min, every active one for avg
    and sum, none when inactive."""
    targets: tuple[float, ...]
    """Their targets, in the same order."""
    formula: str
    """One line with every number that entered, e.g. ``max picks queue: queue 45 / target 10
    -> maxScale 5; default: min(scaleTo 45, maxScale 5 - running 0) = 5``."""

    def summary(self, subject: str) -> str:
        """The dry-run line: ``would create 4 Jobs for media/thumbnailer: queue 45, target 10,
        running 0, pending 0, strategy default``. The target is that of the trigger whose
        queue was used (max, min), or the targets of all the active triggers (avg, sum)."""
        plural = "" if self.jobs_to_create == 1 else "s"
        if not self.targets:
            target = "no active trigger"
        elif len(self.targets) == 1:
            target = f"target {_num(self.targets[0])}"
        else:
            target = "targets " + ", ".join(_num(t) for t in self.targets)
        return (
            f"would create {self.jobs_to_create} Job{plural} for {subject}: "
            f"queue {_num(self.queue_length)}, {target}, running {self.running}, "
            f"pending {self.pending}, strategy {self.strategy}"
        )


def plan(sj: ScaledJob, metrics: Sequence[TriggerMetric], counts: JobCounts) -> JobPlan:
    """Steps A-D of reference §1.2 for one poll of ``sj``.

    Values KEDA would turn into garbage are taken as the nearest sensible value (noted in the
    formula): a NaN or negative queue as 0 (under ``max``, KEDA's default, such a trigger is
    never picked either); an infinite queue, or a sum of queues that overflows, as M' (Go's
    float → int64 of +Inf is undefined, on amd64 the most negative int64, and KEDA then
    panics allocating a negative number of Jobs); a NaN or negative queue/target ratio (a NaN
    or negative target) as 0. Finite queues stay as they are: Python's integers do not
    overflow, and the Jobs created never exceed the strategy's bound.
    """
    max_jobs, min_jobs = sj.max_jobs, sj.min_jobs
    notes: list[str] = []
    scalers = [_scaler(m, max_jobs, notes) for m in metrics]
    calculation = sj.scaling_strategy.multiple_scalers_calculation
    queue, max_value, used = _combine(calculation, scalers)
    if math.isinf(queue):  # a sum of huge queues
        notes.append(f"queue {_num(queue)} taken as max {max_jobs}")
        queue = float(max_jobs)
    active = bool(used) or min_jobs > 0
    capped = max_value > max_jobs or any(s.capped for s in used)
    max_value = min(max_value, float(max_jobs))
    scale_to, max_scale = math.ceil(queue), math.ceil(max_value)

    strategy = sj.scaling_strategy.strategy
    running, pending = counts.running, counts.pending
    if running < min_jobs:
        scale_to = effective = min_jobs - running
        strategy_text = f"below min: min {min_jobs} - running {running} = {effective}"
    else:
        # KEDA hands the strategies R' = R - m as the running count.
        r = f"running {running}" if min_jobs == 0 else f"(running {running} - min {min_jobs})"
        effective, scale_to, expr = _bound(
            sj.scaling_strategy, max_scale, running - min_jobs, pending, max_jobs, scale_to, r
        )
        if effective < 0:
            expr = f"max(0, {expr} = {effective})"
        cap = f"max {scale_to}" if strategy == "eager" else f"{scale_to}"
        strategy_text = (
            f"{strategy}: min(scaleTo {cap}, {expr}) = {min(scale_to, max(effective, 0))}"
        )
    effective = max(effective, 0)
    create = min(scale_to, effective) if active and effective > 0 else 0

    source = _source(calculation, used, queue, max_value, max_scale, max_jobs if capped else None)
    if not active:
        strategy_text = f"{strategy}: inactive, so 0"
    formula = "; ".join([source, strategy_text, *notes])
    return JobPlan(
        strategy=strategy,
        calculation=calculation,
        queue_length=queue,
        max_value=max_value,
        max_scale=max_scale,
        scale_to=scale_to,
        max_jobs=max_jobs,
        min_jobs=min_jobs,
        running=running,
        pending=pending,
        active=active,
        effective_max=effective,
        jobs_to_create=create,
        used=tuple(s.metric.name for s in used),
        targets=tuple(s.metric.target for s in used),
        formula=formula,
    )


def _scaler(metric: TriggerMetric, max_jobs: int, notes: list[str]) -> _Scaler:
    """Step A for one trigger: its queue, and maxValue_i = min(Q_i / T_i, M') (0 when
    T_i = 0)."""
    q, t = metric.queue, metric.target
    if math.isnan(q) or q < 0:
        notes.append(f"trigger {metric.name}: queue {_num(q)} taken as 0")
        q = 0.0
    ratio = 0.0 if t == 0 or math.isnan(t) else q / t
    if math.isnan(ratio) or ratio < 0:  # inf / inf, or a negative target
        notes.append(f"trigger {metric.name}: queue {_num(q)} / target {_num(t)} taken as 0")
        ratio = 0.0
    if math.isinf(q):
        notes.append(f"trigger {metric.name}: queue {_num(q)} taken as max {max_jobs}")
        q = float(max_jobs)
    return _Scaler(metric, q, min(ratio, float(max_jobs)), ratio > max_jobs)


def _combine(calculation: str, scalers: list[_Scaler]) -> tuple[float, float, list[_Scaler]]:
    """Step B: Q, maxValue and the triggers used, over ACTIVE triggers only. Quirks kept:
    ``max`` picks a queue strictly above the last (from 0), so an active trigger with Q = 0
    is never picked; ``min`` picks whenever its running minimum is still 0, so a queue of 0
    does not stop a later, longer queue from replacing it."""
    queue = max_value = 0.0
    used: list[_Scaler] = []
    if calculation in ("avg", "sum"):
        used = [s for s in scalers if s.metric.active]
        queue = sum(s.queue for s in used)
        max_value = sum(s.max_value for s in used)
        if calculation == "avg" and used:
            queue, max_value = queue / len(used), max_value / len(used)
        return queue, max_value, used
    for s in scalers:
        if not s.metric.active:
            continue
        better = (queue == 0 or s.queue < queue) if calculation == "min" else s.queue > queue
        if better:
            queue, max_value, used = s.queue, s.max_value, [s]
    return queue, max_value, used


def effective_max_scale(
    strategy: ScalingStrategy,
    max_scale: int,
    running: int,
    pending: int,
    max_jobs: int,
    scale_to: int,
) -> tuple[int, int]:
    """KEDA's ``GetEffectiveMaxScale``: the strategy's bound on the Jobs to create (not yet
    floored at 0) and the scaleTo it leaves. ``running`` is R' = R - m, as KEDA passes it."""
    effective, scale_to, _ = _bound(
        strategy, max_scale, running, pending, max_jobs, scale_to, f"running {running}"
    )
    return effective, scale_to


def _bound(
    s: ScalingStrategy,
    max_scale: int,
    running: int,
    pending: int,
    max_jobs: int,
    scale_to: int,
    r: str,
) -> tuple[int, int, str]:
    """:func:`effective_max_scale`, with the expression that says how; ``r`` is how R'
    reads in it."""
    if s.strategy == "custom":
        share = _go_int(running * s.running_job_percentage)
        effective = min(max_scale - s.queue_length_deduction - share, max_jobs)
        expr = (
            f"min(maxScale {max_scale} - deduction {s.queue_length_deduction} - "
            f"trunc({r} * {_num(s.running_job_percentage)}), max {max_jobs})"
        )
    elif s.strategy == "accurate":
        test = f"maxScale {max_scale} + {r} - pending {pending}"
        if max_scale + running - pending > max_jobs:
            effective = max_jobs - running
            expr = f"max {max_jobs} - {r} [as {test} > max {max_jobs}]"
        else:
            effective = max_scale - pending
            expr = f"maxScale {max_scale} - pending {pending} [as {test} <= max {max_jobs}]"
    elif s.strategy == "eager":
        effective = min(max_jobs - running - pending, max_scale)
        expr = f"min(max {max_jobs} - {r} - pending {pending}, maxScale {max_scale})"
        scale_to = max_jobs
    else:
        effective = max_scale - running
        expr = f"maxScale {max_scale} - {r}"
    return effective, scale_to, expr


def _source(
    calculation: str,
    used: list[_Scaler],
    queue: float,
    max_value: float,
    max_scale: int,
    cap: int | None,
) -> str:
    """How Q and maxScale came about (steps A and B); ``cap`` is M' when it bound."""
    if not used:
        return f"{calculation}: no active trigger with a queue"
    capped = "" if cap is None else f" capped at max {cap}"
    if len(used) == 1 and calculation in ("max", "min"):
        s = used[0]
        return (
            f"{calculation} picks {s.metric.name}: queue {_num(queue)} / target "
            f"{_num(s.metric.target)}{capped} -> maxScale {max_scale}"
        )
    parts = " + ".join(f"{s.metric.name} {_num(s.queue)}/{_num(s.metric.target)}" for s in used)
    return (
        f"{calculation} of {parts}: queue {_num(queue)}, maxValue {_num(max_value)}{capped} "
        f"-> maxScale {max_scale}"
    )


def _go_int(value: float) -> int:
    """Go's ``int64(x)`` for a finite x (truncation toward 0); a value beyond int64 saturates,
    as on arm64, rather than wrapping to the most negative int64 as on amd64."""
    if math.isnan(value):
        return 0
    if math.isinf(value) or abs(value) >= 2**63:
        return 2**63 - 1 if value > 0 else -(2**63)
    return math.trunc(value)


def _num(value: float) -> str:
    """A number as a person writes it: ``45``, ``0.5``, ``inf``."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"
