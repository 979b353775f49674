"""KEDA's ScaledJob (``keda.sh/v1alpha1``) as a frozen typed object, parsed at the edge.

Fields, defaults and effective bounds follow KEDA's code (reference
keda-scaledjob-webhook-modifiers.md §1.1): where the docs disagree, the code wins. As with
ScaledObjects, metadata and status are read apart from the spec, so an object whose spec is
malformed can still be reported (``Ready=False`` naming every bad field) and finalized.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.objects import (
    Condition,
    JsonObject,
    ObjectMeta,
    ObjectRef,
    ObjectReference,
)
from metrics_adapter.kube.wire import rfc3339
from metrics_adapter.model.annotations import PAUSED, flag
from metrics_adapter.model.keda import (
    API_VERSION,
    ScaledObject,
    Trigger,
    check_trigger_names,
    parse_meta,
    parse_trigger,
    spec_fields,
    subject_of,
)
from scalers.errors import ConfigError, Problems

KIND = "ScaledJob"
STRATEGIES = ("default", "custom", "accurate", "eager")
CALCULATIONS = ("max", "min", "avg", "sum")
ROLLOUTS = ("gradual", "immediate")
PROPAGATIONS = ("foreground", "background")
EXCLUDED_LABELS = "scaledjob.keda.sh/job-excluded-labels"
"""A comma list of the ScaledJob's labels not copied to its Jobs (KEDA v2.18+)."""
SPEC_FIELDS = frozenset(
    {
        "jobTargetRef",
        "pollingInterval",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "rolloutStrategy",
        "rollout",
        "envSourceContainerName",
        "minReplicaCount",
        "maxReplicaCount",
        "scalingStrategy",
        "triggers",
    }
)
SCALING_STRATEGY_FIELDS = frozenset(
    {
        "strategy",
        "customScalingQueueLengthDeduction",
        "customScalingRunningJobPercentage",
        "pendingPodConditions",
        "multipleScalersCalculation",
    }
)
DEFAULT_MAX = 100
DEFAULT_HISTORY = 100


@dataclass(frozen=True, slots=True, order=True)
class ScaledJobRef(ObjectRef):
    """A ScaledJob, as the poller and the store key its triggers: never equal to the
    :class:`ObjectRef` of a ScaledObject with the same namespace and name."""

    def __str__(self) -> str:
        return f"{KIND} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ScalingStrategy:
    """``scalingStrategy``, with KEDA's fallbacks applied: an unknown strategy, or ``custom``
    without a parseable percentage, is ``default``."""

    strategy: str = "default"
    queue_length_deduction: int = 0
    running_job_percentage: float = 0.0
    pending_pod_conditions: tuple[str, ...] = ()
    multiple_scalers_calculation: str = "max"


@dataclass(frozen=True, slots=True)
class ScaledJobStatus:
    """``status``: what is read back (conditions, ``lastActiveTime``) and what is written
    as a merge patch (``None`` fields are left as they are)."""

    conditions: tuple[Condition, ...] = ()
    last_active_time: datetime | None = None
    external_metric_names: tuple[str, ...] | None = None
    triggers_types: str | None = None
    authentications_types: str | None = None
    triggers_activity: Mapping[str, bool] | None = None
    paused: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"conditions": [c.to_json() for c in self.conditions]}
        if self.last_active_time is not None:
            out["lastActiveTime"] = rfc3339(self.last_active_time)
        if self.external_metric_names is not None:
            out["externalMetricNames"] = list(self.external_metric_names)
        if self.triggers_types is not None:
            out["triggersTypes"] = self.triggers_types
        if self.authentications_types is not None:
            out["authenticationsTypes"] = self.authentications_types
        if self.triggers_activity is not None:
            out["triggersActivity"] = {
                name: {"isActive": active} for name, active in self.triggers_activity.items()
            }
        if self.paused is not None:
            out["Paused"] = self.paused
        return out


