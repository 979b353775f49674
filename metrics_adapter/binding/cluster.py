"""The ObjectSource of cluster mode: TriggerAuthentications, ClusterTriggerAuthentications,
Secrets, ConfigMaps and the scale targets' pod templates, from watches, in memory.

Each kind is watched once, cluster-wide and without a label selector, rather than per
namespace that has ScaledObjects:

- it needs nothing from the controller: per-namespace watches would start and stop as
  ScaledObjects come and go, and a new ScaledObject's first bind would race its namespace's
  first list and report a Secret "not found" that exists;
- six connections in all, whatever the number of namespaces; deploy/rbac.yaml already
  grants list/watch on these kinds cluster-wide;
- a label selector cannot work: users do not label the Secrets their triggers read.

The cost is memory for objects no trigger reads, kept small by storing only what binding
reads: a Secret's or ConfigMap's decoded ``data`` (a Secret's binary keys only by name), a
workload's containers cut to ``name``, ``env`` and ``envFrom`` and its ServiceAccount's name,
a ServiceAccount's ``eks.amazonaws.com/`` annotations (pod identity). Helm release Secrets
(``helm.sh/release.v1``), often the largest Secrets in a cluster and never a trigger's, are
left out by a field selector.

Bindings go stale when what they read changes: ``on_change`` receives the key of each
object whose stored value changed (a Deployment's status update is not a change), and
:meth:`ClusterObjects.referencing` says which ScaledObjects read it, so the controller can
re-bind exactly those.

What needs a read of an outside source (``filePath``, a bound ServiceAccount token, Vault, AWS
Secrets Manager) is read by ``sources`` (:class:`~.auth_sources.cache.SourceCache`):
:meth:`ClusterObjects.settle` reads what an object needs before it is bound, and a changed
value is reported to ``on_change`` as an ``AuthenticationSource`` key, re-binding exactly the
objects that read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from metrics_adapter.binding.auth_sources.base import SourceRead, SourceValues
from metrics_adapter.binding.auth_sources.cache import SETTLE_WITHIN, SourceCache
from metrics_adapter.binding.authentication import lookup, object_reads
from metrics_adapter.binding.env import (
    PodTemplate,
    SecretData,
    container_env,
    env_sources,
    pod_template,
    secret_data,
    service_account_annotations,
)
from metrics_adapter.config.settings import DEFAULT_CLUSTER_OBJECT_NAMESPACE
from metrics_adapter.errors import AuthSourceError
from metrics_adapter.kube.client import (
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    SCALED_JOBS,
    SCALED_OBJECTS,
    SECRETS,
    SERVICE_ACCOUNTS,
    STATEFULSETS,
    TRIGGER_AUTHENTICATIONS,
    KubeClient,
    Resource,
)
from metrics_adapter.kube.scope import Scope
from metrics_adapter.kube.watch import watch_scoped
from metrics_adapter.model.authentication import TriggerAuthentication, parse_trigger_authentication
from metrics_adapter.model.keda import ObjectRef, ScaledObject
from metrics_adapter.model.scaled_job import Scalable, ScaledJob
from scalers.errors import ConfigError

log = logging.getLogger(__name__)

WATCHED = (
    TRIGGER_AUTHENTICATIONS,
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    SECRETS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    STATEFULSETS,
    SERVICE_ACCOUNTS,
)
_BY_KIND = {r.kind: r for r in (*WATCHED, SCALED_OBJECTS, SCALED_JOBS)}
SOURCE_KIND = "AuthenticationSource"
"""The kind of the keys of outside sources' reads, named by what they read."""
SECRET_FIELD_SELECTOR = "type!=helm.sh/release.v1"
WORKLOADS = {("apps/v1", r.kind) for r in (DEPLOYMENTS, STATEFULSETS)}
TA, CTA = TRIGGER_AUTHENTICATIONS.kind, CLUSTER_TRIGGER_AUTHENTICATIONS.kind
_S = TypeVar("_S", ScaledObject, ScaledJob)


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """One watched object; ``namespace`` is empty for a ClusterTriggerAuthentication."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class ClusterObjects:
    """What the trigger binder reads, kept current by :meth:`run` (or fed to :meth:`handle`)."""

    def __init__(
        self,
        cluster_object_namespace: str = DEFAULT_CLUSTER_OBJECT_NAMESPACE,
        on_change: Callable[[ObjectKey], None] | None = None,
        sources: SourceCache | None = None,
        scope: Scope | None = None,
    ) -> None:
        self.cluster_object_namespace = cluster_object_namespace
        """Where a ClusterTriggerAuthentication's Secrets and ConfigMaps live (KEDA's
        ``KEDA_CLUSTER_OBJECT_NAMESPACE``)."""
        self.scope = scope or Scope(own_namespace=cluster_object_namespace)
        """Where objects are watched; the controllers watch theirs there too."""
        self.on_change = on_change
        """Called on the event loop with each changed object's key; must not block."""
        self.sources = sources
        """Reads of outside sources; ``None``: none are made, and they stay unread."""
        if sources is not None:
            sources.on_change = self._source_changed
        self.synced = asyncio.Event()
        """Set once every kind has been listed: bind before it and objects seem missing."""
        self._objects: dict[ObjectKey, object] = {}
        self._unsynced = {r.kind for r in WATCHED}

    # ObjectSource

    def trigger_authentication(self, ref: ObjectRef) -> TriggerAuthentication | None:
        found = self._objects.get(ObjectKey(TA, ref.namespace, ref.name))
        return found if isinstance(found, TriggerAuthentication) else None

    def cluster_trigger_authentication(self, name: str) -> TriggerAuthentication | None:
        found = self._objects.get(ObjectKey(CTA, "", name))
        return found if isinstance(found, TriggerAuthentication) else None

    def unread(self, kind: str, namespace: str = "") -> str | None:
        resource = _BY_KIND.get(kind)
        return self.scope.unread(resource, namespace) if resource is not None else None

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return (self._data(SECRETS.kind, ObjectRef(namespace, name)) or {}).get(key)

    def binary_secret_keys(self, namespace: str, name: str) -> frozenset[str]:
        found = self._objects.get(ObjectKey(SECRETS.kind, namespace, name))
        return found.binary if isinstance(found, SecretData) else frozenset()

    def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return (self._data(CONFIG_MAPS.kind, ObjectRef(namespace, name)) or {}).get(key)

    def container_env(self, so: Scalable, container: str | None) -> Mapping[str, str]:
        return container_env(
            self._template(so).containers,
            container,
            so.ref.namespace,
            lambda ref: self._data(SECRETS.kind, ref),
            lambda ref: self._data(CONFIG_MAPS.kind, ref),
        )

    def workload_service_account(self, obj: Scalable) -> str:
        return self._template(obj).service_account

    def service_account_annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        found = self._objects.get(ObjectKey(SERVICE_ACCOUNTS.kind, namespace, name))
        return found if isinstance(found, Mapping) else None

    def source_values(self, read: SourceRead) -> SourceValues | AuthSourceError | None:
        return self.sources.get(read) if self.sources is not None else None

    def _data(self, kind: str, ref: ObjectRef) -> Mapping[str, str] | None:
        found = self._objects.get(ObjectKey(kind, ref.namespace, ref.name))
        if isinstance(found, SecretData):
            return found.text
        return found if isinstance(found, dict) else None

    def _template(self, so: Scalable) -> PodTemplate:
        if isinstance(so, ScaledJob):
            return pod_template({"spec": so.job_spec})
        target = _target(so)
        found = self._objects.get(target) if target else None
        return found if isinstance(found, PodTemplate) else PodTemplate()

    # Outside sources.

    async def settle(self, obj: Scalable, within: float = SETTLE_WITHIN) -> None:
        """Read what binding ``obj`` needs from outside sources, waiting for their first
        answers at most ``within`` seconds; call before each bind."""
        if self.sources is not None:
            await self.sources.settle(obj.ref, object_reads(obj, self), within)

    def release(self, ref: ObjectRef) -> None:
        """``ref`` (a ScaledObject's or ScaledJob's) is gone: stop reading what only it read."""
        if self.sources is not None:
            self.sources.release(ref)

    def _source_changed(self, read: SourceRead) -> None:
        if self.on_change is not None:
            self.on_change(ObjectKey(SOURCE_KIND, "", read.describe()))

    # What a binding reads.

    def dependencies(self, so: Scalable) -> frozenset[ObjectKey]:
        """Every watched object (and outside source) whose change can change what
        :func:`bind` makes of ``so``."""
        namespace = so.ref.namespace
        keys: set[ObjectKey] = set()
        if isinstance(so, ScaledObject) and (target := _target(so)):
            keys.add(target)
        found = env_sources(self._template(so).containers)
        keys.update(ObjectKey(kind, namespace, name) for kind, name in found)
        for trigger in so.triggers:
            ref = trigger.authentication_ref
            if ref is None:
                continue
            cluster = ref.kind == CTA
            keys.add(ObjectKey(ref.kind, "" if cluster else namespace, ref.name))
            auth, where = lookup(so, trigger, self)
            if auth is None:
                continue
            keys.update(ObjectKey(SECRETS.kind, where, r.name) for r in auth.secret_target_refs)
            keys.update(
                ObjectKey(CONFIG_MAPS.kind, where, r.name) for r in auth.config_map_target_refs
            )
            if auth.oauth2 is not None and auth.oauth2.client_secret is not None:
                keys.add(ObjectKey(SECRETS.kind, where, auth.oauth2.client_secret.name))
            if auth.pod_identity is not None:
                account = self.workload_service_account(so)
                keys.add(ObjectKey(SERVICE_ACCOUNTS.kind, namespace, account))
        keys.update(ObjectKey(SOURCE_KIND, "", r.describe()) for r in object_reads(so, self))
        return frozenset(keys)

    def referencing(self, key: ObjectKey, scaled_objects: Iterable[_S]) -> list[_S]:
        """The ScaledObjects (or ScaledJobs) to re-bind after ``key`` changed."""
        return [so for so in scaled_objects if key in self.dependencies(so)]

    # Filling the caches.

    async def run(self, client: KubeClient) -> None:
        """Watch every kind until cancelled."""
        async with asyncio.TaskGroup() as group:
            for resource in WATCHED:
                group.create_task(self._follow(client, resource), name=f"watch {resource.plural}")

    async def _follow(self, client: KubeClient, resource: Resource) -> None:
        selector = SECRET_FIELD_SELECTOR if resource == SECRETS else ""
        events = watch_scoped(client, resource, self.scope, field_selector=selector)
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                self.handle(resource.kind, event.type, event.object)

    def handle(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """Apply one watch event (``ADDED``, ``MODIFIED``, ``DELETED``, ``SYNCED``) of ``kind``."""
        if event == "SYNCED":
            self._unsynced.discard(kind)
            if not self._unsynced and not self.synced.is_set():
                log.info("cluster objects synced: %d objects", len(self._objects))
                self.synced.set()
            return
        meta = obj.get("metadata") or {}
        namespaced = kind != CTA
        key = ObjectKey(kind, str(meta.get("namespace") or "") if namespaced else "", meta["name"])
        old = self._objects.get(key)
        new = None if event == "DELETED" else _stored(kind, obj)
        if new is None:
            self._objects.pop(key, None)
        else:
            self._objects[key] = new
        if new != old:
            log.debug("%s %s", key, event.lower())
            if self.on_change is not None:
                self.on_change(key)


def _target(so: ScaledObject) -> ObjectKey | None:
    """The scale target, if it is a kind whose pod template is watched."""
    target = so.scale_target_ref
    if (target.api_version, target.kind) not in WORKLOADS:
        return None
    return ObjectKey(target.kind, so.ref.namespace, target.name)


def _stored(kind: str, obj: Mapping[str, Any]) -> object:
    """What is kept of ``obj``: only what binding reads; ``None`` for an unusable object."""
    if kind in (TA, CTA):
        try:
            return parse_trigger_authentication({**obj, "kind": kind})
        except ConfigError as exc:  # the CRD schema lets few through; bind reports it missing
            log.error("%s", exc)
            return None
    if kind == SECRETS.kind:
        return secret_data(obj.get("data"))
    if kind == CONFIG_MAPS.kind:
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    if kind == SERVICE_ACCOUNTS.kind:
        return service_account_annotations(obj)
    return pod_template(obj)
