"""Assemble and run the process: load objects, poll, serve the API over TLS and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

from metrics_adapter.admission.cluster import KubeClusterView
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.auth.gate import Gate, build_gate
from metrics_adapter.api.certificate import Task, serving_tls
from metrics_adapter.api.forward import Forwarder, Peer, Route
from metrics_adapter.api.guard import Guard, InflightLimit, Limits, guarded, within_descriptors
from metrics_adapter.api.request_metrics import RequestMetrics
from metrics_adapter.api.tls import ServingTLS
from metrics_adapter.binding.auth_sources.base import ReadContext, SourceRead
from metrics_adapter.binding.auth_sources.cache import SETTLE_WITHIN, SourceCache
from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.binding.files import Inventory, load_directory
from metrics_adapter.binding.triggers import Binding, BoundTrigger, bind_all, settle_binding
from metrics_adapter.config.settings import Settings
from metrics_adapter.control.activator import DryRunActivator, set_fallbacks, trigger_states
from metrics_adapter.control.controller import Controller
from metrics_adapter.control.job_dry_run import DryRunJobs
from metrics_adapter.control.leader import LeaderElector
from metrics_adapter.control.ownership import Everything, Leadership, Ownership, fence
from metrics_adapter.control.shards import Shards, default_address
from metrics_adapter.errors import StartupError
from metrics_adapter.kube.budget import WriteBudget
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.pods import KubePods
from metrics_adapter.kube.scope import Scope
from metrics_adapter.metrics.hints import WakeHints
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef, ScaledObject
from metrics_adapter.model.scaled_job import Scalable, ScaledJobRef
from scalers.base import needs_settling
from scalers.clients import Clients
from scalers.errors import ConfigError, ScalerError

log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its caller: two servers share one
    process (and tests run theirs inside pytest's); and says what it serves, TLS included
    where the guard makes it (uvicorn, listening in plain TCP, would say http)."""

    def __init__(self, config: uvicorn.Config, scheme: str | None = None) -> None:
        super().__init__(config)
        self._scheme = scheme

    @property
    def scheme(self) -> str:
        """``https`` when the guard makes TLS, or uvicorn does (its config loaded)."""
        return self._scheme or ("https" if self.config.ssl is not None else "http")

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        for listener in listeners:
            host, port = listener.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("serving %s://%s:%d", self.scheme, shown, port)


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """What every server of ours shares: our logging, no access log, no lifespan."""
    return uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", **options)


@dataclass
class Adapter:
    """The running parts, exposed for tests and `explain`."""

    settings: Settings
    telemetry: Telemetry
    store: MetricStore
    poller: Poller
    health: Health
    inventory: Inventory | None
    """The objects of standalone mode; ``None`` in a cluster."""
    admission: AdmissionWebhook | None = None
    """The validating webhook served beside the API: in a cluster, checking conflicts and
    binding against the cluster's objects; standalone, the object's own checks only."""
    sources: SourceCache | None = None
    """Reads of outside authentication sources (filePath, bound tokens, Vault, ...)."""
    hints: WakeHints | None = None
    """The wake-hint watchers (``--wake-hints``)."""
    forward: tuple[Route, Forwarder] | None = None
    """With --shards: reads of objects another replica owns go to it."""
    unsettled: dict[ObjectRef | ScaledJobRef, Scalable] = field(default_factory=dict)
    """Standalone objects whose external triggers could not say what their metric is:
    bound again every pollingInterval by :func:`resettle_standalone`."""


def build_poller(
    settings: Settings,
    store: MetricStore,
    telemetry: Telemetry,
    clients: Clients | None = None,
    *,
    rng: random.Random | None = None,
) -> Poller:
    """The poller of either mode: every upstream request within the scaler timeout; ``rng``
    places the polls in their interval (random unless a test fixes it)."""
    clients = clients or Clients(settings.scaler_timeout)
    return Poller(
        store,
        clients,
        telemetry,
        timeout=settings.scaler_timeout,
        stale_intervals=settings.stale_intervals,
        rng=rng,
    )


def build_sources(settings: Settings, clients: Clients, kube: KubeClient | None) -> SourceCache:
    """The cache of outside authentication sources, on the poller's clients."""
    context = ReadContext(
        clients,
        kube,
        file_root=settings.filepath_auth_root_path,
        bound_token_expiry=int(settings.bound_service_account_token_expiry),
    )
    return SourceCache(context)


