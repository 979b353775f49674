"""Bind a ScaledObject's or a ScaledJob's triggers to scalers: resolve authentication and env,
parse metadata, name the metrics. Every problem of the object is reported at once."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from metrics_adapter.binding.authentication import Resolved, resolve
from metrics_adapter.binding.composite import Composite, compile_composite, uses_modifiers
from metrics_adapter.binding.ignored import ignored_parameters
from metrics_adapter.binding.sources import ObjectSource
from metrics_adapter.model.keda import ObjectRef, ScaledObject, Trigger
from metrics_adapter.model.scaled_job import Scalable, env_container
from scalers.base import Scaler, ScalerKind, indexed_metric_name, needs_settling, settled
from scalers.clients import Clients
from scalers.errors import Problem, Problems, ScalerError, quote
from scalers.params import TriggerInputs, declared_params
from scalers.registry import KINDS, RESOURCE_KINDS
from scalers.resource import ResourceTarget

__all__ = ["Binding", "BoundTrigger", "ObjectSource", "bind", "bind_all", "settle_binding"]


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
        resolved = resolve(so, trigger, objects, problems, path)
        warnings += ignored_parameters(trigger, kind.metadata, resolved.params.keys())
        inputs = TriggerInputs(
            trigger.metadata,
            env,
            resolved.params,
            path=f"{path}.metadata",
            as_metric_source=source,
            pod_identity=resolved.pod_identity,
            namespace=so.ref.namespace,
            name=so.ref.name,
        )
        found = Problems()
        scaler = kind.create(inputs, found)
        unresolved = _named(resolved.unresolved, kind.metadata)
        problems.extend(p for p in found if not _unresolved(p, resolved, unresolved, path))
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


async def settle_binding(binding: Binding, clients: Clients) -> Binding:
    """``binding`` with its triggers whose metric name and target come from their source
    (external) asked for them, once per bind: the HPA's metric names and targets, and the
    composite's variables, follow the answers. Raises ScalerError naming the trigger."""
    renamed: dict[str, str] = {}
    triggers: list[BoundTrigger] = []
    for bound in binding.triggers:
        if needs_settling(bound.scaler):
            try:
                scaler = await settled(bound.scaler, clients)
            except ScalerError as exc:
                raise type(exc)(f"triggers[{bound.trigger.index}]: {exc}") from exc
            name = indexed_metric_name(bound.trigger.index, scaler.metric_name)
            renamed[bound.metric_name] = name
            bound = dataclasses.replace(bound, scaler=scaler, metric_name=name)
        triggers.append(bound)
    if not renamed:
        return binding
    composite = binding.composite
    if composite is not None:
        variables = {k: renamed.get(v, v) for k, v in composite.variables.items()}
        composite = dataclasses.replace(composite, variables=variables)
    return dataclasses.replace(binding, triggers=tuple(triggers), composite=composite)


def _unresolved(
    problem: Problem, resolved: Resolved, unresolved: frozenset[str], path: str
) -> bool:
    """A problem about a parameter whose source could not be used, which is already a
    problem naming that source: "token: is required" would only mislead, and so would
    "host: is required when no connection is given" while ``connection`` is unread."""
    prefix = f"{path}.metadata."
    if not problem.path.startswith(prefix):
        return False
    name = problem.path.removeprefix(prefix)
    if name in unresolved:
        return True
    if "is required" not in problem.message:
        return False
    return resolved.any_unresolved or bool(set(_WORD.findall(problem.message)) & unresolved)


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _named(parameters: frozenset[str], metadata: type[Any]) -> frozenset[str]:
    """``parameters`` and the names they are aliases of (``token`` of ``bearerToken``): a
    problem names a parameter by its first name."""
    names = set(parameters)
    for _, spec in declared_params(metadata):
        if parameters & {spec.name, *spec.aliases}:
            names.add(spec.name)
    return frozenset(names)
