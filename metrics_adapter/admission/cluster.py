"""What the admission rules read from the cluster, typed: the :class:`ClusterView` protocol,
and :class:`KubeClusterView`, its implementation by live reads through the KubeClient.

Live reads rather than watches: admission is rare (a ``kubectl apply``), the objects read
(ScaledObjects, HPAs, LimitRanges of one namespace, one workload) are few, and a read made now
cannot lag an object applied a moment ago, the lag that made KEDA's cached webhook refuse a
ScaledObject applied with its Deployment (kedacore/keda#5973). RBAC this needs: ``list`` on
``keda.sh`` scaledobjects, ``autoscaling`` horizontalpodautoscalers, core limitranges and
``apps`` deployments and statefulsets (one name by field selector).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from metrics_adapter.kube.client import (
    DEPLOYMENTS,
    HPAS,
    SCALED_OBJECTS,
    STATEFULSETS,
    KubeClient,
    Resource,
)
from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.objects import frozen
from metrics_adapter.model.keda import ScaleTargetRef, read_scaled_object
from scalers.errors import Problems
from scalers.quantity import parse_quantity

log = logging.getLogger(__name__)

LIMIT_RANGES = Resource("v1", "LimitRange", "limitranges")
RESOURCES = ("cpu", "memory")
_WORKLOADS = {("apps/v1", r.kind): r for r in (DEPLOYMENTS, STATEFULSETS)}


@dataclass(frozen=True, slots=True)
class Claim:
    """Another ScaledObject of the namespace: the workload it scales, the HPA it names."""

    name: str
    target: ScaleTargetRef
    hpa_name: str


@dataclass(frozen=True, slots=True)
class Hpa:
    """An HPA of the namespace: what it scales and who owns it."""

    name: str
    target: ScaleTargetRef
    owners: frozenset[tuple[str, str]] = frozenset()
    """``(kind, name)`` of each ownerReference."""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Container:
    """A container of a workload's pod template, and which of cpu and memory it requests
    (a request or a limit above zero, as KEDA's ``isWorkloadResourceSet``)."""

    name: str
    resources: frozenset[str] = frozenset()


class ClusterView(Protocol):
    """Reads of a namespace's objects; each raises KubeError when the cluster cannot say."""

    async def scaled_objects(self, namespace: str) -> Sequence[Claim]: ...

    async def hpas(self, namespace: str) -> Sequence[Hpa]: ...

    async def containers(
        self, namespace: str, target: ScaleTargetRef
    ) -> Sequence[Container] | None:
        """The pod template's containers of a Deployment or StatefulSet; ``None`` when it
        does not exist (yet)."""
        ...

    async def limit_range_defaults(self, namespace: str) -> frozenset[str]:
        """Which of cpu and memory a LimitRange of the namespace defaults for containers."""
        ...


class KubeClusterView:
    """:class:`ClusterView` by live reads from kube-apiserver's watch cache; the caller
    bounds them in time.

    A list that must reach etcd (no ``resourceVersion``) took 97-100 ms at p99 on a loaded
    kube-apiserver 1.34, against 3-9 ms from the watch cache (bench/README.md §7), and the
    webhook sits on every ``kubectl apply``. The cache may miss an object written in the
    last few milliseconds (two ScaledObjects on one target applied in the same instant):
    KEDA's cached webhook has the same window, wider (kedacore/keda#5973)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def scaled_objects(self, namespace: str) -> Sequence[Claim]:
        items, _ = await self.kube.list_objects(SCALED_OBJECTS, namespace, from_cache=True)
        return [claim_of(item) for item in items]

    async def hpas(self, namespace: str) -> Sequence[Hpa]:
        items, _ = await self.kube.list_objects(HPAS, namespace, from_cache=True)
        return [hpa_of(item) for item in items]

    async def containers(
        self, namespace: str, target: ScaleTargetRef
    ) -> Sequence[Container] | None:
        resource = _WORKLOADS.get((target.api_version, target.kind))
        if resource is None:
            return None
        # A list cut to one name rather than a get: the adapter already may list these kinds
        # (it watches them), so the webhook needs no verb of its own here.
        selector = f"metadata.name={target.name}"
        items, _ = await self.kube.list_objects(
            resource, namespace, field_selector=selector, from_cache=True
        )
        return containers_of(items[0]) if items else None

    async def limit_range_defaults(self, namespace: str) -> frozenset[str]:
        items, _ = await self.kube.list_objects(LIMIT_RANGES, namespace, from_cache=True)
        return limit_range_defaults(items)


def claim_of(raw: Mapping[str, Any]) -> Claim:
    """The claims of a listed ScaledObject, read by the one ScaledObject parser (defaults
    included: an empty kind is a Deployment)."""
    doc = read_scaled_object(raw)
    so = doc.scaled_object or doc.draft
    assert so is not None  # a draft is kept whenever the spec does not parse
    return Claim(so.meta.name, so.scale_target_ref, so.hpa_name)


def hpa_of(raw: Mapping[str, Any]) -> Hpa:
    f = Fields(raw, "", Problems(), [])
    meta, target = f.child("metadata"), f.child("spec").child("scaleTargetRef")
    owners = frozenset(
        (o.string("kind", "") or "", o.string("name", "") or "")
        for o in meta.items("ownerReferences")
    )
    return Hpa(
        name=meta.string("name", "") or "",
        target=ScaleTargetRef(
            name=target.string("name", "") or "",
            api_version=target.string("apiVersion", "apps/v1") or "apps/v1",
            kind=target.string("kind", "Deployment") or "Deployment",
        ),
        owners=owners,
        annotations=frozen(meta.string_map("annotations")),
    )


def containers_of(workload: Mapping[str, Any]) -> list[Container]:
    f = Fields(workload, "", Problems(), [])
    pod = f.child("spec").child("template").child("spec")
    found = []
    for c in pod.items("containers"):
        resources = c.child("resources")
        requested = set(_positive(resources.child("requests").raw))
        requested |= _positive(resources.child("limits").raw)
        found.append(Container(c.string("name", "") or "", frozenset(requested)))
    return found


def limit_range_defaults(items: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """KEDA's ``isContainerResourceSetInLimitRangeObject``: an item of type Container with a
    default or defaultRequest above zero."""
    found: set[str] = set()
    for item in items:
        for limit in Fields(item, "", Problems(), []).child("spec").items("limits"):
            if limit.raw.get("type") == "Container":
                found |= _positive(limit.child("default").raw)
                found |= _positive(limit.child("defaultRequest").raw)
    return frozenset(found)


def _positive(quantities: Mapping[str, object]) -> set[str]:
    """Which of cpu and memory have a quantity above zero."""
    found = set()
    for name in RESOURCES:
        text = quantities.get(name)
        try:
            if isinstance(text, str | int | float) and parse_quantity(str(text)) > 0:
                found.add(name)
        except (ValueError, ArithmeticError):  # the API server stores only valid ones
            continue
    return found