def build(
    settings: Settings,
    *,
    dry_run: bool = True,
    inventory: Inventory | None = None,
    clients: Clients | None = None,
) -> Adapter:
    """Bind the triggers of ``inventory``'s ScaledObjects and ScaledJobs (default: the
    objects of standalone mode, loaded from ``settings.scaledobjects``) to the poller; with
    ``dry_run`` the activator, and for ScaledJobs the Job executor, logs what it would do
    after each poll. ``explain --namespace`` hands in objects listed from a cluster. What
    outside sources ``inventory.sources`` has read is bound; see :func:`settle_standalone`."""
    if inventory is None:
        assert settings.scaledobjects is not None, "standalone mode reads a directory"
        inventory = load_directory(settings.scaledobjects, settings.cluster_object_namespace)
    telemetry = Telemetry()
    store = MetricStore()
    poller = build_poller(settings, store, telemetry, clients)
    for ref, error in inventory.broken.items():
        store.mark_broken(ref, error.reasons)  # already logged by the loader, with its file
        telemetry.object_error(ref)
    health = Health(loaded=True, poller_running=lambda: poller.running)
    adapter = Adapter(settings, telemetry, store, poller, health, inventory)
    adapter.sources = inventory.sources
    objects: list[Scalable] = [*inventory.scaled_objects.values(), *inventory.scaled_jobs.values()]
    for obj in objects:
        bind_standalone(adapter, obj)
        telemetry.register(obj)
    if dry_run:
        _attach_dry_run(poller, inventory)
    refs = store.objects()
    jobs = sum(1 for ref in refs if isinstance(ref, ScaledJobRef))
    broken = sum(1 for ref in refs if store.broken_reason(ref) is not None)
    log.info(
        "loaded %d ScaledObjects and %d ScaledJobs (%d not ready), %d distinct queries",
        len(refs) - jobs,
        jobs,
        broken,
        poller.query_count,
    )
    adapter.admission = AdmissionWebhook(telemetry)
    if settings.wake_hints:
        adapter.hints = WakeHints(poller, telemetry)
    return adapter


def bind_standalone(adapter: Adapter, obj: Scalable) -> Binding | None:
    """(Re)bind one object of standalone mode: polled, or not ready with every problem.
    Its external triggers, if any, are unsettled until :func:`settle_standalone_triggers`."""
    inventory = adapter.inventory
    assert inventory is not None
    try:
        binding = bind_all(obj, inventory)
    except ConfigError as exc:
        _broken(adapter, obj, exc.reasons)
        log.error("%s", exc)
        return None
    for warning in binding.warnings:  # the parser's were logged by the loader
        log.warning("%s: %s", obj.subject, warning)
    _poll(adapter, obj, binding)
    return binding


async def rebind_standalone(adapter: Adapter, obj: Scalable) -> None:
    """:func:`bind_standalone`, then :func:`settle_standalone_triggers`."""
    binding = bind_standalone(adapter, obj)
    if binding is not None:
        await settle_standalone_triggers(adapter, obj, binding)


async def settle_standalone_triggers(adapter: Adapter, obj: Scalable, binding: Binding) -> None:
    """Ask the triggers whose metric name and target come from their source (external),
    once per bind; when one cannot answer the object is not ready, and bound again later
    (:func:`resettle_standalone`)."""
    if not any(needs_settling(b.scaler) for b in binding.triggers):
        adapter.unsettled.pop(obj.ref, None)
        return
    try:
        settled = await settle_binding(binding, adapter.poller.clients)
    except ScalerError as exc:
        log.error("%s: %s", obj.subject, exc)
        _broken(adapter, obj, str(exc))
        adapter.unsettled[obj.ref] = obj
        return
    adapter.unsettled.pop(obj.ref, None)
    _poll(adapter, obj, settled)


RESETTLE_IDLE = 30.0
"""Seconds between checks for standalone objects to bind again when none is waiting."""


async def resettle_standalone(adapter: Adapter) -> None:
    """Standalone: bind again, each pollingInterval, the objects whose external triggers
    could not say what their metric is (the scaler was down when they were bound)."""
    while True:
        waits = [obj.polling_interval for obj in adapter.unsettled.values()]
        await asyncio.sleep(min(waits, default=RESETTLE_IDLE))
        for obj in list(adapter.unsettled.values()):
            await rebind_standalone(adapter, obj)


def _broken(adapter: Adapter, obj: Scalable, reason: str) -> None:
    adapter.poller.remove(obj.ref)
    adapter.store.mark_broken(obj.ref, reason)
    adapter.telemetry.object_error(obj.ref)


