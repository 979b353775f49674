"""``metrics-adapter explain``: for each ScaledObject, every trigger's metric, value, target
and activity, the replicas the HPA would compute and why, and what the activator would do
(under scalingModifiers, the formula with each input and its result, which the HPA and the
activator read instead); then for each ScaledJob, its triggers, the combined queue, the
running and pending Jobs, and the Jobs KEDA's poll would create, with the formula in numbers.

Both forms bind triggers with :func:`metrics_adapter.server.build` and report from its
MetricStore; they differ in where the objects and the values come from (a
:data:`Readings`):

- ``explain PATH``: a standalone directory; every distinct query is asked once
  (:func:`poll`), from this machine. There are no Jobs: a ScaledJob counts none running.
- ``explain --namespace NS`` (:mod:`metrics_adapter.explain.cluster`): objects listed from
  the cluster, each value read as the HPA reads it, through the aggregated API, with the
  target's replicas from ``/scale`` and the status of the HPA (an :class:`Observed`);
  a ScaledJob's Jobs and Pods counted from their lists (a
  :class:`~metrics_adapter.explain.jobs.JobsSeen`).

In ``-o json`` each report is a dict (:func:`as_dicts`): the ScaledObjects' first, as they
always were, then the ScaledJobs', told apart by ``"kind": "ScaledJob"``, so a consumer of
the ScaledObject reports selects them by the key ``scaled_object``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from metrics_adapter.binding.composite import COMPOSITE_METRIC
from metrics_adapter.binding.files import load_directory
from metrics_adapter.binding.warnings import object_warnings
from metrics_adapter.config.settings import DEFAULT_CLUSTER_OBJECT_NAMESPACE, Settings
from metrics_adapter.control import hpa
from metrics_adapter.control.activator import (
    TriggerState,
    composite_why,
    decide,
    hpa_proposal,
    trigger_states,
)
from metrics_adapter.explain.cells import (
    activation,
    age_seconds,
    readable,
    table,
    value_cell,
    warning_lines,
)
from metrics_adapter.explain.jobs import JobReport, job_reports, render_job
from metrics_adapter.metrics.store import Composed
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.model.scaled_job import ScaledJobRef
from metrics_adapter.server import Adapter, build_settled
from scalers.clients import DEFAULT_TIMEOUT

PROBE_CALLS = 4
"""Calls a watcher makes before it watches (NATS: /varz, connect, /connz, /jsz), each within
the scaler timeout: how long explain waits for the wake-hint watchers."""

Readings = Callable[[Adapter], Awaitable[None]]
"""Fills the adapter's MetricStore with one reading per trigger."""


async def poll(adapter: Adapter) -> None:
    """Ask every distinct query once, from this machine."""
    await adapter.poller.poll_all()


@dataclass(frozen=True, slots=True)
class Observed:
    """What a cluster says about a ScaledObject beyond its spec; a directory says nothing."""

    replicas: int | None = None
    """The target's replicas now; ``None``: from its manifest, else ``minReplicaCount``."""
    replicas_from: str = ""
    last_active: datetime | None = None
    """The status's ``lastActiveTime``, which the cooldown counts from."""
    hpa_status: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerReport:
    index: int
    type: str
    metric: str
    value: float | None
    error: str | None
    target: float
    metric_type: str
    activation: str
    """``lag 50 > 0``: the number activation compared, and the threshold."""
    active: bool | None
    replicas: int | None
    formula: str
    hints: str = ""
    """Whether its source wakes it between polls (wake hints), or why not."""
    age_s: float | None = None
    """Seconds since its value was measured (the ``timestamp`` the HPA reads with it); kept
    while the trigger fails. About its polling interval while polls keep up."""


@dataclass(frozen=True, slots=True)
class FormulaInput:
    name: str
    metric: str
    value: float | None
    """What the formula was given; ``None``: nil (in fallback), or not given (``note``)."""
    note: str = ""
    """``in fallback: nil``, ``failing``, ``no value yet``; empty when given a value."""


