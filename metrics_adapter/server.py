"""Assemble and run the process: load objects, poll, serve the API over TLS and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

from metrics_adapter.admission.cluster import KubeClusterView
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.auth.gate import Gate, build_gate
from metrics_adapter.api.certificate import Task, serving_tls
from metrics_adapter.api.request_metrics import RequestMetrics
from metrics_adapter.api.tls import ClientCertProtocol, ServingTLS
from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.binding.files import Inventory, load_directory
from metrics_adapter.binding.triggers import BoundTrigger, bind, bind_all
from metrics_adapter.config.settings import Settings
from metrics_adapter.control.activator import DryRunActivator, set_fallbacks, trigger_states
from metrics_adapter.control.controller import Controller
from metrics_adapter.control.job_dry_run import DryRunJobs
from metrics_adapter.control.leader import LeaderElector
from metrics_adapter.errors import StartupError
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.model.scaled_job import ScaledJobRef
from scalers.clients import Clients
from scalers.errors import ConfigError

log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its caller: two servers share one
    process (and tests run theirs inside pytest's)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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


def build_poller(settings: Settings, store: MetricStore, telemetry: Telemetry) -> Poller:
    """The poller of either mode: every upstream request within the scaler timeout."""
    return Poller(
        store, Clients(settings.scaler_timeout), telemetry, timeout=settings.scaler_timeout
    )


def build(
    settings: Settings, *, dry_run: bool = True, inventory: Inventory | None = None
) -> Adapter:
    """Bind the triggers of ``inventory``'s ScaledObjects and ScaledJobs (default: the
    objects of standalone mode, loaded from ``settings.scaledobjects``) to the poller; with
    ``dry_run`` the activator, and for ScaledJobs the Job executor, logs what it would do
    after each poll. ``explain --namespace`` hands in objects listed from a cluster."""
    if inventory is None:
        assert settings.scaledobjects is not None, "standalone mode reads a directory"
        inventory = load_directory(settings.scaledobjects, settings.cluster_object_namespace)
    telemetry = Telemetry()
    store = MetricStore()
    poller = build_poller(settings, store, telemetry)

    def not_ready(ref: ObjectRef, error: ConfigError) -> None:
        store.mark_broken(ref, error.reasons)
        telemetry.object_error(ref)

    for ref, error in inventory.broken.items():
        not_ready(ref, error)  # already logged by the loader, with its file
    for so in inventory.scaled_objects.values():
        try:
            binding = bind_all(so, inventory)
        except ConfigError as exc:
            log.error("%s", exc)
            not_ready(so.ref, exc)
            continue
        poller.set_triggers(so.ref, binding.triggers, binding.composite)
        if so.fallback is not None:
            set_fallbacks(store, so, binding.triggers, inventory.replicas(so))
    for sj in inventory.scaled_jobs.values():
        try:
            poller.set_triggers(sj.ref, bind(sj, inventory))
        except ConfigError as exc:
            log.error("%s", exc)
            not_ready(sj.ref, exc)
    for so in inventory.scaled_objects.values():
        telemetry.register(so)
    for sj in inventory.scaled_jobs.values():
        telemetry.register(sj)
    health = Health(loaded=True, poller_running=lambda: poller.running)
    if dry_run:
        _attach_dry_run(poller, inventory)
    objects = store.objects()
    jobs = sum(1 for ref in objects if isinstance(ref, ScaledJobRef))
    broken = sum(1 for ref in objects if store.broken_reason(ref) is not None)
    log.info(
        "loaded %d ScaledObjects and %d ScaledJobs (%d not ready), %d distinct queries",
        len(objects) - jobs,
        jobs,
        broken,
        poller.query_count,
    )
    admission = AdmissionWebhook(telemetry)
    return Adapter(settings, telemetry, store, poller, health, inventory, admission)


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
    """The API on ``tls``, behind ``gate``; and ``/metrics`` in plain HTTP on its own port."""
    s = adapter.settings
    routes = create_app(adapter.store, adapter.health, adapter.admission)
    app = RequestMetrics(gate.wrap(routes), adapter.telemetry)
    api = server_config(
        app,
        host=s.listen_address,
        port=s.secure_port,
        http=ClientCertProtocol,
        ws="none",  # no WebSocket route: an upgrade must never pass the gate as non-HTTP
        server_header=False,
        timeout_keep_alive=90,
        h11_max_incomplete_event_size=65536,
    )
    api.load()
    api.ssl = tls.context  # ours, live: certificates and client CAs change in place
    servers: list[uvicorn.Server] = [Server(api)]
    if s.metrics_port:
        metrics = server_config(
            make_asgi_app(adapter.telemetry.registry), host=s.listen_address, port=s.metrics_port
        )
        servers.append(Server(metrics))
    return servers


async def _cluster(settings: Settings) -> tuple[Adapter, KubeClient, Controller]:
    """Cluster mode: the controller feeds the poller from watched ScaledObjects."""
    kube = await KubeClient.connect(None if settings.in_cluster else settings.kubeconfig)
    telemetry, store = Telemetry(), MetricStore()
    poller = build_poller(settings, store, telemetry)
    elector = LeaderElector(kube, own_namespace(settings)) if settings.leader_elect else None
    controller = Controller(
        kube,
        ClusterObjects(settings.cluster_object_namespace),
        poller,
        store,
        telemetry,
        elector,
    )
    health = Health(loaded=False, poller_running=lambda: poller.running)
    admission = AdmissionWebhook(
        telemetry, cluster=KubeClusterView(kube), objects=controller.objects
    )
    adapter = Adapter(settings, telemetry, store, poller, health, None, admission)
    return adapter, kube, controller


def own_namespace(settings: Settings) -> str:
    """The Pod's own namespace in a cluster (where its Lease and certificate Secret are),
    else the cluster object namespace."""
    own = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if settings.in_cluster and own.is_file():
        return own.read_text().strip()
    return settings.cluster_object_namespace


async def _ready_when_synced(controller: Controller, health: Health) -> None:
    await controller.synced.wait()
    health.loaded = True
    log.info("every ScaledObject listed: ready")


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
        adapter = build(settings)
        if settings.authentication_kubeconfig:
            kube = await KubeClient.connect(settings.authentication_kubeconfig)
    else:
        adapter, kube, controller = await _cluster(settings)
    try:
        tls, gate, upkeep = await _secure(settings, kube, adapter.telemetry)
        await _run(adapter, controller, uvicorn_servers(adapter, tls, gate), upkeep)
    finally:
        await adapter.poller.clients.aclose()
        if kube is not None:
            await kube.close()


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
            if controller is not None:
                background.append(group.create_task(controller.run()))
                if controller.elector is not None:  # last: it releases after writes stop
                    background.append(group.create_task(controller.elector.run()))
                background.append(group.create_task(_ready_when_synced(controller, adapter.health)))
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