def _poll(adapter: Adapter, obj: Scalable, binding: Binding) -> None:
    inventory, poller = adapter.inventory, adapter.poller
    assert inventory is not None
    if isinstance(obj, ScaledObject):
        poller.set_triggers(obj.ref, binding.triggers, binding.composite)
        if obj.fallback is not None:
            set_fallbacks(adapter.store, obj, binding.triggers, inventory.replicas(obj))
    else:
        poller.set_triggers(obj.ref, binding.triggers)


async def settle_standalone(inventory: Inventory, within: float = SETTLE_WITHIN) -> None:
    """Read what every object of ``inventory`` needs from outside sources before it is
    bound, all at once, each waited for at most ``within`` seconds."""
    objects: list[Scalable] = [*inventory.scaled_objects.values(), *inventory.scaled_jobs.values()]
    await asyncio.gather(*(inventory.settle(obj, within) for obj in objects))


async def rebind_on_source_change(adapter: Adapter) -> None:
    """Standalone: bind again the objects reading a source whose values changed."""
    inventory, sources = adapter.inventory, adapter.sources
    if inventory is None or sources is None:
        return
    changed: asyncio.Queue[SourceRead] = asyncio.Queue()
    sources.on_change = changed.put_nowait
    while True:
        read = await changed.get()
        for owner in sources.owners(read):
            obj: Scalable | None = None
            if isinstance(owner, ScaledJobRef):
                obj = inventory.scaled_jobs.get(owner)
            elif isinstance(owner, ObjectRef):
                obj = inventory.scaled_objects.get(owner)
            if obj is not None:
                log.info("%s changed: binding %s again", read.describe(), obj.subject)
                await rebind_standalone(adapter, obj)


def _attach_dry_run(poller: Poller, inventory: Inventory) -> None:
    """After each reading, what the activator (a ScaledObject's trigger) or KEDA's Job
    executor (a ScaledJob's: :class:`DryRunJobs`, which counts no running Jobs) would do."""
    activator = DryRunActivator(
        {ref: inventory.replicas(so) for ref, so in inventory.scaled_objects.items()}
    )
    jobs = DryRunJobs()

    def on_reading(bound: BoundTrigger, _: Reading) -> None:
        states = trigger_states(poller.store, bound.so, poller.triggers(bound.so))
        now = datetime.now(UTC)
        if isinstance(bound.so, ScaledJobRef):
            jobs.evaluate(inventory.scaled_jobs[bound.so], states, now)
        else:
            so, composite = inventory.scaled_objects[bound.so], poller.store.composite(bound.so)
            activator.evaluate(so, states, now, composite)

    poller.listeners.append(on_reading)


def uvicorn_servers(adapter: Adapter, tls: ServingTLS, gate: Gate) -> list[uvicorn.Server]:
    """The API on ``tls``, behind ``gate``; and ``/metrics`` on its own port: plain HTTP, or
    with ``--metrics-secure`` on ``tls`` behind ``gate`` too."""
    s = adapter.settings
    telemetry, limits = adapter.telemetry, within_descriptors(Limits.of(s))
    routes = create_app(adapter.store, adapter.health, adapter.admission, adapter.forward)
    limited = InflightLimit(gate.wrap(routes), limits.max_requests_inflight, telemetry)
    api = server_config(
        RequestMetrics(limited, telemetry),
        host=s.listen_address,
        port=s.secure_port,
        # TLS is the guard's, per connection, on ours, live context (certificates and client
        # CAs change in place): uvicorn listens in plain TCP.
        http=guarded(Guard(limits, telemetry), tls.context),
        ws="none",  # no WebSocket route: an upgrade must never pass the gate as non-HTTP
        server_header=False,
        timeout_keep_alive=90,
        h11_max_incomplete_event_size=65536,
    )
    servers: list[uvicorn.Server] = [Server(api, scheme="https")]
    if not s.metrics_port:
        return servers
    exporter = make_asgi_app(telemetry.registry)
    if not s.metrics_secure:
        servers.append(Server(server_config(exporter, host=s.listen_address, port=s.metrics_port)))
        return servers
    # The same gate and guard as the API (its own bounds, not counted in the API's series):
    # callers need get on the non-resource URL /metrics, as controller-runtime asks.
    secure = server_config(
        gate.wrap(exporter),
        host=s.listen_address,
        port=s.metrics_port,
        http=guarded(Guard(limits), tls.context),
        ws="none",
        server_header=False,
    )
    servers.append(Server(secure, scheme="https"))
    return servers


