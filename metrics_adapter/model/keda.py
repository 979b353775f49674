"""KEDA's custom resources (``keda.sh/v1alpha1``) as frozen typed objects, parsed at the edge.

Defaults and checks follow KEDA (reference/keda-semantics.md §1, §6). A parse reports every
problem of one object at once; unknown fields are kept as warnings, as ``kubectl`` does.
A ScaledObject's metadata and status are read apart from its spec
(:func:`read_scaled_object`), so that the controller can report, and finalize, an object
whose spec it cannot use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from metrics_adapter.kube.autoscaling import Behavior
from metrics_adapter.kube.fields import INT32_MAX, Fields
from metrics_adapter.kube.objects import Condition, JsonObject, ObjectMeta, ObjectReference, frozen
from metrics_adapter.kube.objects import ObjectRef as ObjectRef  # the model's name for it too
from metrics_adapter.kube.wire import rfc3339
from metrics_adapter.model.annotations import PAUSED_REPLICAS
from scalers.errors import ConfigError, Problems, quote
from scalers.registry import RESOURCE_TYPES

API_VERSION = "keda.sh/v1alpha1"
METRIC_TYPES = ("AverageValue", "Value", "Utilization")
FALLBACK_BEHAVIORS = (
    "static",
    "currentReplicas",
    "currentReplicasIfHigher",
    "currentReplicasIfLower",
    "scalingModifiers",
)
SPEC_FIELDS = frozenset(
    {
        "scaleTargetRef",
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "idleReplicaCount",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
)
TRIGGER_FIELDS = frozenset(
    {
        "type",
        "name",
        "metadata",
        "authenticationRef",
        "metricType",
        "useCachedMetrics",
    }
)

_GO_INT32 = re.compile(r"[+-]?\d+")
"""What Go's ``strconv.ParseInt(s, 10, 32)`` reads, as KEDA reads ``paused-replicas``."""


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    name: str
    api_version: str = "apps/v1"
    kind: str = "Deployment"
    env_source_container_name: str | None = None
    api_version_omitted: bool = field(default=False, compare=False)
    """No ``apiVersion`` was written (not part of what the target is): ``api_version`` is
    KEDA's default ``apps/v1`` until the controller asks discovery which group serves
    ``kind`` (an Argo Rollout's, say)."""


@dataclass(frozen=True, slots=True)
class AuthenticationRef:
    name: str
    kind: str = "TriggerAuthentication"


@dataclass(frozen=True, slots=True)
class Trigger:
    index: int
    type: str
    metadata: Mapping[str, str]
    name: str | None = None
    metric_type: str | None = None
    """As written; KEDA's cpu and memory scalers refuse it unset, every other type takes
    :attr:`target_type`."""
    use_cached_metrics: bool = False
    authentication_ref: AuthenticationRef | None = None

    @property
    def target_type(self) -> str:
        """The HPA target's type for a polled trigger: ``metricType``, else AverageValue."""
        return self.metric_type or "AverageValue"

    @property
    def is_resource(self) -> bool:
        """cpu and memory are read by the HPA itself, as Resource metrics."""
        return self.type in RESOURCE_TYPES


@dataclass(frozen=True, slots=True)
class FallbackSpec:
    """``spec.fallback`` as the user wrote it; the value the store serves from it is
    :class:`metrics_adapter.metrics.store.Fallback`."""

    failure_threshold: int
    replicas: int
    behavior: str = "static"


@dataclass(frozen=True, slots=True)
class ScalingModifiers:
    """``advanced.scalingModifiers`` as the user wrote it: one composite metric over the named
    triggers. Compiled, and checked, where the triggers are bound
    (:func:`metrics_adapter.binding.composite.compile_composite`): the formula needs their
    names, and its problems are reported with theirs."""

    formula: str | None = None
    target: str | None = None
    activation_target: str | None = None
    metric_type: str | None = None

    @property
    def in_use(self) -> bool:
        """KEDA's ``IsUsingModifiers``: anything but the zero value."""
        return any((self.formula, self.target, self.activation_target, self.metric_type))


@dataclass(frozen=True, slots=True)
class Advanced:
    restore_to_original_replica_count: bool = False
    hpa_name: str | None = None
    hpa_behavior: Behavior | None = None
    """Written into the HPA, under the pause annotations' overlay."""
    scaling_modifiers: ScalingModifiers | None = None


@dataclass(frozen=True, slots=True)
class TriggerHealth:
    """One trigger's entry of ``status.health``."""

    failures: int
    failing: bool

    def to_json(self) -> JsonObject:
        return {"numberOfFailures": self.failures, "status": "Failing" if self.failing else "Happy"}


