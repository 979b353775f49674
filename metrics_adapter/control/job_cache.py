"""The Jobs of every ScaledJob and their Pods, from two watches, in memory.

KEDA lists a ScaledJob's Jobs, then the Pods of each, on every poll, from its client's
informer caches, which hold every Job and every Pod of the cluster. Here one watch of Jobs
and one of Pods, both cut by the label ``scaledjob.keda.sh/name`` (which every Job we
create, and every Pod of it, carries), hold only what the counts need, and feed the counts
of every ScaledJob, whatever their number.

A Job just created is added at once (:meth:`JobCache.created`): the next evaluation may
come before the watch delivers it, and must count it as running, never create it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from metrics_adapter.control.job_manifest import JOB_LABEL
from metrics_adapter.kube.batch import Job, Pod
from metrics_adapter.kube.client import JOBS, PODS, KubeClient, Resource
from metrics_adapter.kube.scope import EVERY_NAMESPACE, Scope
from metrics_adapter.kube.watch import watch_scoped
from metrics_adapter.model.scaled_job import ScaledJobRef

log = logging.getLogger(__name__)

_Key = tuple[str, str]
"""A Job's or Pod's namespace and name."""


class JobCache:
    def __init__(self) -> None:
        self.synced = asyncio.Event()
        """Set once Jobs and Pods have both been listed: count before it and every Job
        seems missing, so a ScaledJob would create them again."""
        self._unsynced = {JOBS.kind, PODS.kind}
        self._jobs: dict[ScaledJobRef, dict[str, Job]] = {}
        self._pods: dict[ScaledJobRef, dict[str, Pod]] = {}
        self._owners: dict[tuple[str, str, str], ScaledJobRef] = {}
        """(kind, namespace, name) -> owner: a DELETED event after a re-list has no labels."""

    def jobs(self, owner: ScaledJobRef) -> list[Job]:
        return list(self._jobs.get(owner, {}).values())

    def pods(self, owner: ScaledJobRef) -> list[Pod]:
        return list(self._pods.get(owner, {}).values())

    def created(self, owner: ScaledJobRef, job: Job) -> None:
        """Count a Job we just created, before its watch event arrives."""
        self._jobs.setdefault(owner, {})[job.name] = job
        self._owners[(JOBS.kind, job.namespace, job.name)] = owner

    def deleted(self, owner: ScaledJobRef, job: Job) -> None:
        self._drop(JOBS.kind, owner, job.namespace, job.name)

    async def run(self, client: KubeClient, scope: Scope = EVERY_NAMESPACE) -> None:
        async with asyncio.TaskGroup() as group:
            for resource in (JOBS, PODS):
                follow = self._follow(client, resource, scope)
                group.create_task(follow, name=f"watch {resource.plural}")

    async def _follow(self, client: KubeClient, resource: Resource, scope: Scope) -> None:
        events = watch_scoped(client, resource, scope, label_selector=JOB_LABEL)
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                self.handle(resource.kind, event.type, event.object)

    def handle(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """Apply one watch event (``ADDED``, ``MODIFIED``, ``DELETED``, ``SYNCED``) of ``kind``."""
        if event == "SYNCED":
            self._unsynced.discard(kind)
            if not self._unsynced and not self.synced.is_set():
                log.info("Jobs and Pods of ScaledJobs synced: %d Jobs", len(self._owners))
                self.synced.set()
            return
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if event == "DELETED":
            owner = self._owners.get((kind, namespace, name))
            if owner is not None:
                self._drop(kind, owner, namespace, name)
            return
        labels = meta.get("labels") or {}
        owner_name = labels.get(JOB_LABEL) if isinstance(labels, Mapping) else None
        if not isinstance(owner_name, str) or not owner_name:
            return
        owner = ScaledJobRef(namespace, owner_name)
        self._owners[(kind, namespace, name)] = owner
        if kind == JOBS.kind:
            self._jobs.setdefault(owner, {})[name] = Job.parse(obj)
        else:
            self._pods.setdefault(owner, {})[name] = Pod.parse(obj)

    def _drop(self, kind: str, owner: ScaledJobRef, namespace: str, name: str) -> None:
        self._owners.pop((kind, namespace, name), None)
        found = self._jobs if kind == JOBS.kind else self._pods
        members: dict[str, Any] | None = found.get(owner)
        if members is not None:
            members.pop(name, None)
            if not members:
                del found[owner]
