"""Cluster mode: ScaledObjects watched from kube-apiserver become polled triggers, an owned
HPA, a status and Events; the activator takes the 0 <-> 1 step the HPA cannot.

One watch feeds :meth:`Controller.reconcile` (parse, bind, HPA, status) on every spec
change; every new reading queues the object for :meth:`Controller.activate` (read
``/scale``, :func:`~metrics_adapter.control.activator.decide`, patch ``/scale``, write status).
``lastActiveTime`` lives in the status, so a restart never forgets recent activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from metrics_adapter.binding.cluster import ClusterObjects, ObjectKey
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.control.activator import (
    Decision,
    TriggerState,
    decide,
    set_fallbacks,
    trigger_states,
)
from metrics_adapter.control.hpa import build_hpa, needs_update, resource_targets
from metrics_adapter.control.leader import LeaderElector
from metrics_adapter.control.status import status_patch
from metrics_adapter.errors import KubeError, KubeNotFound
from metrics_adapter.kube.client import SCALED_OBJECTS, KubeClient, ObjectReference
from metrics_adapter.kube.watch import watch
from metrics_adapter.kube.wire import parse_time
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.annotations import PAUSED_REPLICAS, paused
from metrics_adapter.model.keda import ObjectRef, ScaledObject, parse_scaled_object
from scalers.errors import ConfigError, Problem, quote

log = logging.getLogger(__name__)

FINALIZER = "finalizer.keda.sh"
COMPONENT = "keda-operator"  # Events' source, as KEDA users filter them


@dataclass
class _Tracked:
    raw: Mapping[str, Any]
    so: ScaledObject | None = None
    problem: str | None = None
    version: tuple[object, ...] = ()
    """Generation, annotations and labels: what a reconcile depends on (metadata changes
    such as pausing do not bump the generation)."""
    last_active: datetime | None = None
    original_replicas: int | None = None
    written: dict[str, Any] = field(default_factory=dict)
    """The last status written, so unchanged status is never patched again."""

    @property
    def ref(self) -> ObjectRef:
        return _ref(self.raw)


class Controller:
    def __init__(
        self,
        kube: KubeClient,
        objects: ClusterObjects,
        poller: Poller,
        store: MetricStore,
        telemetry: Telemetry,
        elector: LeaderElector | None = None,
    ) -> None:
        self.kube, self.objects, self.poller = kube, objects, poller
        self.store, self.telemetry = store, telemetry
        self.elector = elector
        self._took_lead = asyncio.Event()
        if elector is not None:
            elector.listeners.append(lambda leading: self._took_lead.set() if leading else None)
        self.synced = asyncio.Event()
        self._tracked: dict[ObjectRef, _Tracked] = {}
        self._due: asyncio.Queue[ObjectRef] = asyncio.Queue()
        self._pending: set[ObjectRef] = set()
        self._changed: asyncio.Queue[ObjectKey] = asyncio.Queue()
        objects.on_change = self._changed.put_nowait
        poller.listeners.append(self._on_reading)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.objects.run(self.kube))
            await self.objects.synced.wait()
            group.create_task(self._activate_forever())
            group.create_task(self._rebind_forever())
            group.create_task(self._lead_forever())
            async with contextlib.aclosing(watch(self.kube, SCALED_OBJECTS)) as events:
                async for event in events:
                    if event.type == "SYNCED":
                        self.synced.set()
                    elif event.type == "DELETED":
                        self._forget(_ref(event.object))
                    else:
                        await self._guarded(self.reconcile(event.object))

    @property
    def writing(self) -> bool:
        """Only the leader writes (HPA, status, /scale, Events, finalizers); every replica
        watches, binds, polls and serves, since the aggregator may route to any of them."""
        return self.elector is None or self.elector.is_leader

    async def _lead_forever(self) -> None:
        """On taking the lead, reconcile everything again from the status the previous
        leader wrote (lastActiveTime, originalReplicaCount), and evaluate every object."""
        while True:
            await self._took_lead.wait()
            self._took_lead.clear()
            for tracked in list(self._tracked.values()):
                tracked.written = {}
                await self._guarded(self.reconcile(tracked.raw, force=True))

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except KubeError as exc:  # the next event or reading retries; other objects go on
            log.warning("%s", exc)

    # Reconcile: spec -> triggers, HPA, status.

    async def reconcile(self, raw: Mapping[str, Any], *, force: bool = False) -> None:
        ref = _ref(raw)
        meta = raw.get("metadata") or {}
        tracked = self._tracked.get(ref)
        if meta.get("deletionTimestamp"):
            await self._finalize(raw, tracked)
            return
        version = (
            meta.get("generation"),
            _frozen(meta.get("annotations")),
            _frozen(meta.get("labels")),
        )
        if tracked is not None and tracked.version == version and not force:
            tracked.raw = raw  # a status-only update, often our own
            return
        status = raw.get("status") or {}
        if tracked is not None and tracked.so is not None:
            self.telemetry.register(tracked.so, -1)
        tracked = self._tracked[ref] = _Tracked(
            raw,
            version=version,
            last_active=parse_time(status.get("lastActiveTime")),
            original_replicas=status.get("originalReplicaCount"),
            written=tracked.written if tracked else {},
        )
        try:
            so = parse_scaled_object(raw)
            bound = bind(so, self.objects)
            resources = resource_targets(so)
        except ConfigError as exc:
            await self._not_ready(tracked, exc)
            return
        tracked.so = so
        self.telemetry.register(so)
        self.poller.set_triggers(ref, bound)
        if not self.writing:
            return
        await self._ensure_finalizer(raw)
        if tracked.original_replicas is None:
            target = so.scale_target_ref
            scale = await self.kube.get_scale(
                target.api_version, target.kind, ref.namespace, target.name
            )
            tracked.original_replicas = scale.replicas
        if paused(so.meta.annotations):  # KEDA deletes the HPA while paused
            await self.kube.delete_hpa(ref.namespace, so.hpa_name)
            await self._pin(tracked, so)
        else:
            desired = build_hpa(so, bound, resources, uid=so.meta.uid)
            existing = await self.kube.get_hpa(ref.namespace, so.hpa_name)
            if existing is None or needs_update(existing, desired):
                await self.kube.apply_hpa(desired)
                log.info(
                    "HPA %s/%s applied",
                    ref.namespace,
                    so.hpa_name,
                    extra={"scaledObject": str(ref)},
                )
        await self._write_status(tracked, self._states(ref), None)
        self._queue(ref)

    async def _pin(self, tracked: _Tracked, so: ScaledObject) -> None:
        """``paused-replicas: N``: scale the target to N once, then leave it alone."""
        pinned = so.meta.annotations.get(PAUSED_REPLICAS)
        if pinned is None:
            return
        if not pinned.strip().isdigit():
            where = f"metadata.annotations.{PAUSED_REPLICAS}"
            await self._not_ready(
                tracked,
                ConfigError(
                    so.subject, [Problem(where, f"{quote(pinned)} is not a replica count")]
                ),
            )
            return
        target, ref = so.scale_target_ref, tracked.ref
        scale = await self.kube.get_scale(
            target.api_version, target.kind, ref.namespace, target.name
        )
        if scale.replicas != int(pinned):
            await self.kube.patch_scale(
                target.api_version, target.kind, ref.namespace, target.name, int(pinned)
            )
            message = (
                f"Scaled {target.kind} {ref.namespace}/{target.name} from "
                f"{scale.replicas} to {pinned}: {PAUSED_REPLICAS}"
            )
            log.info("%s", message, extra={"scaledObject": str(ref)})
            await self.kube.create_event(
                ObjectReference.of(tracked.raw), "ScaledObjectPaused", message, component=COMPONENT
            )

    async def _not_ready(self, tracked: _Tracked, error: ConfigError) -> None:
        ref = tracked.ref
        problem = error.reasons
        log.error("%s", error)
        self.poller.remove(ref)
        self.store.mark_broken(ref, problem)
        self.telemetry.object_error(ref.namespace, ref.name)
        tracked.problem = problem
        if not self.writing:
            return
        patch = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ScaledObjectCheckFailed",
                    "message": problem,
                }
            ]
        }
        if tracked.written != patch:
            await self.kube.patch_scaled_object_status(ref.namespace, ref.name, patch)
            tracked.written = patch
            await self.kube.create_event(
                ObjectReference.of(tracked.raw),
                "ScaledObjectCheckFailed",
                problem,
                type="Warning",
                component=COMPONENT,
            )

    async def _ensure_finalizer(self, raw: Mapping[str, Any]) -> None:
        finalizers = list((raw.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            ref = _ref(raw)
            await self.kube.patch(
                SCALED_OBJECTS,
                ref.name,
                ref.namespace,
                {"metadata": {"finalizers": [*finalizers, FINALIZER]}},
            )

    async def _finalize(self, raw: Mapping[str, Any], tracked: _Tracked | None) -> None:
        ref = _ref(raw)
        finalizers = list((raw.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers or not self.writing:
            self._forget(ref)  # the leader restores and removes the finalizer
            return
        so, original = (tracked.so, tracked.original_replicas) if tracked else (None, None)
        if so and so.advanced.restore_to_original_replica_count and original is not None:
            target = so.scale_target_ref
            with contextlib.suppress(KubeNotFound):
                await self.kube.patch_scale(
                    target.api_version, target.kind, ref.namespace, target.name, original
                )
                log.info("restored %s/%s to %d replicas", ref.namespace, target.name, original)
        self._forget(ref)
        remaining = [f for f in finalizers if f != FINALIZER]
        with contextlib.suppress(KubeNotFound):
            await self.kube.patch(
                SCALED_OBJECTS, ref.name, ref.namespace, {"metadata": {"finalizers": remaining}}
            )

    def _forget(self, ref: ObjectRef) -> None:
        tracked = self._tracked.pop(ref, None)
        if tracked is not None and tracked.so is not None:
            self.telemetry.register(tracked.so, -1)
        self.poller.remove(ref)

    async def _rebind_forever(self) -> None:
        while True:
            key = await self._changed.get()
            sos = [t.so for t in self._tracked.values() if t.so is not None]
            for so in self.objects.referencing(key, sos):
                tracked = self._tracked.get(so.ref)
                if tracked is not None:
                    await self._guarded(self.reconcile(tracked.raw, force=True))

    # Activate: readings -> /scale and status.

    def _on_reading(self, bound: BoundTrigger, _: Reading) -> None:
        self._queue(bound.so)

    def _queue(self, ref: ObjectRef) -> None:
        if ref not in self._pending:
            self._pending.add(ref)
            self._due.put_nowait(ref)

    async def _activate_forever(self) -> None:
        while True:
            ref = await self._due.get()
            self._pending.discard(ref)
            await self._guarded(self.activate(ref))

    async def activate(self, ref: ObjectRef) -> None:
        tracked = self._tracked.get(ref)
        if tracked is None or tracked.so is None or not self.writing:
            return
        so, states = tracked.so, self._states(ref)
        if paused(so.meta.annotations) or (not states and so.triggers):
            return
        target = so.scale_target_ref
        scale = await self.kube.get_scale(
            target.api_version, target.kind, ref.namespace, target.name
        )
        if so.fallback is not None:
            set_fallbacks(self.store, so, self.poller.triggers(ref), scale.replicas)
            states = self._states(ref)  # a failing reading may be in fallback now
        decision = decide(so, scale.replicas, states, tracked.last_active, datetime.now(UTC))
        tracked.last_active = decision.last_active
        if decision.replicas is not None and decision.replicas != scale.replicas:
            await self.kube.patch_scale(
                target.api_version, target.kind, ref.namespace, target.name, decision.replicas
            )
            up = decision.replicas > scale.replicas
            reason = "KEDAScaleTargetActivated" if up else "KEDAScaleTargetDeactivated"
            message = (
                f"Scaled {target.kind} {ref.namespace}/{target.name} from "
                f"{scale.replicas} to {decision.replicas}: {decision.reason}"
            )
            log.info("%s", message, extra={"scaledObject": str(ref)})
            await self.kube.create_event(
                ObjectReference.of(tracked.raw), reason, message, component=COMPONENT
            )
        await self._write_status(tracked, states, decision)

    def _states(self, ref: ObjectRef) -> list[TriggerState]:
        return trigger_states(self.store, ref, self.poller.triggers(ref))

    async def _write_status(
        self,
        tracked: _Tracked,
        states: list[TriggerState],
        decision: Decision | None,
    ) -> None:
        assert tracked.so is not None
        if decision is None and tracked.last_active is not None:
            decision = Decision(None, None, "not evaluated yet", tracked.last_active)
        status = status_patch(
            tracked.so,
            problem=None,
            states=states,
            decision=decision,
            original_replicas=tracked.original_replicas,
        )["status"]
        if decision is None:
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Active"]
        if _same(status, tracked.written, tracked.so.cooldown_period):
            return
        ref = tracked.ref
        await self.kube.patch_scaled_object_status(ref.namespace, ref.name, status)
        tracked.written = status


def _same(status: Mapping[str, Any], written: Mapping[str, Any], cooldown: int) -> bool:
    """Unchanged but for a ``lastActiveTime`` that moved less than a tenth of the cooldown
    (at most 30 s): KEDA writes it every poll, which is what floods the API server."""
    if {k: v for k, v in status.items() if k != "lastActiveTime"} != {
        k: v for k, v in written.items() if k != "lastActiveTime"
    }:
        return False
    new, old = parse_time(status.get("lastActiveTime")), parse_time(written.get("lastActiveTime"))
    if new is None or old is None:
        return new == old
    return (new - old).total_seconds() < max(1.0, min(30.0, cooldown / 10))


def _frozen(mapping: object) -> frozenset[tuple[str, str]]:
    return frozenset(mapping.items()) if isinstance(mapping, Mapping) else frozenset()


def _ref(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(str(meta.get("namespace") or "default"), str(meta.get("name")))