@dataclass(frozen=True, slots=True)
class CompositeReport:
    """scalingModifiers: ``composite-metric``, the one metric the HPA reads."""

    formula: str
    inputs: tuple[FormulaInput, ...]
    result: float | None
    """What the formula gave, when it ran (``None``: nil)."""
    served: float | None
    """What the HPA is served: the result, or the fallback value."""
    target: float
    metric_type: str
    activation: str
    """``12 > 0``: the served value and ``activationTarget``; or why there is none."""
    active: bool | None
    replicas: int | None
    computation: str
    """``ceil(12 / 5) = 3``: what the HPA computes from the served value."""
    error: str | None = None
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectReport:
    scaled_object: str
    scale_target: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    problem: str | None
    triggers: tuple[TriggerReport, ...]
    decision: str
    hpa: str | None
    """What the HPA would compute from these values, and why."""
    replicas_from: str = ""
    """Where ``current_replicas`` was read in a cluster (``/scale``)."""
    hpa_status: str | None = None
    """The HPA's own status in a cluster: its replicas and conditions."""
    composite: CompositeReport | None = None
    warnings: tuple[str, ...] = ()
    """What it sets and nothing reads: unknown fields, metadata keys, authentication
    parameters (the IgnoredFields Event's list)."""


Report = ObjectReport | JobReport


async def explain(
    directory: Path,
    scaler_timeout: float = DEFAULT_TIMEOUT,
    cluster_object_namespace: str = DEFAULT_CLUSTER_OBJECT_NAMESPACE,
) -> list[Report]:
    settings = Settings(
        scaledobjects=directory,
        scaler_timeout=scaler_timeout,
        cluster_object_namespace=cluster_object_namespace,
    )
    assert settings.scaledobjects is not None
    inventory = load_directory(settings.scaledobjects, settings.cluster_object_namespace)
    adapter = await build_settled(settings, inventory, dry_run=False)
    await read(adapter, poll)
    if adapter.hints is not None:  # the watchers of the idle targets, tried from here
        await adapter.hints.probe(PROBE_CALLS * settings.scaler_timeout)
    return [*reports(adapter), *job_reports(adapter)]


async def read(adapter: Adapter, readings: Readings) -> None:
    """Fill the store once with ``readings``; then the scalers' clients and the outside
    sources' reads are closed."""
    try:
        await readings(adapter)
    finally:
        if adapter.sources is not None:
            await adapter.sources.aclose()
        await adapter.poller.clients.aclose()


def reports(
    adapter: Adapter, observed: Mapping[ObjectRef, Observed] | None = None
) -> list[ObjectReport]:
    """One report per ScaledObject, from the readings in the store."""
    seen = observed or {}
    return [
        _report(adapter, ref, seen.get(ref, Observed()))
        for ref in adapter.store.objects()
        if not isinstance(ref, ScaledJobRef)
    ]


def _report(adapter: Adapter, ref: ObjectRef, observed: Observed) -> ObjectReport:
    assert adapter.inventory is not None, "explain is built from an Inventory"
    so = adapter.inventory.scaled_objects.get(ref)
    problem = adapter.store.broken_reason(ref)
    warnings = () if so is None else object_warnings(so, adapter.inventory)
    if so is None or problem is not None:
        return ObjectReport(
            str(ref), "", 0, 0, 0, problem or "not loaded", (), "", None, warnings=warnings
        )
    current = adapter.inventory.replicas(so) if observed.replicas is None else observed.replicas
    states = trigger_states(adapter.store, ref, adapter.poller.triggers(ref))
    composed = adapter.store.composite(ref)
    now = datetime.now(UTC)
    rows = []
    for state in states:
        bound, reading, scaler = state.bound, state.reading, state.bound.scaler
        replicas, formula = None, ""
        if composed is None and reading.value is not None and reading.error is None:
            asked = hpa.metric_replicas(
                bound.trigger.target_type, reading.value, scaler.target, max(current, 1)
            )
            replicas, formula = asked.replicas, asked.why
        rows.append(
            TriggerReport(
                index=bound.trigger.index,
                type=bound.trigger.type,
                metric=bound.metric_name,
                value=reading.value,
                error=reading.error,
                target=scaler.target,
                metric_type=bound.trigger.target_type,
                # Under scalingModifiers KEDA discards each trigger's own activity.
                activation="-" if composed and readable(reading) else activation(state),
                active=reading.active if readable(reading) and not composed else None,
                replicas=replicas,
                formula=formula,
                hints=adapter.hints.explain(bound) if adapter.hints else "off (--no-wake-hints)",
                age_s=age_seconds(reading, now),
            )
        )
    decision = decide(so, current, states, observed.last_active, now, composed)
    if decision.replicas is not None and decision.replicas != current:
        what = f"would scale from {current} to {decision.replicas}: {decision.reason}"
    else:
        activity = {True: "active", False: "inactive", None: "unknown"}[decision.active]
        what = f"{activity}, stays at {current}: {decision.reason}"
    after = decision.replicas if decision.replicas is not None else current
    computed = hpa_proposal(so, after, states, composed)
    target = f"{so.scale_target_ref.kind}/{so.scale_target_ref.name}"
    return ObjectReport(
        str(ref),
        target,
        so.min_replica_count,
        so.max_replica_count,
        current,
        None,
        tuple(rows),
        what,
        None
        if computed is None
        else f"{so.hpa_name} would compute {computed.replicas}: {computed.why}",
        observed.replicas_from,
        observed.hpa_status,
        None if composed is None else _composite(composed, states, max(current, 1)),
        warnings,
    )


