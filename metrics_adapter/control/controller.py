"""Cluster mode: ScaledObjects watched from kube-apiserver become polled triggers, an owned
HPA, a status and Events; the activator takes the 0 <-> 1 step the HPA cannot. ScaledJobs
are handled by :class:`~metrics_adapter.control.scaled_jobs.ScaledJobController`, which runs
inside this one and shares its poller, its cluster objects and its lead.

One watch feeds :meth:`Controller.reconcile` (parse, bind, HPA, status) on every spec
change; every new reading queues the object for :meth:`Controller.activate` (read
``/scale``, :func:`~metrics_adapter.control.activator.decide`, patch ``/scale``, write status).
``lastActiveTime`` lives in the status, so a restart never forgets recent activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from metrics_adapter.binding.cluster import ClusterObjects, ObjectKey
from metrics_adapter.binding.triggers import BoundTrigger, bind_all, settle_binding
from metrics_adapter.binding.warnings import object_warnings
from metrics_adapter.control import status
from metrics_adapter.control.activator import (
    Decision,
    TriggerState,
    decide,
    set_fallbacks,
    trigger_states,
)
from metrics_adapter.control.hpa import build_hpa, needs_update
from metrics_adapter.control.ignored_event import Announced, announce
from metrics_adapter.control.lifecycle import (
    FINALIZER,
    add_finalizer,
    follow,
    latest,
    reconcile_all,
    remove_finalizer,
    spec_version,
    take_over,
)
from metrics_adapter.control.ownership import (
    Everything,
    Held,
    Holding,
    Ownership,
    acting_for,
    held,
    sort_moved,
)
from metrics_adapter.control.scaled_jobs import ScaledJobController
from metrics_adapter.control.targets import with_target_version
from metrics_adapter.control.work import ObjectWork, guarded
from metrics_adapter.errors import KubeNotFound
from metrics_adapter.kube.client import SCALED_OBJECTS, KubeClient
from metrics_adapter.kube.objects import Condition, Event
from metrics_adapter.metrics.poller import EXTRA_POLL_GAP, Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.annotations import PAUSED_REPLICAS, paused
from metrics_adapter.model.keda import (
    ObjectRef,
    ScaledObject,
    ScaledObjectDocument,
    ScaledObjectStatus,
    read_scaled_object,
)
from scalers.errors import ConfigError, ScalerError

log = logging.getLogger(__name__)

SETTLE_SECONDS = 15.0
"""How long after an activation a reading may still raise the target to the HPA's first
step (a burst still arriving when its first message woke us): the HPA's default sync
period, by the end of which the HPA has taken that step itself."""
EVENTS_WAITING = 10_000
"""Activation Events sent in the background at most at once; past it, dropped with a log
line (client-go's recorder drops too, past its queue of 1,000)."""
BIND_WORKERS = 25
"""Gained objects read whole and bound at once after a hand-over: a GET each and no write,
so more of them than reconciles (which write) go at a time."""
REREAD_SECONDS = 5.0
"""When an object this replica gained could not be read whole, it is read again after this."""
REPLICAS_KNOWN_FOR = 4
"""Polling intervals for which a target's replicas, as last read or written here, stand in
for a read of its /scale when a reading changes nothing (:meth:`Controller._replicas`)."""
ACTIVATION_WORKERS = 8
"""Objects activated at once: each reads its target's /scale and waits for its writes (the
write budget, --kube-api-qps), so one slow answer does not hold up every other object."""


@dataclass
class _Tracked:
    """What the controller holds of one ScaledObject between events."""

    document: ScaledObjectDocument
    """As the watch delivered it last."""
    version: tuple[object, ...] = ()
    """Generation, annotations and labels: what a reconcile depends on (metadata changes
    such as pausing do not bump the generation)."""
    so: ScaledObject | None = None
    """While in force: bound, polled and counted. ``None`` when malformed or deleting."""
    last_active: datetime | None = None
    original_replicas: int | None = None
    written: ScaledObjectStatus | None = None
    """The last status written, so unchanged status is never patched again."""
    warned: Announced | None = None
    """The IgnoredFields Event last sent, so a resync does not send it again."""
    activated: tuple[int, float] | None = None
    """The replicas the last activation wrote, and until when (monotonic) it is settling."""
    held: Held = Held.NOT
    """Whether this replica polled it and wrote for it at its last reconcile."""
    replicas: tuple[int, float] | None = None
    """Its target's replicas as last read or written here, and when (monotonic)."""

    @property
    def ref(self) -> ObjectRef:
        return self.document.ref


class Controller:
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
        self._owners_changed = asyncio.Event()
        self.ownership.listeners.append(self._owners_changed.set)
        self.synced = asyncio.Event()
        self._tracked: dict[ObjectRef, _Tracked] = {}
        self._work = ObjectWork[ObjectRef]()
        self._changed: asyncio.Queue[ObjectKey] = asyncio.Queue()
        self._retry: asyncio.Queue[ObjectRef] = asyncio.Queue()
        self._told: set[asyncio.Task[None]] = set()
        """Activation Events on their way (:meth:`_tell`)."""
        self._retries: dict[ObjectRef, asyncio.TimerHandle] = {}
        """Objects to reconcile again later: a trigger's source failed while binding."""
        objects.on_change = self._changed.put_nowait
        self.jobs = ScaledJobController(kube, objects, poller, store, telemetry, self.ownership)
        """ScaledJobs: their own watch and loop, on the same poller, objects and owners."""
        poller.listeners.append(self._on_reading)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            for timer in self._retries.values():
                timer.cancel()
            self._retries.clear()
            for task in self._told:
                task.cancel()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.objects.run(self.kube))
            await self.objects.synced.wait()
            await self.ownership.known()
            group.create_task(self._work.drain_forever(self.activate, ACTIVATION_WORKERS))
            group.create_task(self._rebind_forever())
            group.create_task(self._retry_forever())
            group.create_task(self.jobs.run())
            group.create_task(self._follow_owners_forever())
            await follow(
                self.kube,
                SCALED_OBJECTS,
                read_scaled_object,
                self.reconcile,
                lambda d: self._forget(d.ref),
                self.synced,
                self.objects.scope,
            )

    def watches(self, ref: ObjectRef) -> bool:
        """Whether the ScaledObject exists, as this replica's watch has seen it."""
        return ref in self._tracked

    def writes(self, ref: ObjectRef) -> bool:
        """Whether this replica writes for ``ref`` (HPA, status, /scale, Events, finalizers):
        the leader, or its shard's owner (:mod:`metrics_adapter.control.ownership`)."""
        return self.ownership.writes(ref)

    def holding(self, writes: bool) -> int:
        """ScaledObjects and ScaledJobs this replica polls, or (``writes``) writes for now."""
        held: list[Holding] = [*self._tracked.values(), *self.jobs.tracked()]
        if writes:
            return sum(1 for t in held if t.held.polls and self.ownership.writes(t.ref))
        return sum(1 for t in held if t.held.polls)

    async def _follow_owners_forever(self) -> None:
        """When ownership moves: reconcile what this replica gained from the status its
        previous owner wrote (lastActiveTime, originalReplicaCount), finishing deletions
        left to it, and stop polling what it lost."""
        while True:
            await self._owners_changed.wait()
            self._owners_changed.clear()
            gained, lost = sort_moved(list(self._tracked.values()), self.ownership)
            for t in lost:
                t.document = t.document.metadata_only()
                self._retire(t)
            # Polled first, all of them (one GET each, BIND_WORKERS at a time: watched as
            # metadata until now), then written for: a survivor's gained share is not polled
            # one status write after another.
            unbound = [t.document for t in gained if t.so is None]
            bind = partial(self.reconcile, force=True, bind_only=True)
            await reconcile_all(unbound, bind, workers=BIND_WORKERS)
            await reconcile_all(gained, self._take_over)
            await self.jobs.owners_changed()

    async def _take_over(self, tracked: _Tracked) -> None:
        await take_over(
            self.kube,
            SCALED_OBJECTS,
            read_scaled_object,
            tracked.document,
            writes=self.writes(tracked.ref),
            reconcile=partial(self.reconcile, force=True),
        )

    # Reconcile: spec -> triggers, HPA, status.

    async def reconcile(
        self, document: ScaledObjectDocument, *, force: bool = False, bind_only: bool = False
    ) -> None:
        """``bind_only``: bind and poll it, and write nothing yet."""
        async with self._work.lock(document.ref):
            with acting_for(document.ref):
                await self._reconcile(document, force=force, bind_only=bind_only)

    async def _reconcile(
        self, document: ScaledObjectDocument, *, force: bool, bind_only: bool = False
    ) -> None:
        ref = document.ref
        if not document.whole:  # kept as metadata while another replica polled it
            if not held(self.ownership, ref).polls:
                return
            if (whole := await self._read_whole(document)) is None:
                return
            document = whole
        meta, tracked = document.meta, self._tracked.get(ref)
        if meta.deletion_timestamp is not None:
            await self._finalize(document, tracked)
            return
        version = spec_version(meta)
        if tracked is not None and tracked.version == version and not force:
            # A status-only update, often our own.
            tracked.document = document if tracked.held.polls else document.metadata_only()
            return
        if tracked is not None:
            self._uncount(tracked)  # counted again below if it binds; its polling goes on
        tracked = self._tracked[ref] = _Tracked(
            document,
            version,
            last_active=document.status.last_active_time,
            original_replicas=document.status.original_replica_count,
            written=tracked.written if tracked else None,
            warned=tracked.warned if tracked else None,
            held=held(self.ownership, ref),
        )
        if not tracked.held.polls:  # another replica's: watched, neither polled nor written
            tracked.document = document.metadata_only()
            self._retire(tracked)
            return
        try:
            so = await with_target_version(self.kube, document.parsed())
            await self.objects.settle(so)  # outside sources first: no Ready=False, then True
            binding = bind_all(so, self.objects)
        except ConfigError as exc:
            await self._not_ready(tracked, exc)
            await self._warn(tracked, None)
            return
        try:  # external triggers: their metric name and target, asked once per bind
            binding = await settle_binding(binding, self.poller.clients)
        except ScalerError as exc:
            await self._not_ready(tracked, exc)
            self._retry_later(ref, float(so.polling_interval))
            return
        tracked.so = so
        self.telemetry.register(so)
        self.poller.set_triggers(ref, binding.triggers, binding.composite)
        if bind_only or not self.writes(ref):
            return
        await add_finalizer(self.kube, SCALED_OBJECTS, document.meta)
        await self._warn(tracked, (*so.warnings, *binding.warnings))
        if tracked.original_replicas is None:
            target = so.scale_target_ref
            scale = await self.kube.get_scale(
                target.api_version, target.kind, ref.namespace, target.name
            )
            tracked.original_replicas = scale.replicas
            tracked.replicas = (scale.replicas, time.monotonic())
        if paused(so.meta.annotations):  # KEDA deletes the HPA while paused
            await self.kube.delete_hpa(ref.namespace, so.hpa_name)
            await self._pin(tracked, so)
        else:
            desired = build_hpa(so, binding.triggers, binding.resources, uid=meta.uid)
            existing = await self.kube.get_hpa(ref.namespace, so.hpa_name)
            if existing is None or needs_update(existing, desired):
                await self.kube.apply_hpa(desired)
                log.info(
                    "HPA %s/%s applied",
                    ref.namespace,
                    so.hpa_name,
                    extra={"scaledObject": str(ref)},
                )
        states, composite = self._states(ref), self.store.composite(ref)
        await self._write_status(
            tracked,
            so,
            status.reconciled(
                so, states, tracked.last_active, tracked.original_replicas, composite
            ),
        )
        self._work.queue(ref)

    async def _read_whole(self, document: ScaledObjectDocument) -> ScaledObjectDocument | None:
        """An object this replica gained, kept as its metadata until now, as kube-apiserver
        holds it. None: gone (its watch event follows), or it could not be read (again in
        REREAD_SECONDS)."""
        whole = await latest(self.kube, SCALED_OBJECTS, read_scaled_object, document)
        if whole is not None and not whole.whole:
            log.info("ScaledObject %s is read again in %.0f s", document.ref, REREAD_SECONDS)
            self._retry_later(document.ref, REREAD_SECONDS)
            return None
        return whole

    async def _pin(self, tracked: _Tracked, so: ScaledObject) -> None:
        """``paused-replicas: N``: scale the target to N once, then leave it alone."""
        pinned = so.paused_replicas
        if pinned is None:
            return
        target, ref = so.scale_target_ref, tracked.ref
        scale = await self.kube.get_scale(
            target.api_version, target.kind, ref.namespace, target.name
        )
        if scale.replicas != pinned:
            await self.kube.patch_scale(
                target.api_version, target.kind, ref.namespace, target.name, pinned
            )
            message = (
                f"Scaled {target.kind} {ref.namespace}/{target.name} from "
                f"{scale.replicas} to {pinned}: {PAUSED_REPLICAS}"
            )
            log.info("%s", message, extra={"scaledObject": str(ref)})
            reference = tracked.document.reference
            await self.kube.create_event(Event(reference, "ScaledObjectPaused", message))

    async def _warn(self, tracked: _Tracked, warnings: tuple[str, ...] | None) -> None:
        """The IgnoredFields Event, once per spec version; for an object that does not
        bind (``None``), its parser's and its metadata keys' (a typo may be why)."""
        so = tracked.document.scaled_object
        if not self.writes(tracked.ref) or so is None:
            return
        found = object_warnings(so, self.objects) if warnings is None else warnings
        reference = tracked.document.reference
        tracked.warned = await announce(
            self.kube, reference, tracked.version, found, tracked.warned
        )

    async def _not_ready(self, tracked: _Tracked, error: ConfigError | ScalerError) -> None:
        """Neither polled nor served: malformed (ConfigError), or a trigger's source could
        not say what its metric is (ScalerError: Ready=False TriggerError, retried later).
        The HPA is left as it is."""
        ref = tracked.ref
        if isinstance(error, ConfigError):
            problem, reason = error.reasons, "ScaledObjectCheckFailed"
            patch = status.not_ready(problem)
            log.error("%s", error)
        else:
            problem, reason = str(error), "KEDAScalerFailed"
            patch = ScaledObjectStatus(
                conditions=(Condition("Ready", "False", "TriggerError", problem),)
            )
            log.error("ScaledObject %s: %s", ref, problem, extra={"scaledObject": str(ref)})
        self.poller.remove(ref)
        self.store.mark_broken(ref, problem)
        self.telemetry.object_error(ref)
        if not self.writes(ref):
            return
        if tracked.written != patch:
            await self.kube.patch_scaled_object_status(ref.namespace, ref.name, patch.to_json())
            tracked.written = patch
            event = Event(tracked.document.reference, reason, problem, type="Warning")
            await self.kube.create_event(event)

    def _retry_later(self, ref: ObjectRef, delay: float) -> None:
        """Reconcile ``ref`` again in ``delay`` seconds (its pollingInterval), as KEDA asks a
        failing scaler again at its next poll."""
        if (timer := self._retries.pop(ref, None)) is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._retries[ref] = loop.call_later(delay, self._retry.put_nowait, ref)

    async def _retry_forever(self) -> None:
        while True:
            ref = await self._retry.get()
            self._retries.pop(ref, None)
            tracked = self._tracked.get(ref)
            if tracked is not None and tracked.so is None:
                await guarded(self.reconcile(tracked.document, force=True))

    async def _finalize(self, document: ScaledObjectDocument, tracked: _Tracked | None) -> None:
        """Restore the target when asked, then remove our finalizer.

        What the restore needs is read from the object being deleted (its
        ``restoreToOriginalReplicaCount``, its ``status.originalReplicaCount``), not from
        memory: the leader that finalizes may never have tracked it (a restart, a new
        leader, a leader stopped between the restore and the finalizer's removal). A
        follower keeps the object, so that it finalizes it on taking the lead."""
        ref = document.ref
        if FINALIZER not in document.meta.finalizers:
            self._forget(ref)
            return
        if tracked is None:
            tracked = self._tracked[ref] = _Tracked(document)
        tracked.document = document
        self._retire(tracked)
        if not self.writes(ref):
            return
        so = document.scaled_object
        original = document.status.original_replica_count
        if original is None:  # captured, but the status write did not get through
            original = tracked.original_replicas
        if so is None:
            log.warning(
                "ScaledObject %s is deleted with a spec that cannot be read: its target is "
                "left as it is (%s)",
                ref,
                document.error.reasons if document.error else "no spec",
            )
        elif so.advanced.restore_to_original_replica_count:
            await self._restore(so, original)
        await remove_finalizer(self.kube, SCALED_OBJECTS, document.meta)
        self._forget(ref)

    async def _restore(self, so: ScaledObject, original: int | None) -> None:
        target, ref = so.scale_target_ref, so.ref
        if original is None:
            log.warning(
                "%s is deleted before its original replica count was recorded: %s %s/%s is "
                "left as it is",
                so.subject,
                target.kind,
                ref.namespace,
                target.name,
            )
            return
        with contextlib.suppress(KubeNotFound):
            await self.kube.patch_scale(
                target.api_version, target.kind, ref.namespace, target.name, original
            )
            log.info("restored %s/%s to %d replicas", ref.namespace, target.name, original)

    def _uncount(self, tracked: _Tracked) -> None:
        if tracked.so is not None:
            self.telemetry.register(tracked.so, -1)
            tracked.so = None

    def _retire(self, tracked: _Tracked) -> None:
        """No longer in force: neither polled nor counted (a deleting one stays tracked)."""
        self._uncount(tracked)
        self.poller.remove(tracked.ref)

    def _forget(self, ref: ObjectRef) -> None:
        if (timer := self._retries.pop(ref, None)) is not None:
            timer.cancel()
        self.objects.release(ref)
        tracked = self._tracked.pop(ref, None)
        if tracked is not None:
            self._retire(tracked)

    async def _rebind_forever(self) -> None:
        while True:
            key = await self._changed.get()
            # In force, or not binding yet: its TriggerAuthentication or Secret may come after it.
            sos = [
                so
                for t in self._tracked.values()
                if (so := t.so or t.document.scaled_object) is not None
                and t.document.meta.deletion_timestamp is None
            ]
            for so in self.objects.referencing(key, sos):
                tracked = self._tracked.get(so.ref)
                if tracked is not None:
                    await guarded(self.reconcile(tracked.document, force=True))
            await self.jobs.changed(key)

    # Activate: readings -> /scale and status.

    def _on_reading(self, bound: BoundTrigger, _: Reading) -> None:
        if type(bound.so) is ObjectRef:  # a ScaledJob's triggers have a ScaledJobRef
            self._work.queue(bound.so)

    async def activate(self, ref: ObjectRef) -> None:
        async with self._work.lock(ref):
            with acting_for(ref):
                await self._activate(ref)

    async def _activate(self, ref: ObjectRef) -> None:
        tracked = self._tracked.get(ref)
        if tracked is None or tracked.so is None or not self.writes(ref):
            return
        so, states = tracked.so, self._states(ref)
        if paused(so.meta.annotations) or (not states and so.triggers):
            return
        target, clock = so.scale_target_ref, time.monotonic()
        written, until = tracked.activated or (0, clock)
        # A fallback's values and a settling activation depend on the count as it is now.
        exact = so.fallback is not None or clock < until
        current, read = await self._replicas(tracked, so, clock, fresh=exact)
        if so.fallback is not None:
            set_fallbacks(self.store, so, self.poller.triggers(ref), current)
            states = self._states(ref)  # a failing reading may be in fallback now
        composite = self.store.composite(ref)  # scalingModifiers: it decides activity
        # kube-apiserver's time: lastActiveTime is compared by whichever process reads it next.
        now = self.kube.clock.now()

        def decided(current: int) -> tuple[Decision, bool]:
            settling = 0 < written == current and clock < until
            last = tracked.last_active
            return decide(so, current, states, last, now, composite, settling=settling), settling

        decision, settling = decided(current)
        if not read and decision.replicas not in (None, current):  # never written from memory
            current, read = await self._replicas(tracked, so, clock, fresh=True)
            decision, settling = decided(current)
        tracked.last_active = decision.last_active
        if decision.replicas is not None and decision.replicas != current:
            await self.kube.patch_scale(
                target.api_version, target.kind, ref.namespace, target.name, decision.replicas
            )
            tracked.replicas = (decision.replicas, clock)
            up = decision.replicas > current
            if up and decision.active:  # an activation, or a settling one raised
                until = until if settling else clock + SETTLE_SECONDS
                tracked.activated = (decision.replicas, until)
                asyncio.get_running_loop().call_later(EXTRA_POLL_GAP, self._poll_again, ref)
            reason = "KEDAScaleTargetActivated" if up else "KEDAScaleTargetDeactivated"
            message = (
                f"Scaled {target.kind} {ref.namespace}/{target.name} from "
                f"{current} to {decision.replicas}: {decision.reason}"
            )
            log.info("%s", message, extra={"scaledObject": str(ref)})
            self._tell(Event(tracked.document.reference, reason, message))
        await self._write_status(
            tracked,
            so,
            status.status_patch(
                so,
                problem=None,
                states=states,
                decision=decision,
                original_replicas=tracked.original_replicas,
                composite=composite,
            ),
        )

    async def _replicas(
        self, tracked: _Tracked, so: ScaledObject, clock: float, *, fresh: bool
    ) -> tuple[int, bool]:
        """The target's replicas, and whether they were read now: from its ``/scale``, or
        (not ``fresh``) as read or written here less than REPLICAS_KNOWN_FOR intervals
        ago. A decision to change them is always made again from a fresh read, so only
        "nothing to do" is decided from memory: that spares a GET per reading (the largest
        part of the controller's CPU in py-spy), and a count someone else changed is seen
        within that many intervals instead of one."""
        known = tracked.replicas
        if not fresh and known is not None:
            count, at = known
            if clock - at < so.polling_interval * REPLICAS_KNOWN_FOR:
                return count, False
        target, ref = so.scale_target_ref, tracked.ref
        scale = await self.kube.get_scale(
            target.api_version, target.kind, ref.namespace, target.name
        )
        tracked.replicas = (scale.replicas, clock)
        return scale.replicas, True

    def _tell(self, event: Event) -> None:
        """Record an activation's ``event`` in the background: it waits for the write budget
        behind every /scale and status, and need not hold up the next activation."""
        if len(self._told) >= EVENTS_WAITING:
            log.warning(
                "%s dropped: %d Events already wait for the write budget (--kube-api-qps)",
                event.subject,
                len(self._told),
            )
            return
        task = asyncio.get_running_loop().create_task(guarded(self.kube.create_event(event)))
        self._told.add(task)
        task.add_done_callback(self._told.discard)

    def _poll_again(self, ref: ObjectRef) -> None:
        """A second after an activation (or a raise while settling), poll its queries once
        more: a burst still arriving when a hint woke it is then read whole, and raises it
        again if it asks for more; a poll that finds no more asks for nothing further.
        Counted in ``metrics_adapter_wake_polls_total`` as ``source_type="activation"``."""
        for bound in self.poller.triggers(ref):
            self.poller.poll_now(bound.scaler.query, "activation")

    def _states(self, ref: ObjectRef) -> list[TriggerState]:
        return trigger_states(self.store, ref, self.poller.triggers(ref))

    async def _write_status(
        self, tracked: _Tracked, so: ScaledObject, new: ScaledObjectStatus
    ) -> None:
        if status.unchanged(new, tracked.written, so.cooldown_period):
            return
        if status.only_activity_moved(new, tracked.written) and not self.kube.writes_free():
            return  # other writes wait for the budget: this refresh goes at a quieter poll
        ref = tracked.ref
        await self.kube.patch_scaled_object_status(ref.namespace, ref.name, new.to_json())
        tracked.written = new