@dataclass(frozen=True, slots=True)
class ScaledJob:
    meta: ObjectMeta
    job_spec: Mapping[str, Any]
    """``jobTargetRef``: a batch/v1 JobSpec, copied into every Job (the API server checks it)."""
    triggers: tuple[Trigger, ...]
    polling_interval: int = 30
    successful_jobs_history_limit: int = DEFAULT_HISTORY
    failed_jobs_history_limit: int = DEFAULT_HISTORY
    rollout_strategy: str = "immediate"
    """``gradual`` leaves Jobs of an older generation running; anything else deletes them."""
    rollout_propagation: str = "background"
    env_source_container_name: str | None = None
    min_replica_count: int = 0
    max_replica_count: int | None = None
    """As written; :attr:`max_jobs` and :attr:`min_jobs` are what KEDA computes with."""
    scaling_strategy: ScalingStrategy = field(default_factory=ScalingStrategy)
    status: ScaledJobStatus = field(default_factory=ScaledJobStatus)
    warnings: tuple[str, ...] = ()

    @property
    def ref(self) -> ScaledJobRef:
        return ScaledJobRef(self.meta.namespace, self.meta.name)

    @property
    def subject(self) -> str:
        return f"{KIND} {self.meta.namespace}/{self.meta.name}"

    @property
    def min_jobs(self) -> int:
        """KEDA's ``MinReplicaCount()``: clamped to the max when it exceeds it."""
        if self.max_replica_count is not None and self.min_replica_count > self.max_replica_count:
            return self.max_replica_count
        return self.min_replica_count

    @property
    def max_jobs(self) -> int:
        """KEDA's ``MaxReplicaCount()`` (M'): max - min when both are set and min <= max; the
        max when min exceeds it; 100 when max is unset (not 100 - min)."""
        if self.max_replica_count is None:
            return DEFAULT_MAX
        if self.min_replica_count > self.max_replica_count:
            return self.max_replica_count
        return self.max_replica_count - self.min_replica_count

    @property
    def paused(self) -> bool:
        return flag(self.meta.annotations, PAUSED)

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        """The Job template's containers: where ``...FromEnv`` parameters are resolved."""
        template = self.job_spec.get("template")
        spec = template.get("spec") if isinstance(template, Mapping) else None
        found = spec.get("containers") if isinstance(spec, Mapping) else None
        return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


Scalable = ScaledObject | ScaledJob
"""What has triggers: a ScaledObject scales a workload, a ScaledJob creates Jobs."""


def env_container(obj: Scalable) -> str | None:
    """The container whose env ``...FromEnv`` parameters read (``None``: the first one)."""
    if isinstance(obj, ScaledJob):
        return obj.env_source_container_name
    return obj.scale_target_ref.env_source_container_name


@dataclass(frozen=True, slots=True)
class ScaledJobDocument:
    """A ScaledJob as the API server delivers it: ``scaled_job`` is ``None`` exactly when
    ``error`` names every problem of its spec."""

    meta: ObjectMeta
    status: ScaledJobStatus
    scaled_job: ScaledJob | None
    error: ConfigError | None = None

    @property
    def ref(self) -> ScaledJobRef:
        return ScaledJobRef(self.meta.namespace, self.meta.name)

    @property
    def reference(self) -> ObjectReference:
        return ObjectReference.to(API_VERSION, KIND, self.meta)

    def parsed(self) -> ScaledJob:
        if self.scaled_job is None:
            assert self.error is not None
            raise self.error
        return self.scaled_job


def parse_scaled_job(raw: Mapping[str, object]) -> ScaledJob:
    """Parse a ScaledJob; raise ConfigError listing every problem with its field path."""
    return read_scaled_job(raw).parsed()


def read_scaled_job(raw: Mapping[str, object]) -> ScaledJobDocument:
    """Read a ScaledJob: metadata and status always, the spec when it is well formed."""
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems)
    status = _parse_status(raw, warnings)
    sj = _parse_spec(raw, meta, status, problems, warnings)
    if problems:
        error = ConfigError(subject_of(KIND, raw), problems)
        return ScaledJobDocument(meta, status, None, error)
    return ScaledJobDocument(meta, status, sj)


def _parse_status(raw: Mapping[str, object], warnings: list[str]) -> ScaledJobStatus:
    """Controllers write the status: what cannot be read is a warning and counts as absent."""
    problems = Problems()
    f = Fields(raw.get("status"), "status", problems, warnings)
    status = ScaledJobStatus(
        conditions=tuple(Condition.parse(c) for c in f.items("conditions")),
        last_active_time=f.time("lastActiveTime"),
    )
    warnings.extend(f"{p}; ignored" for p in problems)
    return status