async def _cluster(settings: Settings) -> tuple[Adapter, KubeClient, Controller]:
    """Cluster mode: the controller feeds the poller from watched ScaledObjects."""
    kube = await KubeClient.connect(None if settings.in_cluster else settings.kubeconfig)
    telemetry, store = Telemetry(), MetricStore()
    kube.observer = telemetry
    kube.writes = WriteBudget(settings.kube_api_qps, settings.kube_api_burst)
    clients = Clients(settings.scaler_timeout, pods=KubePods(kube))  # kubernetes-workload
    poller = build_poller(settings, store, telemetry, clients)
    ownership = _ownership(settings, kube, telemetry)
    kube.fence = fence(ownership)
    sources = build_sources(settings, poller.clients, kube)
    scope = Scope(
        settings.watch_namespace,
        settings.cluster_object_namespace,
        settings.restrict_secret_access,
    )
    controller = Controller(
        kube,
        ClusterObjects(settings.cluster_object_namespace, sources=sources, scope=scope),
        poller,
        store,
        telemetry,
        ownership,
    )
    for held, writes in (("polled", False), ("written", True)):
        telemetry.shard_objects.labels(held).set_function(partial(controller.holding, writes))
    health = Health(loaded=False, poller_running=lambda: poller.running)
    admission = AdmissionWebhook(
        telemetry, cluster=KubeClusterView(kube), objects=controller.objects
    )
    adapter = Adapter(settings, telemetry, store, poller, health, None, admission, sources)
    if settings.wake_hints:  # only the replica that activates watches
        hints = adapter.hints = WakeHints(poller, telemetry, acting=lambda: ownership.acting)
        ownership.listeners.append(hints.reconcile_all)
    return adapter, kube, controller


def _ownership(settings: Settings, kube: KubeClient, telemetry: Telemetry) -> Ownership:
    """Who polls and writes for what: shards, one leader, or this process alone."""
    namespace = own_namespace(settings)
    if settings.shards:
        address = settings.shard_address or default_address(settings.secure_port)
        duration = settings.shard_lease_duration
        shards = Shards(
            kube,
            namespace,
            address,
            lease_duration=duration,
            renew_deadline=duration * 2 / 3,
            retry_period=duration * 2 / 15,
        )
        telemetry.shard_members.set_function(lambda: len(shards.members))
        return shards
    if not settings.leader_elect:
        return Everything()
    elector = LeaderElector(kube, namespace)
    lease = elector.name
    telemetry.leader.labels(lease).set(0)
    elector.listeners.append(lambda leading: telemetry.leadership(lease, leading))
    return Leadership(elector)


@dataclass(frozen=True)
class ShardRoute:
    """Reads of an object go to the member that polls it, where it says it answers."""

    shards: Shards
    controller: Controller

    def owner(self, namespace: str, name: str) -> Peer | None:
        found = self.shards.owner(namespace, name)
        if found is None or not found[1]:  # ours, or a member that gave no address
            return None
        return Peer(*found)

    def watched(self, namespace: str, name: str) -> bool:
        # Before its first list, a replica that has just joined cannot tell "gone" from "not
        # listed yet", and the others already send it the reads of its share.
        synced = self.controller.synced.is_set()
        return not synced or self.controller.watches(ObjectRef(namespace, name))


def _forwarding(
    controller: Controller,
    shards: Shards,
    kube: KubeClient | None,
    tls: ServingTLS,
    telemetry: Telemetry,
) -> tuple[Route, Forwarder]:
    """The hop to the owner: TLS anchored on our own serving certificate (every replica
    serves the same; a rotated one is trusted from the next hop), authenticated as our
    ServiceAccount (the owner's gate asks kube-apiserver who that is and whether it may
    read external metrics)."""
    assert tls.pair is not None and kube is not None, "serving, in cluster mode"
    forwarder = Forwarder(
        shards.identity,
        lambda: tls.pair.cert_pem if tls.pair else b"",
        authorization=kube.api.connection.token,
        observer=telemetry,
    )
    return ShardRoute(shards, controller), forwarder


def own_namespace(settings: Settings) -> str:
    """The Pod's own namespace in a cluster (where its Lease and certificate Secret are),
    else the cluster object namespace."""
    own = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if settings.in_cluster and own.is_file():
        return own.read_text().strip()
    return settings.cluster_object_namespace


async def _ready_when_synced(controller: Controller, adapter: Adapter) -> None:
    """Ready once every object is listed and each of their queries polled once (bounded):
    a replica that joins a rolling update takes reads only when it has values to give."""
    await controller.synced.wait()
    unpolled = await adapter.poller.first_polls()
    adapter.health.loaded = True
    if unpolled:
        log.warning(
            "every ScaledObject listed: ready, %d of %d queries not polled yet (polls are "
            "behind: reads of their metrics answer 'no value yet' until they are)",
            unpolled,
            adapter.poller.query_count,
        )
    else:
        log.info("every ScaledObject listed and polled once: ready")


