"""The Kubernetes objects the controller reads and writes, typed, each with its JSON in one
place: metadata, references, conditions, ``/scale``, Events and Leases. A shape is parsed
once, where the API hands it over, and written by its own ``to_json()``; the client only
sends it. (The ``autoscaling/v2`` HPA is in :mod:`metrics_adapter.kube.autoscaling`.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TypeAlias

from metrics_adapter.errors import KubeError
from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.wire import rfc3339
from scalers.errors import Problems

Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"

KEDA_OPERATOR = "keda-operator"
"""The name KEDA's operator writes under: the source of its Events and the ``managed-by``
label of its HPAs. Ours are written under it too, so the filters and selectors KEDA users
already have keep matching."""

_NONE: Mapping[str, str] = MappingProxyType({})


def frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy: a parsed object shares nothing with the JSON it came from. Every
    empty one is the same (most labels, annotations and the like are: ~400 bytes each)."""
    return MappingProxyType(dict(mapping)) if mapping else _NONE


def bad_response(subject: str, problems: Problems) -> KubeError:
    """An answer of the API server that does not have the shape its kind promises."""
    return KubeError(subject, 0, "BadResponse", "; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """Which object: a namespace (``""`` when cluster-scoped) and a name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """An owner of an object, which the garbage collector deletes it with."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = True
    block_owner_deletion: bool = True

    def to_json(self) -> JsonObject:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": self.controller,
            "blockOwnerDeletion": self.block_owner_deletion,
        }


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The parts of ``metadata`` the adapter reads or writes."""

    name: str
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=lambda: _NONE)
    annotations: Mapping[str, str] = field(default_factory=lambda: _NONE)
    finalizers: tuple[str, ...] = ()
    owner_references: tuple[OwnerReference, ...] = ()
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    """Set once the object is being deleted; it stays until its finalizers are removed."""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.namespace, self.name)

    @classmethod
    def parse(cls, raw: object, problems: Problems, *, namespaced: bool = True) -> ObjectMeta:
        """``raw`` (an object's ``metadata``) with every problem recorded under
        ``metadata.``; a namespaced object without a namespace is in ``default``."""
        f = Fields(raw, "metadata", problems, [])
        return cls(
            name=f.string("name", "", required=True) or "",
            namespace=(f.string("namespace", "default") or "default") if namespaced else "",
            uid=f.string("uid", "") or "",
            resource_version=f.string("resourceVersion", "") or "",
            generation=f.integer("generation", 0) or 0,
            labels=frozen(f.string_map("labels")),
            annotations=frozen(f.string_map("annotations")),
            finalizers=f.strings("finalizers"),
            creation_timestamp=f.time("creationTimestamp"),
            deletion_timestamp=f.time("deletionTimestamp"),
        )

    def to_json(self) -> JsonObject:
        """What we write of it: owner references, labels and the like only when set."""
        out: JsonObject = {"name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.uid:
            out["uid"] = self.uid
        if self.resource_version:  # a write on this version only: 409 if it changed since
            out["resourceVersion"] = self.resource_version
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.finalizers:
            out["finalizers"] = list(self.finalizers)
        if self.owner_references:
            out["ownerReferences"] = [o.to_json() for o in self.owner_references]
        return out


def finalizers_patch(finalizers: tuple[str, ...]) -> JsonObject:
    """The merge patch that makes ``finalizers`` the object's list."""
    return {"metadata": {"finalizers": list(finalizers)}}


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of a status's ``conditions``, as KEDA writes them."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""

    @classmethod
    def parse(cls, f: Fields) -> Condition:
        return cls(
            type=f.string("type", "") or "",
            status=_condition_status(f.enum("status", ("True", "False", "Unknown"), "Unknown")),
            reason=f.string("reason", "") or "",
            message=f.string("message", "") or "",
        )

    def to_json(self) -> JsonObject:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


def _condition_status(value: str) -> Literal["True", "False", "Unknown"]:
    return "True" if value == "True" else "False" if value == "False" else "Unknown"


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """What an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def to(cls, api_version: str, kind: str, meta: ObjectMeta) -> ObjectReference:
        return cls(api_version, kind, meta.namespace, meta.name, meta.uid)

    def to_json(self) -> JsonObject:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """A core/v1 Event, as client-go's recorder writes it (``kubectl describe`` shows it)."""

    regarding: ObjectReference
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    component: str = KEDA_OPERATOR
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    nonce: int = field(default_factory=time.time_ns)
    """Makes the name unique among the Events about one object."""

    @property
    def name(self) -> str:
        return f"{self.regarding.name}.{self.nonce:x}"

    @property
    def namespace(self) -> str:
        return self.regarding.namespace or "default"

    @property
    def subject(self) -> str:
        return (
            f"Event {self.reason} on {self.regarding.kind} {self.namespace}/{self.regarding.name}"
        )

    def to_json(self) -> JsonObject:
        stamp = rfc3339(self.at)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "involvedObject": self.regarding.to_json(),
            "reason": self.reason,
            "message": self.message,
            "type": self.type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }


@dataclass(frozen=True, slots=True)
class Scale:
    """A ``/scale`` subresource (autoscaling/v1 Scale); absent counts are 0 on the wire."""

    replicas: int
    current_replicas: int = 0
    selector: str = ""
    resource_version: str = ""

    @classmethod
    def from_response(cls, obj: Mapping[str, object], subject: str) -> Scale:
        problems = Problems()
        f = Fields(obj, "", problems, [])
        spec, status = f.child("spec"), f.child("status")
        scale = cls(
            replicas=spec.integer("replicas", 0) or 0,
            current_replicas=status.integer("replicas", 0) or 0,
            selector=status.string("selector", "") or "",
            resource_version=f.child("metadata").string("resourceVersion", "") or "",
        )
        if problems:
            raise bad_response(subject, problems)
        return scale

    @staticmethod
    def patch(replicas: int) -> JsonObject:
        """The merge patch that sets the replica count."""
        return {"spec": {"replicas": replicas}}


@dataclass(frozen=True, slots=True)
class LeaseSpec:
    """The ``spec`` of a ``coordination.k8s.io/v1`` Lease: who holds it, for how long, since
    when."""

    holder: str
    """``""`` when nobody holds it (never taken, or released)."""
    duration: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def parse(cls, f: Fields) -> LeaseSpec:
        return cls(
            holder=f.string("holderIdentity", "") or "",
            duration=f.integer("leaseDurationSeconds", 0) or 0,
            acquire_time=f.time("acquireTime"),
            renew_time=f.time("renewTime"),
            transitions=f.integer("leaseTransitions", 0) or 0,
        )

    def to_json(self) -> JsonObject:
        spec: JsonObject = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = rfc3339(self.acquire_time, micro=True)
        if self.renew_time is not None:
            spec["renewTime"] = rfc3339(self.renew_time, micro=True)
        return spec


@dataclass(frozen=True, slots=True)
class Lease:
    API_VERSION = "coordination.k8s.io/v1"
    KIND = "Lease"

    meta: ObjectMeta
    spec: LeaseSpec

    @classmethod
    def from_response(cls, obj: Mapping[str, object], subject: str) -> Lease:
        problems = Problems()
        lease = cls(
            ObjectMeta.parse(obj.get("metadata"), problems),
            LeaseSpec.parse(Fields(obj.get("spec"), "spec", problems, [])),
        )
        if problems:
            raise bad_response(subject, problems)
        return lease

    def to_json(self) -> JsonObject:
        """The whole Lease: a create, or a replace of the version in ``meta``."""
        return {
            "apiVersion": self.API_VERSION,
            "kind": self.KIND,
            "metadata": self.meta.to_json(),
            "spec": self.spec.to_json(),
        }
