"""The scale target's container env, as KEDA reads it for ``...FromEnv`` parameters and ``env``
authentication (keda-semantics §6): the named container (else the first), ``envFrom`` Secrets
and ConfigMaps with their prefix, then ``env`` values and ``valueFrom`` key references; what
cannot be resolved is left out.

One implementation for both object sources: standalone hands in its YAML files, the cluster
its watch caches, each as a lookup from a Secret's or ConfigMap's reference to its data.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """What binding reads of a workload's (or a Job's) pod template."""

    containers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    service_account: str = "default"
    """``serviceAccountName`` (or the deprecated ``serviceAccount``), else ``default``, as
    KEDA resolves pod identity."""


def pod_template(workload: Mapping[str, Any] | None) -> PodTemplate:
    spec = dig(workload, "spec", "template", "spec")
    account = dig(spec, "serviceAccountName") or dig(spec, "serviceAccount")
    return PodTemplate(
        pod_containers(workload), account if isinstance(account, str) and account else "default"
    )


@dataclass(frozen=True, slots=True)
class SecretData:
    """A Secret's ``data``: text values, and the keys whose bytes are not UTF-8 (a keystore),
    by name only: they are no parameter's, and an error only when a trigger reads one."""

    text: dict[str, str]
    binary: frozenset[str] = frozenset()


def secret_data(data: object) -> SecretData:
    """Decode a Secret's ``data`` (base64 values); ``None`` or a non-mapping is empty. A
    value that is not base64 counts as binary: the API server never stores one."""
    text: dict[str, str] = {}
    binary: set[str] = set()
    for key, encoded in data.items() if isinstance(data, Mapping) else ():
        try:
            text[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            binary.add(str(key))
    return SecretData(text, frozenset(binary))


ROLE_ANNOTATIONS = "eks.amazonaws.com/"


def service_account_annotations(account: Mapping[str, Any]) -> dict[str, str]:
    """What pod identity reads of a ServiceAccount: its ``eks.amazonaws.com/`` annotations
    (not ``last-applied-configuration`` and the like)."""
    found = dig(account, "metadata", "annotations")
    if not isinstance(found, Mapping):
        return {}
    return {
        str(k): str(v)
        for k, v in found.items()
        if str(k).startswith(ROLE_ANNOTATIONS) and isinstance(v, str)
    }


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