async def _secure(
    settings: Settings, kube: KubeClient | None, telemetry: Telemetry
) -> tuple[ServingTLS, Gate, list[Task]]:
    """The serving certificate and the gate in front of the API, and what keeps them current."""
    try:
        tls, tasks = await serving_tls(settings, kube, own_namespace(settings))
        gate = await build_gate(settings, kube, tls, telemetry)
    except (ValueError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    return tls, gate, [*tasks, gate.run]


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    kube: KubeClient | None = None
    controller: Controller | None = None
    if settings.standalone:
        if settings.authentication_kubeconfig:
            kube = await KubeClient.connect(settings.authentication_kubeconfig)
        adapter = await build_standalone(settings, kube)
    else:
        adapter, kube, controller = await _cluster(settings)
    try:
        tls, gate, upkeep = await _secure(settings, kube, adapter.telemetry)
        if controller is not None and isinstance(controller.ownership, Shards):
            adapter.forward = _forwarding(
                controller, controller.ownership, kube, tls, adapter.telemetry
            )
        if settings.standalone:
            upkeep.append(lambda: rebind_on_source_change(adapter))
            upkeep.append(lambda: resettle_standalone(adapter))
        await _run(adapter, controller, uvicorn_servers(adapter, tls, gate), upkeep)
    finally:
        if adapter.forward is not None:
            await adapter.forward[1].aclose()
        if adapter.sources is not None:
            await adapter.sources.aclose()
        await adapter.poller.clients.aclose()
        if kube is not None:
            await kube.close()


async def build_standalone(settings: Settings, kube: KubeClient | None = None) -> Adapter:
    """Standalone mode's objects, with what they need from outside sources read first, so
    that their first bind has it; ``kube`` (``--authentication-kubeconfig``) requests the
    bound ServiceAccount tokens."""
    assert settings.scaledobjects is not None, "standalone mode reads a directory"
    inventory = load_directory(settings.scaledobjects, settings.cluster_object_namespace)
    return await build_settled(settings, inventory, kube)


async def build_settled(
    settings: Settings,
    inventory: Inventory,
    kube: KubeClient | None = None,
    *,
    dry_run: bool = True,
    count_pods: bool = False,
) -> Adapter:
    """:func:`build` of ``inventory``, after reading what its objects need from outside
    sources (Vault, bound tokens with ``kube``, files, ...), each read waited for at most
    the settle bound; one that fails is reported on its objects, by name. ``count_pods``
    lets kubernetes-workload triggers list pods through ``kube`` (``explain --poll`` on a
    cluster); standalone mode, whose ``kube`` only requests tokens, has no pods to count."""
    pods = KubePods(kube) if count_pods and kube is not None else None
    clients = Clients(settings.scaler_timeout, pods=pods)
    inventory.sources = build_sources(settings, clients, kube)
    await settle_standalone(inventory)
    adapter = build(settings, dry_run=dry_run, inventory=inventory, clients=clients)
    objects: list[Scalable] = [*inventory.scaled_objects.values(), *inventory.scaled_jobs.values()]
    for obj in objects:
        triggers = adapter.poller.triggers(obj.ref)
        if any(needs_settling(b.scaler) for b in triggers):
            await rebind_standalone(adapter, obj)  # external triggers ask for their metric
    return adapter


async def _run(
    adapter: Adapter,
    controller: Controller | None,
    servers: list[uvicorn.Server],
    upkeep: list[Task],
) -> None:
    settings = adapter.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "serving external.metrics.k8s.io on https://%s:%d",
        settings.listen_address,
        settings.secure_port,
    )
    try:
        async with asyncio.TaskGroup() as group:
            background = [group.create_task(adapter.poller.run())]
            background += [group.create_task(task()) for task in upkeep]
            if adapter.hints is not None:
                background.append(group.create_task(adapter.hints.run()))
            if controller is not None:
                background.append(group.create_task(controller.run()))
                # Last: it releases its Lease after the writes stopped.
                background.append(group.create_task(controller.ownership.run()))
                background.append(group.create_task(_ready_when_synced(controller, adapter)))
            serving = [group.create_task(server.serve()) for server in servers]
            stopping = group.create_task(stop.wait())
            await asyncio.wait([stopping, *serving], return_when=asyncio.FIRST_COMPLETED)
            for server in servers:
                server.should_exit = True
            stopping.cancel()
            await asyncio.wait(serving)
            for task in background:  # in order, so the Lease is released after the writers stop
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