@dataclass(frozen=True, slots=True)
class ScaledObjectStatus:
    """``status``, read back and written as a merge patch: a field left ``None`` is not
    written, so it stays as it is; ``conditions`` is always written, and replaces the list.

    Read back are what a restart or a new leader must not forget (``originalReplicaCount``,
    ``lastActiveTime``) and the conditions.
    """

    conditions: tuple[Condition, ...] = ()
    scale_target_kind: str | None = None
    hpa_name: str | None = None
    external_metric_names: tuple[str, ...] | None = None
    resource_metric_names: tuple[str, ...] | None = None
    triggers_activity: Mapping[str, bool] | None = None
    composite_scaler_name: str | None = None
    """``composite-metric`` while scalingModifiers are used."""
    health: Mapping[str, TriggerHealth] | None = None
    original_replica_count: int | None = None
    last_active_time: datetime | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"conditions": [c.to_json() for c in self.conditions]}
        if self.scale_target_kind is not None:
            out["scaleTargetKind"] = self.scale_target_kind
        if self.hpa_name is not None:
            out["hpaName"] = self.hpa_name
        if self.external_metric_names is not None:
            out["externalMetricNames"] = list(self.external_metric_names)
        if self.resource_metric_names is not None:
            out["resourceMetricNames"] = list(self.resource_metric_names)
        if self.triggers_activity is not None:
            out["triggersActivity"] = {
                name: {"isActive": active} for name, active in self.triggers_activity.items()
            }
        if self.composite_scaler_name is not None:
            out["compositeScalerName"] = self.composite_scaler_name
        if self.health is not None:
            out["health"] = {name: h.to_json() for name, h in self.health.items()}
        if self.original_replica_count is not None:
            out["originalReplicaCount"] = self.original_replica_count
        if self.last_active_time is not None:
            out["lastActiveTime"] = rfc3339(self.last_active_time)
        return out


@dataclass(frozen=True, slots=True)
class ScaledObject:
    meta: ObjectMeta
    scale_target_ref: ScaleTargetRef
    triggers: tuple[Trigger, ...]
    polling_interval: int = 30
    cooldown_period: int = 300
    initial_cooldown_period: int = 0
    idle_replica_count: int | None = None
    min_replica_count: int = 0
    max_replica_count: int = 100
    fallback: FallbackSpec | None = None
    advanced: Advanced = field(default_factory=Advanced)
    paused_replicas: int | None = None
    """``autoscaling.keda.sh/paused-replicas``: hold the target at this count."""
    status: ScaledObjectStatus = field(default_factory=ScaledObjectStatus)
    warnings: tuple[str, ...] = ()

    @property
    def ref(self) -> ObjectRef:
        return self.meta.ref

    @property
    def subject(self) -> str:
        return f"ScaledObject {self.ref}"

    @property
    def hpa_name(self) -> str:
        return self.advanced.hpa_name or f"keda-hpa-{self.ref.name}"


@dataclass(frozen=True, slots=True)
class ScaledObjectDocument:
    """A ScaledObject as the API server delivers it. Its metadata and status are read apart
    from its spec, so that an object whose spec is malformed can still be reported
    (``Ready=False``, an Event) and finalized: ``scaled_object`` is ``None`` exactly when
    ``error`` names every problem, or when the document is not :attr:`whole`."""

    meta: ObjectMeta
    status: ScaledObjectStatus
    scaled_object: ScaledObject | None
    error: ConfigError | None = None
    draft: ScaledObject | None = None
    """With ``error``: the spec as far as it could be read, defaults standing in for the bad
    fields. Never to scale with; for the admission webhook, which reports KEDA's rules beside
    the parser's problems in one answer."""
    whole: bool = True
    """False: its metadata alone (:meth:`metadata_only`), spec and status left out."""

    @property
    def ref(self) -> ObjectRef:
        return self.meta.ref

    def metadata_only(self) -> ScaledObjectDocument:
        """Its metadata alone, a quarter of its memory (about 0.9 of 3.4 KiB for a one-trigger
        object): what a replica keeps of an object another replica polls. It is read whole
        from kube-apiserver again when this replica gains it."""
        return ScaledObjectDocument(self.meta, ScaledObjectStatus(), None, whole=False)

    @property
    def reference(self) -> ObjectReference:
        """The object, as the Events about it name it."""
        return ObjectReference.to(API_VERSION, "ScaledObject", self.meta)

    def parsed(self) -> ScaledObject:
        """The ScaledObject; raise the ConfigError that names every bad field."""
        assert self.whole, f"{self.ref}: read it whole before its spec is used"
        if self.scaled_object is None:
            assert self.error is not None
            raise self.error
        return self.scaled_object


