"""Cluster mode for ScaledJobs: watched ScaledJobs become polled triggers, Jobs created as
KEDA creates them, history cleaned, rollouts applied, a status and Events.

A ScaledJob's triggers share the poller with every ScaledObject's: a ScaledJob and a
ScaledObject reading the same queue ask it once. Once every trigger of a ScaledJob has a
new reading (or a ``pollingInterval`` has passed since its last evaluation, for a trigger
whose loop is late), the ScaledJob is queued for :meth:`ScaledJobController.evaluate`,
which counts its Jobs (from :class:`~metrics_adapter.control.job_cache.JobCache`), computes
KEDA's plan (:func:`~metrics_adapter.control.job_scaling.plan`) and creates that many Jobs.
So a ScaledJob is evaluated once per ``pollingInterval``, right after its sources were
read, as KEDA's loop does (two triggers on two loops do not make two evaluations, which
would let ``eager`` and ``custom`` create twice as fast); more often only when it shares
its queries with objects polled faster. A failing trigger is left out
of the plan, as KEDA leaves it out: an error never creates a Job and never deletes one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from metrics_adapter import __version__
from metrics_adapter.binding.cluster import ClusterObjects, ObjectKey
from metrics_adapter.binding.triggers import BoundTrigger, bind_all, settle_binding
from metrics_adapter.binding.warnings import object_warnings
from metrics_adapter.control import job_status
from metrics_adapter.control.activator import TriggerState, trigger_states
from metrics_adapter.control.ignored_event import Announced, announce
from metrics_adapter.control.job_cache import JobCache
from metrics_adapter.control.job_manifest import (
    build_job,
    history_to_delete,
    propagation,
    rollout_to_delete,
)
from metrics_adapter.control.job_scaling import JobPlan, TriggerMetric, count_jobs, plan
from metrics_adapter.control.lifecycle import (
    FINALIZER,
    add_finalizer,
    follow,
    reconcile_all,
    remove_finalizer,
    spec_version,
    take_over,
)
from metrics_adapter.control.ownership import (
    Everything,
    Held,
    Ownership,
    acting_for,
    held,
    sort_moved,
)
from metrics_adapter.control.work import ObjectWork, guarded
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.batch import Job
from metrics_adapter.kube.client import JOBS, SCALED_JOBS, KubeClient
from metrics_adapter.kube.objects import Event
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.scaled_job import (
    ScaledJob,
    ScaledJobDocument,
    ScaledJobRef,
    ScaledJobStatus,
    read_scaled_job,
)
from scalers.errors import ConfigError, ScalerError

log = logging.getLogger(__name__)


@dataclass
class _Tracked:
    document: ScaledJobDocument
    version: tuple[object, ...] = ()
    sj: ScaledJob | None = None
    """While in force: bound and polled. ``None`` when malformed or deleting."""
    last_active: datetime | None = None
    active: bool | None = None
    """As the last evaluation found it, for the ScaledJobActive/Inactive Events."""
    failing: frozenset[str] = field(default_factory=frozenset)
    fresh: set[str] = field(default_factory=set)
    """Metric names read since the last evaluation."""
    evaluated: float = -math.inf
    """When it was last evaluated (monotonic)."""
    held: Held = Held.NOT
    """Whether this replica polled it and wrote for it at its last reconcile."""
    """Metric names failing at the last evaluation: KEDAScalerFailed once per failure."""
    written: ScaledJobStatus | None = None
    warned: Announced | None = None
    """The IgnoredFields Event last sent, so a resync does not send it again."""

    @property
    def ref(self) -> ScaledJobRef:
        return self.document.ref


class ScaledJobController:
    def __init__(
        self,
        kube: KubeClient,
        objects: ClusterObjects,
        poller: Poller,
        store: MetricStore,
        telemetry: Telemetry,
        ownership: Ownership | None = None,
    ) -> None:
        self.kube, self.objects, self.poller = kube, objects, poller
        self.store, self.telemetry = store, telemetry
        self.ownership = ownership or Everything()
        """Who polls and writes for each ScaledJob; every replica watches them all."""
        self.cache = JobCache()
        self.synced = asyncio.Event()
        self._tracked: dict[ScaledJobRef, _Tracked] = {}
        self._work = ObjectWork[ScaledJobRef]()
        self._retry: asyncio.Queue[ScaledJobRef] = asyncio.Queue()
        self._retries: dict[ScaledJobRef, asyncio.TimerHandle] = {}
        """ScaledJobs to reconcile again later: a trigger's source failed while binding."""
        poller.listeners.append(self._on_reading)

    async def run(self) -> None:
        """Watch Jobs, Pods and ScaledJobs until cancelled (the cluster objects the
        triggers bind to are already synced by the caller)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.cache.run(self.kube, self.objects.scope))
                await self.cache.synced.wait()
                group.create_task(self._work.drain_forever(self.evaluate))
                group.create_task(self._retry_forever())
                await follow(
                    self.kube,
                    SCALED_JOBS,
                    read_scaled_job,
                    self.reconcile,
                    lambda d: self._forget(d.ref),
                    self.synced,
                    self.objects.scope,
                )
        finally:
            for timer in self._retries.values():
                timer.cancel()
            self._retries.clear()

    async def owners_changed(self) -> None:
        """Ownership moved: reconcile what this replica gained (finishing deletions), stop
        polling what it lost."""
        gained, lost = sort_moved(list(self._tracked.values()), self.ownership)
        for t in lost:
            self._retire(t)
        await reconcile_all(gained, self._take_over)

    async def _take_over(self, tracked: _Tracked) -> None:
        await take_over(
            self.kube,
            SCALED_JOBS,
            read_scaled_job,
            tracked.document,
            writes=self.writes(tracked.ref),
            reconcile=partial(self.reconcile, force=True),
        )

    def tracked(self) -> list[_Tracked]:
        return list(self._tracked.values())

    def writes(self, ref: ScaledJobRef) -> bool:
        return self.ownership.writes(ref)

    async def changed(self, key: ObjectKey) -> None:
        """A Secret, ConfigMap or authentication changed: re-bind the ScaledJobs reading it."""
        # In force, or not binding yet: its TriggerAuthentication or Secret may come after it.
        sjs = [
            sj
            for t in self._tracked.values()
            if (sj := t.sj or t.document.scaled_job) is not None
            and t.document.meta.deletion_timestamp is None
        ]
        for sj in self.objects.referencing(key, sjs):
            tracked = self._tracked.get(sj.ref)
            if tracked is not None:
                await guarded(self.reconcile(tracked.document, force=True))

    # Reconcile: spec -> triggers, rollout, status.

    async def reconcile(self, document: ScaledJobDocument, *, force: bool = False) -> None:
        async with self._work.lock(document.ref):
            with acting_for(document.ref):
                await self._reconcile(document, force=force)

    async def _reconcile(self, document: ScaledJobDocument, *, force: bool) -> None:
        ref, meta = document.ref, document.meta
        tracked = self._tracked.get(ref)
        if meta.deletion_timestamp is not None:
            await self._finalize(document, tracked)
            return
        version = spec_version(meta)
        if tracked is not None and tracked.version == version and not force:
            tracked.document = document
            return
        if tracked is not None:
            self._uncount(tracked)
        previous = tracked
        tracked = self._tracked[ref] = _Tracked(
            document,
            version,
            last_active=document.status.last_active_time,
            active=previous.active if previous else None,
            written=previous.written if previous else None,
            warned=previous.warned if previous else None,
            held=held(self.ownership, ref),
        )
        if not tracked.held.polls:  # another replica's: watched, neither polled nor written
            self._retire(tracked)
            return
        try:
            sj = document.parsed()
            await self.objects.settle(sj)  # outside sources first: no Ready=False, then True
            binding = bind_all(sj, self.objects)
        except ConfigError as exc:
            await self._not_ready(tracked, exc)
            await self._warn(tracked, None)
            return
        try:  # external triggers: their metric name and target, asked once per bind
            binding = await settle_binding(binding, self.poller.clients)
        except ScalerError as exc:
            await self._not_ready(tracked, exc)
            self._retry_later(ref, float(sj.polling_interval))
            return
        for warning in sj.warnings:
            log.warning("%s: %s", sj.subject, warning)
        tracked.sj = sj
        self.telemetry.register(sj)
        self.poller.set_triggers(ref, binding.triggers)
        if not self.writes(ref):
            return
        await add_finalizer(self.kube, SCALED_JOBS, document.meta)
        await self._warn(tracked, (*sj.warnings, *binding.warnings))
        await self._roll_out(tracked, sj)
        was = previous.written if previous else None
        await self._paused_events(tracked, sj, was)
        ready_before = was is not None and _true(was, "Ready")
        new = job_status.status_patch(
            sj,
            states=self._states(ref),
            active=tracked.active,
            why="not evaluated yet",
            last_active=tracked.last_active,
        )
        await self._write_status(tracked, sj, new)
        if not ready_before and _true(new, "Ready"):
            await self._event(tracked, "ScaledJobReady", job_status.READY_MESSAGE)
        self._work.queue(ref)

    async def _roll_out(self, tracked: _Tracked, sj: ScaledJob) -> None:
        """Delete the Jobs of an older generation (unless ``gradual``), as KEDA does on
        every spec change; Jobs of this generation are left alone, so it is idempotent."""
        stale = rollout_to_delete(sj, self.cache.jobs(sj.ref))
        if not stale:
            return
        how = propagation(sj)
        await self._event(
            tracked,
            "ScaledJobRolloutCleanupStarted",
            f"Rolling out: deleting {len(stale)} Jobs of an older generation ({how})",
        )
        failed = await self._delete(sj, stale, how)
        if failed:
            await self._event(
                tracked,
                "ScaledJobRolloutCleanupFailed",
                f"Rolling out: {failed} of {len(stale)} Jobs could not be deleted",
                warning=True,
            )
        else:
            await self._event(
                tracked,
                "ScaledJobRolloutCleanupCompleted",
                f"Rolled out: deleted {len(stale)} Jobs of an older generation",
            )

    async def _paused_events(
        self, tracked: _Tracked, sj: ScaledJob, was: ScaledJobStatus | None
    ) -> None:
        paused_before = was is not None and _true(was, "Paused")
        if sj.paused and not paused_before:
            await self._event(tracked, "ScaledJobPaused", "ScaledJob is paused")
        elif not sj.paused and paused_before:
            await self._event(tracked, "ScaledJobUnpaused", "ScaledJob is unpaused")

    async def _warn(self, tracked: _Tracked, warnings: tuple[str, ...] | None) -> None:
        """As :meth:`Controller._warn <metrics_adapter.control.controller.Controller._warn>`."""
        sj = tracked.document.scaled_job
        if not self.writes(tracked.ref) or sj is None:
            return
        found = object_warnings(sj, self.objects) if warnings is None else warnings
        reference = tracked.document.reference
        tracked.warned = await announce(
            self.kube, reference, tracked.version, found, tracked.warned
        )

    async def _not_ready(self, tracked: _Tracked, error: ConfigError | ScalerError) -> None:
        """Malformed (ConfigError), or a trigger's source could not say what its metric is
        (ScalerError, retried later)."""
        ref = tracked.ref
        if isinstance(error, ConfigError):
            problem, reason = error.reasons, "ScaledJobCheckFailed"
        else:
            problem, reason = f"{tracked.document.ref}: {error}", "KEDAScalerFailed"
        log.error("%s", error if isinstance(error, ConfigError) else problem)
        self.poller.remove(ref)
        self.store.mark_broken(ref, problem)
        self.telemetry.object_error(ref)
        if not self.writes(ref):
            return
        patch = job_status.not_ready(problem)
        if tracked.written != patch:
            await self.kube.patch_status(SCALED_JOBS, ref.namespace, ref.name, patch.to_json())
            tracked.written = patch
            await self._event(tracked, reason, problem, warning=True)

    def _retry_later(self, ref: ScaledJobRef, delay: float) -> None:
        """Reconcile ``ref`` again in ``delay`` seconds (its pollingInterval)."""
        if (timer := self._retries.pop(ref, None)) is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._retries[ref] = loop.call_later(delay, self._retry.put_nowait, ref)

    async def _retry_forever(self) -> None:
        while True:
            ref = await self._retry.get()
            self._retries.pop(ref, None)
            tracked = self._tracked.get(ref)
            if tracked is not None and tracked.sj is None:
                await guarded(self.reconcile(tracked.document, force=True))

    async def _finalize(self, document: ScaledJobDocument, tracked: _Tracked | None) -> None:
        """Stop the loop and remove our finalizer: the Jobs go with the ScaledJob, by the
        garbage collector, through their owner reference (as in KEDA)."""
        ref = document.ref
        if tracked is None:
            tracked = self._tracked[ref] = _Tracked(document)
        tracked.document = document
        self._retire(tracked)
        if FINALIZER not in document.meta.finalizers:
            self._forget(ref)
            return
        if not self.writes(ref):
            return
        await remove_finalizer(self.kube, SCALED_JOBS, document.meta)
        self._forget(ref)

    def _uncount(self, tracked: _Tracked) -> None:
        if tracked.sj is not None:
            self.telemetry.register(tracked.sj, -1)
            tracked.sj = None

    def _retire(self, tracked: _Tracked) -> None:
        self._uncount(tracked)
        self.poller.remove(tracked.ref)

    def _forget(self, ref: ScaledJobRef) -> None:
        if (timer := self._retries.pop(ref, None)) is not None:
            timer.cancel()
        self.objects.release(ref)
        tracked = self._tracked.pop(ref, None)
        if tracked is not None:
            self._retire(tracked)

    # Evaluate: readings and Jobs -> new Jobs, cleanup, status.

    def _on_reading(self, bound: BoundTrigger, _: Reading) -> None:
        ref = bound.so
        if not isinstance(ref, ScaledJobRef):
            return
        tracked = self._tracked.get(ref)
        if tracked is None or tracked.sj is None:
            return
        tracked.fresh.add(bound.metric_name)
        every = {t.metric_name for t in self.poller.triggers(ref)}
        late = time.monotonic() - tracked.evaluated >= tracked.sj.polling_interval
        if tracked.fresh >= every or late:
            self._work.queue(ref)

    async def evaluate(self, ref: ScaledJobRef) -> None:
        async with self._work.lock(ref):
            with acting_for(ref):
                await self._evaluate(ref)

    async def _evaluate(self, ref: ScaledJobRef) -> None:
        tracked = self._tracked.get(ref)
        if tracked is None or tracked.sj is None or not self.writes(ref):
            return
        sj = tracked.sj
        tracked.fresh.clear()
        tracked.evaluated = time.monotonic()
        if sj.paused:  # KEDA stops the whole loop: no Job created, none cleaned up
            return
        states = self._states(ref)
        await self._scaler_failures(tracked, states)
        jobs = self.cache.jobs(ref)
        counts = count_jobs(jobs, self.cache.pods(ref), sj.scaling_strategy.pending_pod_conditions)
        decided = plan(sj, metrics(states), counts)
        now = self.kube.clock.now()  # kube-apiserver's: another process reads the status
        if decided.active:
            tracked.last_active = now
        if decided.jobs_to_create > 0:
            await self._create(tracked, sj, decided)
        stale = history_to_delete(sj, self.cache.jobs(ref))
        if stale:
            await self._delete(sj, stale, "Background")
        if tracked.active is not None and tracked.active != decided.active:
            reason = "ScaledJobActive" if decided.active else "ScaledJobInactive"
            state = "active" if decided.active else "inactive"
            await self._event(tracked, reason, f"ScaledJob is {state}: {decided.formula}")
        tracked.active = decided.active
        new = job_status.status_patch(
            sj,
            states=states,
            active=decided.active,
            why=decided.formula,
            last_active=tracked.last_active,
        )
        await self._write_status(tracked, sj, new)

    async def _create(self, tracked: _Tracked, sj: ScaledJob, decided: JobPlan) -> None:
        manifest = build_job(sj, __version__)
        created = 0
        for _ in range(decided.jobs_to_create):
            try:
                answer = await self.kube.create(JOBS, sj.meta.namespace, manifest)
            except KubeError as exc:
                log.warning("%s", exc, extra={"scaledJob": str(sj.ref)})
                self.telemetry.object_error(sj.ref)
                await self._event(tracked, "KEDAJobCreateFailed", str(exc), warning=True)
                break  # the API refused one: the rest would fail alike; the next poll retries
            self.cache.created(sj.ref, Job.parse(answer))
            created += 1
        if created:
            self.telemetry.jobs_created.labels(sj.meta.namespace, sj.meta.name).inc(created)
            log.info(
                "created %d Jobs for %s: %s",
                created,
                sj.ref,
                decided.formula,
                extra={"scaledJob": str(sj.ref)},
            )
            await self._event(tracked, "KEDAJobsCreated", f"Created {created} jobs")

    async def _delete(self, sj: ScaledJob, jobs: list[Job], how: str) -> int:
        """Delete ``jobs``; the number that could not be."""
        failed = 0
        for job in jobs:
            try:
                await self.kube.delete(JOBS, job.name, job.namespace, propagation=how)
            except KubeError as exc:
                log.warning("%s", exc, extra={"scaledJob": str(sj.ref)})
                self.telemetry.object_error(sj.ref)
                failed += 1
                continue
            self.cache.deleted(sj.ref, job)
        return failed

    async def _scaler_failures(self, tracked: _Tracked, states: list[TriggerState]) -> None:
        """``KEDAScalerFailed`` when a trigger starts failing (KEDA writes one every poll)."""
        failing = frozenset(s.bound.metric_name for s in states if s.reading.error is not None)
        for s in states:
            if s.reading.error is not None and s.bound.metric_name not in tracked.failing:
                await self._event(tracked, "KEDAScalerFailed", s.why(), warning=True)
        tracked.failing = failing

    def _states(self, ref: ScaledJobRef) -> list[TriggerState]:
        return trigger_states(self.store, ref, self.poller.triggers(ref))

    async def _write_status(self, tracked: _Tracked, sj: ScaledJob, new: ScaledJobStatus) -> None:
        if job_status.unchanged(new, tracked.written, sj.polling_interval):
            return
        ref = tracked.ref
        await self.kube.patch_status(SCALED_JOBS, ref.namespace, ref.name, new.to_json())
        tracked.written = new

    async def _event(
        self, tracked: _Tracked, reason: str, message: str, *, warning: bool = False
    ) -> None:
        event = Event(tracked.document.reference, reason, message)
        await self.kube.create_event(event if not warning else replace(event, type="Warning"))


def metrics(states: list[TriggerState]) -> list[TriggerMetric]:
    """What KEDA's ScaledJob computation reads of each trigger that has a good reading."""
    return [
        TriggerMetric(s.bound.metric_name, s.reading.value, s.bound.scaler.target, s.reading.active)
        for s in states
        if s.reading.error is None and s.reading.value is not None
    ]


def _true(status: ScaledJobStatus, type_: str) -> bool:
    condition = status.condition(type_)
    return condition is not None and condition.status == "True"