def _composite(composed: Composed, states: list[TriggerState], current: int) -> CompositeReport:
    c, outcome = composed.composite, composed.outcome
    given = dict(outcome.inputs)
    readings = {s.bound.metric_name: s.reading for s in states}
    inputs = []
    for name in c.formula.inputs:
        metric = c.variables.get(name, "")
        reading = readings.get(metric)
        if name in given:
            value, note = given[name], "" if given[name] is not None else "in fallback: nil"
        elif reading is None or reading.error is not None:
            value, note = None, "failing"
        else:
            value, note = reading.value, "" if reading.value is not None else "no value yet"
        inputs.append(FormulaInput(name, metric, value, note))
    replicas, computation = None, ""
    if outcome.served is not None:
        asked = hpa.metric_replicas(c.metric_type, outcome.served, c.target, current)
        replicas, computation = asked.replicas, asked.why
    return CompositeReport(
        formula=c.formula.text,
        inputs=tuple(inputs),
        result=outcome.result,
        served=outcome.served,
        target=c.target,
        metric_type=c.metric_type,
        activation=composite_why(composed).removeprefix(COMPOSITE_METRIC).strip(),
        active=None if outcome.served is None else outcome.active,
        replicas=replicas,
        computation=computation,
        error=outcome.error,
        fallback=outcome.fallback,
    )


def _render_composite(c: CompositeReport) -> list[str]:
    """``composite-metric = (a + b) / 2`` with each input under it, then its result."""
    out = [f"  {COMPOSITE_METRIC} = {c.formula}  (target {c.target:g}, {c.metric_type})"]
    for i in c.inputs:
        value = "-" if i.value is None else f"{i.value:g}"
        out.append(f"    {i.name} = {i.note or value}  ({i.metric})")
    if c.error is not None:
        out.append(f"    not served: {c.error}")
        return out
    if c.fallback is not None:
        out.append(f"    in fallback: {c.fallback}")
    if c.served is not None:
        result = "nil" if c.result is None else f"{c.result:g}"
        served = f"{result}, serving {c.served:g}" if c.result != c.served else result
        out.append(f"    = {served}: activation {c.activation}; HPA {c.computation}")
    else:
        out.append("    = no value yet: a trigger has not been read")
    return out


def as_dicts(reports: Sequence[Report]) -> list[dict[str, object]]:
    return [dataclasses.asdict(r) for r in reports]


def render(reports: Sequence[Report]) -> str:
    """A readable table per ScaledObject, then per ScaledJob."""
    out: list[str] = []
    for r in reports:
        if isinstance(r, JobReport):
            out += render_job(r)
            continue
        if r.problem is not None:
            out += [f"{r.scaled_object}: not ready: {r.problem}", *warning_lines(r.warnings), ""]
            continue
        source = f" from {r.replicas_from}" if r.replicas_from else ""
        out.append(
            f"{r.scaled_object} -> {r.scale_target} (min {r.min_replicas}, "
            f"max {r.max_replicas}, now {r.current_replicas}{source})"
        )
        header = ("TRIGGER", "METRIC", "VALUE", "AGE", "TARGET", "ACTIVATION", "HPA")
        lines = [header] + [
            (
                f"{t.index}:{t.type}",
                t.metric,
                value_cell(t.value, t.error),
                "-" if t.age_s is None else f"{t.age_s:.0f}s",
                f"{t.target:g} ({t.metric_type})",
                t.activation,
                t.formula or "-",
            )
            for t in r.triggers
        ]
        out += table(lines)
        out += warning_lines(r.warnings)
        out += [f"  error: {t.metric}: {t.error}" for t in r.triggers if t.error]
        out += [f"  hints: {t.index}:{t.type}: {t.hints}" for t in r.triggers if t.hints]
        if r.composite is not None:
            out += _render_composite(r.composite)
        out.append(f"  activator: {r.decision}")
        if r.hpa:
            out.append(f"  HPA: {r.hpa}")
        elif any(t.error for t in r.triggers):
            out.append(
                "  HPA: holds its replicas while a metric cannot be read "
                "(it may still scale up on the others)"
            )
        if r.hpa_status:
            out.append(f"  HPA status: {r.hpa_status}")
        out.append("")
    return "\n".join(out)
