"""Bind a ScaledObject's or a ScaledJob's triggers to scalers: resolve authentication and env,
parse metadata, name the metrics. Every problem of the object is reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from metrics_adapter.binding.composite import Composite, compile_composite, uses_modifiers
from metrics_adapter.binding.ignored import ignored_parameters
from metrics_adapter.model.authentication import TriggerAuthentication
from metrics_adapter.model.keda import ObjectRef, ScaledObject, Trigger
from metrics_adapter.model.scaled_job import Scalable, env_container
from scalers.base import Scaler, ScalerKind, indexed_metric_name
from scalers.errors import Problems, quote
from scalers.params import TriggerInputs
from scalers.registry import KINDS, RESOURCE_KINDS
from scalers.resource import ResourceTarget


class ObjectSource(Protocol):
    """Where referenced objects are read from: YAML files standalone, informers in a cluster."""

    cluster_object_namespace: str

    def trigger_authentication(self, ref: ObjectRef) -> TriggerAuthentication | None: ...

    def cluster_trigger_authentication(self, name: str) -> TriggerAuthentication | None: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...

    def config_map_value(self, namespace: str, name: str, key: str) -> str | None: ...

    def container_env(self, obj: Scalable, container: str | None) -> Mapping[str, str]:
        """The resolved env of a container (first one when ``None``) of the scale target's
        pod template, or of a ScaledJob's Job template."""
        ...


@dataclass(frozen=True, slots=True)
class BoundTrigger:
    """One pollable trigger of one ScaledObject or ScaledJob."""

    so: ObjectRef
    """The owner: a :class:`~metrics_adapter.model.scaled_job.ScaledJobRef` for a ScaledJob."""
    trigger: Trigger
    kind: ScalerKind[Any]
    scaler: Scaler[Any]
    metric_name: str
    polling_interval: float

    @property
    def scaler_label(self) -> str:
        """The ``scaler`` label of KEDA's series: the trigger's name, else KEDA's type name."""
        return self.trigger.name or self.kind.keda_name


@dataclass(frozen=True, slots=True)
class Binding:
    """Every trigger of one object, each parsed once: the ones polled (and, for a
    ScaledObject, served), the cpu/memory targets the HPA reads itself, and the composite
    metric that replaces the polled ones in the HPA under scalingModifiers."""

    triggers: tuple[BoundTrigger, ...]
    resources: tuple[ResourceTarget, ...]
    composite: Composite | None = None
    warnings: tuple[str, ...] = ()
    """What binding accepted but will not act on, each naming its field (a metadata key or
    an authentication field KEDA reads and we do not): shown in Events, ``explain`` and the
    webhook's warnings, never a reason to refuse."""


def bind(so: Scalable, objects: ObjectSource) -> tuple[BoundTrigger, ...]:
    """Build every non-resource trigger's scaler; raise ConfigError naming each bad field
    (of the cpu and memory triggers too)."""
    return bind_all(so, objects).triggers


def bind_all(so: Scalable, objects: ObjectSource) -> Binding:
    """:func:`bind`, with the cpu and memory triggers' targets for the HPA (a ScaledJob's
    cpu and memory triggers are checked, and contribute nothing, as in KEDA) and the
    compiled scalingModifiers, whose problems are reported with the triggers'."""
    problems = Problems()
    bound: list[BoundTrigger] = []
    resources: list[ResourceTarget] = []
    warnings: list[str] = []
    env = objects.container_env(so, env_container(so))
    source = uses_modifiers(so)  # KEDA builds the scalers "as metric source" then
    for trigger in so.triggers:
        path = f"triggers[{trigger.index}]"
        resource_kind = RESOURCE_KINDS.get(trigger.type)
        if resource_kind is not None:
            warnings += ignored_parameters(trigger, resource_kind.metadata)
            inputs = TriggerInputs(trigger.metadata, env, {}, path=f"{path}.metadata")
            target = resource_kind.create(trigger.metric_type, inputs, problems)
            if target is not None:
                resources.append(target)
            continue
        kind = KINDS.get(trigger.type)
        if kind is None:
            supported = ", ".join(sorted([*KINDS, *RESOURCE_KINDS]))
            problems.add(
                f"{path}.type",
                f"{quote(trigger.type)} is not a supported trigger type ({supported})",
            )
            continue
        auth = _auth_params(so, trigger, objects, problems, path)
        warnings += ignored_parameters(trigger, kind.metadata, auth.keys())
        inputs = TriggerInputs(
            trigger.metadata, env, auth, path=f"{path}.metadata", as_metric_source=source
        )
        scaler = kind.create(inputs, problems)
        if scaler is None:
            continue
        name = indexed_metric_name(trigger.index, scaler.metric_name)
        bound.append(BoundTrigger(so.ref, trigger, kind, scaler, name, float(so.polling_interval)))
    composite = None
    if isinstance(so, ScaledObject):
        names = {b.trigger.name: b.metric_name for b in bound if b.trigger.name}
        composite = compile_composite(so, names, problems)
    problems.raise_for(so.subject)
    return Binding(tuple(bound), tuple(resources), composite, tuple(warnings))


def _auth_params(
    so: Scalable, trigger: Trigger, objects: ObjectSource, problems: Problems, path: str
) -> dict[str, str]:
    ref = trigger.authentication_ref
    if ref is None:
        return {}
    if ref.kind == "ClusterTriggerAuthentication":
        auth = objects.cluster_trigger_authentication(ref.name)
        namespace = objects.cluster_object_namespace
    else:
        auth = objects.trigger_authentication(ObjectRef(so.ref.namespace, ref.name))
        namespace = so.ref.namespace
    if auth is None:
        problems.add(
            f"{path}.authenticationRef",
            f"{ref.kind} {quote(ref.name)} not found in namespace {namespace}",
        )
        return {}
    params: dict[str, str] = {}
    where = f"{path}.authenticationRef ({auth.kind} {ref.name})"
    for env_ref in auth.env:  # KEDA's order: env, configMap, secret; later ones win
        container = env_ref.container_name or env_container(so)
        env = objects.container_env(so, container)
        params[env_ref.parameter] = env.get(env_ref.name, "")
    for lookup, refs, what in (
        (objects.config_map_value, auth.config_map_target_refs, "ConfigMap"),
        (objects.secret_value, auth.secret_target_refs, "Secret"),
    ):
        for r in refs:
            value = lookup(namespace, r.name, r.key)
            if value is None:
                problems.add(
                    where,
                    f"{what} {namespace}/{r.name} has no key {quote(r.key)} "
                    f"(for parameter {r.parameter})",
                )
            else:
                params[r.parameter] = value
    return params
