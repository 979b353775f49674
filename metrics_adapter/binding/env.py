"""The scale target's container env, as KEDA reads it for ``...FromEnv`` parameters and ``env``
authentication (keda-semantics §6): the named container (else the first), ``envFrom`` Secrets
and ConfigMaps with their prefix, then ``env`` values and ``valueFrom`` key references; what
cannot be resolved is left out.

One implementation for both object sources: standalone hands in its YAML files, the cluster
its watch caches, each as a lookup from a Secret's or ConfigMap's reference to its data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metrics_adapter.model.keda import ObjectRef

DataLookup = Callable[[ObjectRef], Mapping[str, str] | None]
"""A Secret's or ConfigMap's data (decoded) by reference; ``None`` when there is none."""

_ENV_FROM = (("secretRef", "Secret"), ("configMapRef", "ConfigMap"))
_VALUE_FROM = (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap"))
_KEPT = ("name", "env", "envFrom")


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…``, or ``None`` as soon as a level is missing or not a mapping."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def pod_containers(workload: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The pod template's containers, each cut down to what env resolution reads."""
    containers = dig(workload, "spec", "template", "spec", "containers")
    if not isinstance(containers, list):
        return []
    return [{k: c[k] for k in _KEPT if k in c} for c in containers if isinstance(c, Mapping)]


def container_env(
    containers: Sequence[Mapping[str, Any]],
    container: str | None,
    namespace: str,
    secrets: DataLookup,
    config_maps: DataLookup,
) -> dict[str, str]:
    """The resolved env of ``container`` (the first one when ``None``; none if absent)."""
    chosen = next(
        (c for c in containers if c.get("name") == container),
        containers[0] if container is None and containers else None,
    )
    if chosen is None:
        return {}
    stores = {"Secret": secrets, "ConfigMap": config_maps}
    env: dict[str, str] = {}
    for source in chosen.get("envFrom") or []:
        for field, kind in _ENV_FROM:
            ref = source.get(field) if isinstance(source, Mapping) else None
            if isinstance(ref, Mapping):
                values = stores[kind](ObjectRef(namespace, str(ref.get("name")))) or {}
                prefix = str(source.get("prefix") or "")
                env.update({prefix + k: v for k, v in values.items()})
    for var in chosen.get("env") or []:
        if not isinstance(var, Mapping) or "name" not in var:
            continue
        if "value" in var:
            env[str(var["name"])] = str(var["value"])
            continue
        value_from = var.get("valueFrom") or {}
        for field, kind in _VALUE_FROM:
            ref = value_from.get(field) if isinstance(value_from, Mapping) else None
            if isinstance(ref, Mapping):
                found = stores[kind](ObjectRef(namespace, str(ref.get("name")))) or {}
                if str(ref.get("key")) in found:
                    env[str(var["name"])] = found[str(ref.get("key"))]
    return env


def env_sources(containers: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """Every ``(kind, name)`` Secret or ConfigMap the containers' env reads: a change to one
    of them changes :func:`container_env`."""
    found: set[tuple[str, str]] = set()
    for c in containers:
        for source in c.get("envFrom") or []:
            for field, kind in _ENV_FROM:
                ref = source.get(field) if isinstance(source, Mapping) else None
                if isinstance(ref, Mapping):
                    found.add((kind, str(ref.get("name"))))
        for var in c.get("env") or []:
            for field, kind in _VALUE_FROM:
                ref = dig(var, "valueFrom", field)
                if isinstance(ref, Mapping):
                    found.add((kind, str(ref.get("name"))))
    return found
