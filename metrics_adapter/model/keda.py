"""KEDA's custom resources (``keda.sh/v1alpha1``) as frozen typed objects, parsed at the edge.

Defaults and checks follow KEDA (reference/keda-semantics.md §1, §6). A parse reports every
problem of one object at once; unknown fields are kept as warnings, as ``kubectl`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from metrics_adapter.model.fields import Fields
from scalers.errors import Problems, quote
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


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Meta:
    """The parts of ``metadata`` the adapter uses."""

    ref: ObjectRef
    uid: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    creation_timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    name: str
    api_version: str = "apps/v1"
    kind: str = "Deployment"
    env_source_container_name: str | None = None


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
    metric_type: str = "AverageValue"
    use_cached_metrics: bool = False
    authentication_ref: AuthenticationRef | None = None

    @property
    def is_resource(self) -> bool:
        """cpu and memory are read by the HPA itself, as Resource metrics."""
        return self.type in RESOURCE_TYPES


@dataclass(frozen=True, slots=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: str = "static"


@dataclass(frozen=True, slots=True)
class Advanced:
    restore_to_original_replica_count: bool = False
    hpa_name: str | None = None
    hpa_behavior: Mapping[str, Any] | None = None
    """Copied verbatim into the HPA."""
    scaling_modifiers: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ScaledObject:
    meta: Meta
    scale_target_ref: ScaleTargetRef
    triggers: tuple[Trigger, ...]
    polling_interval: int = 30
    cooldown_period: int = 300
    initial_cooldown_period: int = 0
    idle_replica_count: int | None = None
    min_replica_count: int = 0
    max_replica_count: int = 100
    fallback: Fallback | None = None
    advanced: Advanced = field(default_factory=Advanced)
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
class SecretTargetRef:
    parameter: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class EnvRef:
    parameter: str
    name: str
    container_name: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerAuthentication:
    """A TriggerAuthentication, or a ClusterTriggerAuthentication when ``cluster`` is set."""

    meta: Meta
    cluster: bool = False
    secret_target_refs: tuple[SecretTargetRef, ...] = ()
    config_map_target_refs: tuple[SecretTargetRef, ...] = ()
    env: tuple[EnvRef, ...] = ()
    pod_identity_provider: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "ClusterTriggerAuthentication" if self.cluster else "TriggerAuthentication"


def parse_meta(raw: Mapping[str, Any], problems: Problems, *, namespaced: bool = True) -> Meta:
    """The parts of ``metadata`` the adapter uses; a cluster-scoped object has no namespace."""
    f = Fields(raw.get("metadata"), "metadata", problems, [])
    name = f.string("name", "", required=True) or ""
    namespace = (f.string("namespace", "default") or "default") if namespaced else ""
    created = None
    stamp = f.string("creationTimestamp")
    if stamp:
        try:
            created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            problems.add("metadata.creationTimestamp", f"{quote(stamp)} is not an RFC 3339 time")
    return Meta(
        ref=ObjectRef(namespace, name),
        uid=f.string("uid", "") or "",
        generation=f.integer("generation", 0) or 0,
        labels=_frozen(f.string_map("labels")),
        annotations=_frozen(f.string_map("annotations")),
        creation_timestamp=created,
    )


def _subject(kind: str, raw: Mapping[str, Any], namespaced: bool = True) -> str:
    md = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    name = md.get("name") or "<unnamed>"
    return f"{kind} {md.get('namespace') or 'default'}/{name}" if namespaced else f"{kind} {name}"


def parse_scaled_object(raw: Mapping[str, Any]) -> ScaledObject:
    """Parse a ScaledObject; raise ConfigError listing every problem with its field path."""
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems)
    spec = _spec(raw, problems, warnings)
    spec.warn_unknown(SPEC_FIELDS)
    target = spec.child("scaleTargetRef")
    scale_target = ScaleTargetRef(
        name=target.string("name", "", required=True) or "",
        api_version=target.string("apiVersion", "apps/v1") or "apps/v1",
        kind=target.string("kind", "Deployment") or "Deployment",
        env_source_container_name=target.string("envSourceContainerName"),
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

    triggers = tuple(_parse_trigger(i, t) for i, t in enumerate(spec.items("triggers")))
    if not triggers:
        problems.add("triggers", "at least one trigger is required")
    _check_trigger_names(triggers, problems)
    if triggers and all(t.is_resource for t in triggers) and min_r == 0:
        problems.add(
            "minReplicaCount",
            "0 needs a trigger that is not cpu or memory: the HPA "
            "cannot scale from zero on resource usage",
        )

    fallback = None
    if spec.has("fallback"):
        fb = spec.child("fallback")
        fallback = Fallback(
            failure_threshold=fb.integer("failureThreshold", 0, minimum=0, required=True) or 0,
            replicas=fb.integer("replicas", 0, minimum=0, required=True) or 0,
            behavior=fb.enum("behavior", FALLBACK_BEHAVIORS, "static"),
        )
        if triggers and all(t.is_resource for t in triggers):
            problems.add("fallback", "needs at least one trigger that is not cpu or memory")

    so = ScaledObject(
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
        warnings=tuple(warnings),
    )
    problems.raise_for(_subject("ScaledObject", raw))
    return so


def _spec(raw: Mapping[str, Any], problems: Problems, warnings: list[str]) -> Fields:
    """The spec, with paths relative to it (``triggers[0].metadata.x``) as users read them."""
    value = raw.get("spec")
    if not isinstance(value, Mapping):
        problems.add("spec", "is required and must be an object")
    return Fields(value if isinstance(value, Mapping) else {}, "", problems, warnings)


def _non_none(value: int | None, default: int) -> int:
    return default if value is None else value


def _parse_trigger(index: int, f: Fields) -> Trigger:
    f.warn_unknown(TRIGGER_FIELDS)
    type_ = f.string("type", "", required=True) or ""
    metric_type = f.enum("metricType", METRIC_TYPES, "AverageValue")
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
        metadata=_frozen(f.string_map("metadata")),
        name=f.string("name"),
        metric_type=metric_type,
        use_cached_metrics=cached,
        authentication_ref=auth,
    )


def _check_trigger_names(triggers: tuple[Trigger, ...], problems: Problems) -> None:
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
    behavior = hpa.raw.get("behavior")
    if behavior is not None and not isinstance(behavior, Mapping):
        f.problems.add(hpa.at("behavior"), f"must be an object, not {quote(behavior)}")
        behavior = None
    modifiers = f.raw.get("scalingModifiers")
    if modifiers is not None:
        m = f.child("scalingModifiers")
        m.string("formula", required=True)
        m.enum("metricType", ("AverageValue", "Value"), "AverageValue")
    return Advanced(
        restore_to_original_replica_count=f.boolean("restoreToOriginalReplicaCount", False),
        hpa_name=hpa.string("name"),
        hpa_behavior=behavior,
        scaling_modifiers=modifiers if isinstance(modifiers, Mapping) else None,
    )


def parse_trigger_authentication(raw: Mapping[str, Any]) -> TriggerAuthentication:
    """Parse a TriggerAuthentication or ClusterTriggerAuthentication (by ``kind``)."""
    cluster = raw.get("kind") == "ClusterTriggerAuthentication"
    kind = "ClusterTriggerAuthentication" if cluster else "TriggerAuthentication"
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems, namespaced=not cluster)
    spec = _spec(raw, problems, warnings)

    def refs(key: str) -> tuple[SecretTargetRef, ...]:
        return tuple(
            SecretTargetRef(
                parameter=r.string("parameter", "", required=True) or "",
                name=r.string("name", "", required=True) or "",
                key=r.string("key", "", required=True) or "",
            )
            for r in spec.items(key)
        )

    auth = TriggerAuthentication(
        meta=meta,
        cluster=cluster,
        secret_target_refs=refs("secretTargetRef"),
        config_map_target_refs=refs("configMapTargetRef"),
        env=tuple(
            EnvRef(
                parameter=e.string("parameter", "", required=True) or "",
                name=e.string("name", "", required=True) or "",
                container_name=e.string("containerName"),
            )
            for e in spec.items("env")
        ),
        pod_identity_provider=spec.child("podIdentity").string("provider"),
        warnings=tuple(warnings),
    )
    problems.raise_for(_subject(kind, raw, namespaced=not cluster))
    return auth