def parse_meta(
    raw: Mapping[str, object], problems: Problems, *, namespaced: bool = True
) -> ObjectMeta:
    """``metadata``; a cluster-scoped object has no namespace."""
    return ObjectMeta.parse(raw.get("metadata"), problems, namespaced=namespaced)


def parse_status(raw: Mapping[str, object], warnings: list[str]) -> ScaledObjectStatus:
    """What is read back of ``status``. Controllers write it, not users: a field that cannot
    be read is a warning and counts as absent, never a reason to stop scaling."""
    problems = Problems()
    f = Fields(raw.get("status"), "status", problems, warnings)
    status = ScaledObjectStatus(
        conditions=tuple(Condition.parse(c) for c in f.items("conditions")),
        hpa_name=f.string("hpaName"),
        original_replica_count=f.integer("originalReplicaCount", None, minimum=0),
        last_active_time=f.time("lastActiveTime"),
    )
    warnings.extend(f"{p}; ignored" for p in problems)
    return status


def subject_of(kind: str, raw: Mapping[str, object], namespaced: bool = True) -> str:
    md = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    name = md.get("name") or "<unnamed>"
    return f"{kind} {md.get('namespace') or 'default'}/{name}" if namespaced else f"{kind} {name}"


def parse_scaled_object(raw: Mapping[str, object]) -> ScaledObject:
    """Parse a ScaledObject; raise ConfigError listing every problem with its field path."""
    return read_scaled_object(raw).parsed()


def read_scaled_object(raw: Mapping[str, object]) -> ScaledObjectDocument:
    """Read a ScaledObject: metadata and status always, the spec when it is well formed."""
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems)
    status = parse_status(raw, warnings)
    so = _parse_spec(raw, meta, status, problems, warnings)
    if problems:
        error = ConfigError(subject_of("ScaledObject", raw), problems)
        return ScaledObjectDocument(meta, status, None, error, draft=so)
    return ScaledObjectDocument(meta, status, so)


def _parse_spec(
    raw: Mapping[str, object],
    meta: ObjectMeta,
    status: ScaledObjectStatus,
    problems: Problems,
    warnings: list[str],
) -> ScaledObject:
    spec = spec_fields(raw, problems, warnings)
    spec.warn_unknown(SPEC_FIELDS)
    target = spec.child("scaleTargetRef")
    scale_target = ScaleTargetRef(
        name=target.string("name", "", required=True) or "",
        api_version=target.string("apiVersion", "apps/v1") or "apps/v1",
        kind=target.string("kind", "Deployment") or "Deployment",
        env_source_container_name=target.string("envSourceContainerName"),
        api_version_omitted=not target.has("apiVersion"),
    )
    min_r = spec.integer("minReplicaCount", 0, minimum=0)
    max_r = spec.integer("maxReplicaCount", 100, minimum=1)
    idle = spec.integer("idleReplicaCount", None, minimum=0)
    assert min_r is not None
    assert max_r is not None
    if min_r > max_r:
        problems.add("minReplicaCount", f"{min_r} must not exceed maxReplicaCount {max_r}")
    if idle is not None and idle >= min_r and spec.has("minReplicaCount"):
        problems.add("idleReplicaCount", f"{idle} must be less than minReplicaCount {min_r}")
    elif idle is not None and idle >= min_r:
        problems.add(
            "idleReplicaCount", f"{idle} must be less than minReplicaCount (default {min_r})"
        )

    triggers = tuple(parse_trigger(i, t) for i, t in enumerate(spec.items("triggers")))
    if not triggers:
        problems.add("triggers", "at least one trigger is required")
    check_trigger_names(triggers, problems)
    if triggers and all(t.is_resource for t in triggers) and min_r == 0:
        problems.add(
            "minReplicaCount",
            "0 needs a trigger that is not cpu or memory: the HPA "
            "cannot scale from zero on resource usage",
        )

    fallback = None
    if spec.has("fallback"):
        fb = spec.child("fallback")
        fallback = FallbackSpec(
            failure_threshold=fb.integer("failureThreshold", 0, minimum=0, required=True) or 0,
            replicas=fb.integer("replicas", 0, minimum=0, required=True) or 0,
            behavior=fb.enum("behavior", FALLBACK_BEHAVIORS, "static"),
        )
        if triggers and all(t.is_resource for t in triggers):
            problems.add("fallback", "needs at least one trigger that is not cpu or memory")

    return ScaledObject(
        meta=meta,
        scale_target_ref=scale_target,
        triggers=triggers,
        polling_interval=spec.integer("pollingInterval", 30, minimum=1) or 30,
        cooldown_period=_non_none(spec.integer("cooldownPeriod", 300, minimum=0), 300),
        initial_cooldown_period=_non_none(spec.integer("initialCooldownPeriod", 0, minimum=0), 0),
        idle_replica_count=idle,
        min_replica_count=min_r,
        max_replica_count=max_r,
        fallback=fallback,
        advanced=_parse_advanced(spec.child("advanced")),
        paused_replicas=_paused_replicas(meta, problems),
        status=status,
        warnings=tuple(warnings),
    )