def _parse_spec(
    raw: Mapping[str, object],
    meta: ObjectMeta,
    status: ScaledJobStatus,
    problems: Problems,
    warnings: list[str],
) -> ScaledJob:
    spec = spec_fields(raw, problems, warnings)
    spec.warn_unknown(SPEC_FIELDS)
    job_spec = spec.raw.get("jobTargetRef")
    if not isinstance(job_spec, Mapping):
        problems.add("jobTargetRef", "is required and must be a batch/v1 JobSpec")
        job_spec = {}
    elif not isinstance(job_spec.get("template"), Mapping):
        problems.add("jobTargetRef.template", "is required and must be a pod template")
    else:
        _warn_misplaced(job_spec["template"], warnings)

    triggers = tuple(parse_trigger(i, t) for i, t in enumerate(spec.items("triggers")))
    if not triggers:
        problems.add("triggers", "at least one trigger is required")
    check_trigger_names(triggers, problems)
    for t in triggers:
        if "metricType" in _trigger_raw(spec, t.index):
            problems.add(
                f"triggers[{t.index}].metricType", "cannot be set in a ScaledJob's triggers"
            )
        if t.use_cached_metrics:
            warnings.append(f"triggers[{t.index}].useCachedMetrics: ignored for ScaledJobs")

    rollout = spec.child("rollout")
    legacy = spec.string("rolloutStrategy")
    if legacy is not None and legacy not in ROLLOUTS:
        problems.add("rolloutStrategy", f'"{legacy}" is not one of: {", ".join(ROLLOUTS)}')
    elif legacy is not None:
        warnings.append("rolloutStrategy: deprecated, use rollout.strategy (it wins over it)")
    strategy = legacy or rollout.enum("strategy", ROLLOUTS, "immediate")

    return ScaledJob(
        meta=meta,
        job_spec=job_spec,
        triggers=triggers,
        polling_interval=spec.integer("pollingInterval", 30, minimum=1) or 30,
        successful_jobs_history_limit=_int(spec, "successfulJobsHistoryLimit", DEFAULT_HISTORY),
        failed_jobs_history_limit=_int(spec, "failedJobsHistoryLimit", DEFAULT_HISTORY),
        rollout_strategy=strategy,
        rollout_propagation=rollout.enum("propagationPolicy", PROPAGATIONS, "background"),
        env_source_container_name=spec.string("envSourceContainerName"),
        min_replica_count=_int(spec, "minReplicaCount", 0),
        max_replica_count=spec.integer("maxReplicaCount", None, minimum=1),
        scaling_strategy=_parse_scaling_strategy(spec.child("scalingStrategy")),
        status=status,
        warnings=tuple(warnings),
    )


POD_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
JOB_SPEC_FIELDS = frozenset(
    {
        "activeDeadlineSeconds",
        "backoffLimit",
        "backoffLimitPerIndex",
        "completionMode",
        "completions",
        "managedBy",
        "manualSelector",
        "maxFailedIndexes",
        "parallelism",
        "podFailurePolicy",
        "podReplacementPolicy",
        "selector",
        "successPolicy",
        "suspend",
        "ttlSecondsAfterFinished",
    }
)


def _warn_misplaced(template: Mapping[str, object], warnings: list[str]) -> None:
    """A pod template holds ``metadata`` and ``spec`` only: the API server prunes anything
    else (or refuses it under strict validation), so the Jobs would run without it. A
    JobSpec field indented one level too deep is the usual cause."""
    for key in template:
        if key in POD_TEMPLATE_FIELDS:
            continue
        hint = "; it belongs in jobTargetRef, beside template" if key in JOB_SPEC_FIELDS else ""
        warnings.append(
            f"jobTargetRef.template.{key}: not a field of a pod template, "
            f"dropped by the API server{hint}"
        )


def _trigger_raw(spec: Fields, index: int) -> Mapping[str, object]:
    items = spec.raw.get("triggers")
    item = items[index] if isinstance(items, list) else None
    return item if isinstance(item, Mapping) else {}


def _int(spec: Fields, key: str, default: int) -> int:
    value = spec.integer(key, default, minimum=0)
    return default if value is None else value


def _parse_scaling_strategy(f: Fields) -> ScalingStrategy:
    f.warn_unknown(SCALING_STRATEGY_FIELDS)
    # KEDA: an unknown strategy is the default one, not an error.
    strategy = f.string("strategy", "default") or "default"
    if strategy not in STRATEGIES:
        f.warnings.append(f"{f.at('strategy')}: {strategy!r} is not a strategy; default used")
        strategy = "default"
    percentage = 0.0
    if strategy == "custom":
        text = f.string("customScalingRunningJobPercentage")
        try:
            percentage = float(text) if text is not None else math.nan
        except ValueError:
            percentage = math.nan
        if not math.isfinite(percentage):
            f.warnings.append(
                f"{f.at('customScalingRunningJobPercentage')}: {text!r} is not a number; "
                "strategy default used, as KEDA does"
            )
            strategy, percentage = "default", 0.0
    return ScalingStrategy(
        strategy=strategy,
        queue_length_deduction=f.integer("customScalingQueueLengthDeduction", 0) or 0,
        running_job_percentage=percentage,
        pending_pod_conditions=f.strings("pendingPodConditions"),
        multiple_scalers_calculation=f.enum("multipleScalersCalculation", CALCULATIONS, "max"),
    )