def _paused_replicas(meta: ObjectMeta, problems: Problems) -> int | None:
    """``paused-replicas`` as KEDA reads it (a Go int32), and a replica count: at least 0."""
    text = meta.annotations.get(PAUSED_REPLICAS)
    if text is None:
        return None
    where = f"metadata.annotations.{PAUSED_REPLICAS}"
    digits = len(text.lstrip("+-"))
    if digits > 10 or not _GO_INT32.fullmatch(text) or not -(2**31) <= int(text) <= INT32_MAX:
        problems.add(where, f"{quote(text)} is not an integer")
        return None
    if int(text) < 0:
        problems.add(where, f"{quote(text)} must be at least 0")
        return None
    return int(text)


def spec_fields(raw: Mapping[str, object], problems: Problems, warnings: list[str]) -> Fields:
    """The spec, with paths relative to it (``triggers[0].metadata.x``) as users read them."""
    value = raw.get("spec")
    if not isinstance(value, Mapping):
        problems.add("spec", "is required and must be an object")
    return Fields(value if isinstance(value, Mapping) else {}, "", problems, warnings)


def _non_none(value: int | None, default: int) -> int:
    return default if value is None else value


def parse_trigger(index: int, f: Fields) -> Trigger:
    f.warn_unknown(TRIGGER_FIELDS)
    type_ = f.string("type", "", required=True) or ""
    given = f.string("metricType")  # unset or "": the trigger type decides
    metric_type = f.enum("metricType", METRIC_TYPES, "AverageValue") if given else None
    if metric_type == "Utilization" and type_ not in RESOURCE_TYPES:
        f.problems.add(f.at("metricType"), '"Utilization" is valid only for cpu and memory')
    cached = f.boolean("useCachedMetrics", False)
    if cached and (type_ in RESOURCE_TYPES or type_ == "cron"):
        f.problems.add(f.at("useCachedMetrics"), f"is not allowed for {type_} triggers")
    auth = None
    if f.has("authenticationRef"):
        a = f.child("authenticationRef")
        auth = AuthenticationRef(
            name=a.string("name", "", required=True) or "",
            kind=a.enum(
                "kind",
                ("TriggerAuthentication", "ClusterTriggerAuthentication"),
                "TriggerAuthentication",
            ),
        )
    return Trigger(
        index=index,
        type=type_,
        metadata=frozen(f.string_map("metadata")),
        name=f.string("name"),
        metric_type=metric_type,
        use_cached_metrics=cached,
        authentication_ref=auth,
    )


def check_trigger_names(triggers: tuple[Trigger, ...], problems: Problems) -> None:
    seen: dict[str, int] = {}
    for t in triggers:
        if t.name is None:
            continue
        if t.name in seen:
            problems.add(
                f"triggers[{t.index}].name",
                f"{quote(t.name)} is already the name of triggers[{seen[t.name]}]",
            )
        seen.setdefault(t.name, t.index)


def _parse_advanced(f: Fields) -> Advanced:
    hpa = f.child("horizontalPodAutoscalerConfig")
    modifiers = None
    if f.has("scalingModifiers"):
        m = f.child("scalingModifiers")
        modifiers = ScalingModifiers(
            formula=m.string("formula"),
            target=m.string("target"),
            activation_target=m.string("activationTarget"),
            metric_type=m.enum("metricType", ("AverageValue", "Value"), "AverageValue")
            if m.has("metricType")
            else None,
        )
        if modifiers.in_use and not modifiers.formula:  # an empty one is not in use, as in KEDA
            m.problems.add(m.at("formula"), "is required")
    return Advanced(
        restore_to_original_replica_count=f.boolean("restoreToOriginalReplicaCount", False),
        hpa_name=hpa.string("name"),
        hpa_behavior=Behavior.parse(hpa.child("behavior")) if hpa.has("behavior") else None,
        scaling_modifiers=modifiers,
    )
