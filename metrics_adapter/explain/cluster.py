"""``metrics-adapter explain --namespace NS``: the report of ``explain PATH`` for the objects
of a cluster namespace.

The objects are listed with the caller's own credentials and bound by the same code as a
directory's. Each value of a ScaledObject is read where the HPA reads it, through the
aggregated API, so the report shows what the adapter in the cluster serves (an error Status
from it is the trigger's error) even when this machine cannot reach the event sources;
``--poll`` asks the sources from here instead. A list the caller may not read (403:
Secrets, often) is a warning, not a failure: the triggers that needed it show the binding
error.

A ScaledJob's values are always polled from here (:func:`cluster_readings`): the adapter
serves no ScaledJob metric (KEDA's metrics server serves none either; its operator reads
them itself), and the only other copy, the adapter's ``keda_scaler_metrics_value`` series,
is behind a port that kube-apiserver proxies only for a caller allowed ``services/proxy``
in the adapter's namespace, where a reader of one namespace usually is not. So a source this
machine cannot reach is that trigger's error, and the Jobs are computed without it, as KEDA
computes them without a failing trigger. The Jobs and their Pods are listed by the label
``scaledjob.keda.sh/name`` and counted as KEDA counts them (:func:`count`).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from metrics_adapter.binding.files import Inventory, load_documents
from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.config.settings import DEFAULT_CLUSTER_OBJECT_NAMESPACE, Settings
from metrics_adapter.control.job_manifest import JOB_LABEL
from metrics_adapter.control.job_scaling import count_jobs
from metrics_adapter.control.targets import with_target_version
from metrics_adapter.errors import KubeError
from metrics_adapter.explain.jobs import JobsSeen, job_reports
from metrics_adapter.explain.local import Observed, Report, poll, read, reports
from metrics_adapter.kube.autoscaling import HorizontalPodAutoscalerStatus
from metrics_adapter.kube.batch import Job, Pod
from metrics_adapter.kube.client import (
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    JOBS,
    PODS,
    SCALED_JOBS,
    SCALED_OBJECTS,
    SECRETS,
    SERVICE_ACCOUNTS,
    STATEFULSETS,
    TRIGGER_AUTHENTICATIONS,
    KubeClient,
    Resource,
)
from metrics_adapter.kube.wire import GROUP_VERSION, SCALED_OBJECT_LABEL, parse_time
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.model.keda import ObjectRef, ScaledObject
from metrics_adapter.model.scaled_job import ScaledJob, ScaledJobRef
from metrics_adapter.server import Adapter, build_settled
from scalers.base import is_active
from scalers.clients import DEFAULT_TIMEOUT
from scalers.errors import ConfigError
from scalers.quantity import parse_quantity

CONCURRENCY = 16
"""Requests in flight at once: a namespace of thousands of objects must not queue so many
on the connection pool that the last ones time out waiting."""
T = TypeVar("T")


def default_kubeconfig() -> Path:
    """``$KUBECONFIG`` (its first existing file when it lists several), else
    ``~/.kube/config``: the file kubectl would load."""
    listed = os.environ.get("KUBECONFIG", "~/.kube/config")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return next((p for p in paths if p.is_file()), paths[0] if paths else Path())


@dataclass
class Listing:
    """What was listed from the cluster, as the binder reads it."""

    inventory: Inventory
    warnings: list[str] = field(default_factory=list)

    @property
    def last_active(self) -> dict[ObjectRef, datetime | None]:
        """Each ScaledObject's ``status.lastActiveTime``, as the controller left it."""
        return {
            ref: so.status.last_active_time for ref, so in self.inventory.scaled_objects.items()
        }


async def explain_namespace(
    namespace: str,
    kubeconfig: Path | None = None,
    *,
    cluster_object_namespace: str = DEFAULT_CLUSTER_OBJECT_NAMESPACE,
    poll_sources: bool = False,
    scaler_timeout: float = DEFAULT_TIMEOUT,
) -> tuple[list[Report], list[str]]:
    """The report of every ScaledObject, then every ScaledJob, in ``namespace``, and the
    warnings about lists that could not be read. Raise ConfigError (the kubeconfig) or
    KubeError (listing ScaledObjects)."""
    async with await KubeClient.connect(kubeconfig or default_kubeconfig()) as kube:
        listing = await list_namespace(kube, namespace, cluster_object_namespace)
        settings = Settings(
            scaler_timeout=scaler_timeout, cluster_object_namespace=cluster_object_namespace
        )
        adapter = await build_settled(
            settings, listing.inventory, kube, dry_run=False, count_pods=True
        )
        readings = poll if poll_sources else functools.partial(cluster_readings, kube)
        observed, counted, _ = await asyncio.gather(
            observe(kube, listing), count(kube, listing), read(adapter, readings)
        )
        return [*reports(adapter, observed), *job_reports(adapter, counted)], listing.warnings


async def list_namespace(
    kube: KubeClient, namespace: str, cluster_object_namespace: str
) -> Listing:
    """ScaledObjects, ScaledJobs, authentications, Secrets, ConfigMaps and workloads of
    ``namespace`` (Secrets and ConfigMaps of ``cluster_object_namespace`` too, where
    ClusterTriggerAuthentication refs resolve). Only ScaledObjects are required."""
    wanted: list[tuple[Resource, str | None]] = [
        (SCALED_OBJECTS, namespace),
        (SCALED_JOBS, namespace),
        (TRIGGER_AUTHENTICATIONS, namespace),
        (CLUSTER_TRIGGER_AUTHENTICATIONS, None),
        (SECRETS, namespace),
        (CONFIG_MAPS, namespace),
        (DEPLOYMENTS, namespace),
        (STATEFULSETS, namespace),
        (SERVICE_ACCOUNTS, namespace),  # pod identity reads the workload's
    ]
    if cluster_object_namespace != namespace:
        wanted += [(SECRETS, cluster_object_namespace), (CONFIG_MAPS, cluster_object_namespace)]
    warnings: list[str] = []
    # Every list ends (each call has a timeout) before a failure is raised: none is left
    # running on a client that is about to close.
    answers = await asyncio.gather(
        *(_list(kube, r, ns, warnings) for r, ns in wanted), return_exceptions=True
    )
    lists: list[list[dict[str, Any]]] = []
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
        lists.append(answer)
    items = [item for found in lists for item in found]
    inventory = load_documents(((_origin(i), i) for i in items), cluster_object_namespace)
    return Listing(inventory, warnings)


async def _list(
    kube: KubeClient, resource: Resource, namespace: str | None, warnings: list[str]
) -> list[dict[str, Any]]:
    try:
        items, _ = await kube.list_objects(resource, namespace)
    except KubeError as exc:
        if resource is SCALED_JOBS and exc.code == 404:
            return []  # no ScaledJob CRD: a cluster of ScaledObjects only
        if resource is SCALED_OBJECTS or exc.code != 403:
            raise
        warnings.append(f"{exc}; continuing without them: triggers that need them say so")
        return []
    return items


def _origin(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"cluster:{obj.get('kind')} {where}{meta.get('name')}"


# The values: a ScaledObject's as the HPA reads them, a ScaledJob's polled from here.


async def cluster_readings(kube: KubeClient, adapter: Adapter) -> None:
    """ScaledJobs' values polled from here, then ScaledObjects' through the aggregated API.
    In that order: a poll records its answer for every trigger that shares the query, so a
    ScaledObject sharing one with a ScaledJob ends with the value the adapter serves."""
    await poll_scaled_jobs(adapter)
    await through_aggregator(kube, adapter)


async def poll_scaled_jobs(adapter: Adapter) -> None:
    """Ask each distinct query of the ScaledJobs once, from this machine."""
    jobs = [ref for ref in adapter.store.objects() if isinstance(ref, ScaledJobRef)]
    queries = {b.scaler.query for ref in jobs for b in adapter.poller.triggers(ref)}
    await asyncio.gather(*(adapter.poller.poll(query) for query in queries))


async def through_aggregator(kube: KubeClient, adapter: Adapter) -> None:
    """Ask the aggregated API for every ScaledObject trigger's value, as the HPA does."""
    bound = [
        b
        for ref in adapter.store.objects()
        if not isinstance(ref, ScaledJobRef)
        for b in adapter.poller.triggers(ref)
    ]
    limit = asyncio.Semaphore(CONCURRENCY)
    await asyncio.gather(*(_limited(limit, _read_metric(kube, adapter.store, b)) for b in bound))


async def _limited(limit: asyncio.Semaphore, call: Awaitable[T]) -> T:
    async with limit:
        return await call


async def _read_metric(kube: KubeClient, store: MetricStore, bound: BoundTrigger) -> None:
    ref, metric = bound.so, bound.metric_name
    path = f"/apis/{GROUP_VERSION}/namespaces/{ref.namespace}/{quote(metric, safe='')}"
    selector = [("labelSelector", f"{SCALED_OBJECT_LABEL}={ref.name}")]
    try:
        answer = await kube.request("GET", path, f"{metric} of ScaledObject {ref}", query=selector)
        value, measured_at = metric_value(answer)
    except KubeError as exc:
        store.record_error(ref, metric, status_text(exc))
        return
    except ValueError as exc:
        store.record_error(ref, metric, f"the adapter's answer: {exc}")
        return
    # What the scaler itself does with its value (scalers that compare another number with
    # the activation threshold, such as Kafka's total lag, serve only the value).
    active = is_active(value, bound.scaler.activation_target)
    store.record_value(ref, metric, value, active, measured_at)


def metric_value(answer: Mapping[str, Any]) -> tuple[float, datetime]:
    """The value and timestamp of the one item of an ``ExternalMetricValueList``."""
    items = answer.get("items")
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise ValueError(f"no item in {str(dict(answer))[:200]}")
    value = parse_quantity(str(items[0].get("value")))
    return value, parse_time(items[0].get("timestamp")) or datetime.now(UTC)


def status_text(exc: KubeError) -> str:
    """``503 ServiceUnavailable: metric:... encountered error: ...``: the Status as the HPA
    controller reports it; with no answer at all, the whole error."""
    if not exc.code:
        return str(exc)
    return f"{exc.code} {exc.reason}: {exc.message}" if exc.message else f"{exc.code} {exc.reason}"


# What the cluster says beside the values.


async def observe(kube: KubeClient, listing: Listing) -> dict[ObjectRef, Observed]:
    scaled = list(listing.inventory.scaled_objects.values())
    limit = asyncio.Semaphore(CONCURRENCY)
    found = await asyncio.gather(*(_limited(limit, _observe(kube, listing, so)) for so in scaled))
    return {so.ref: seen for so, seen in zip(scaled, found, strict=True)}


async def _observe(kube: KubeClient, listing: Listing, so: ScaledObject) -> Observed:
    ns = so.ref.namespace
    try:
        target = (await with_target_version(kube, so)).scale_target_ref
        scale = await kube.get_scale(target.api_version, target.kind, ns, target.name)
        replicas, source = scale.replicas, "/scale"
    except (ConfigError, KubeError) as exc:  # ConfigError: no apiVersion written, none found
        replicas = listing.inventory.replicas(so)
        fallback = "spec.replicas" if listing.inventory.workload(so) else "minReplicaCount"
        why = exc.problems[0].message if isinstance(exc, ConfigError) else status_text(exc)
        source = f"{fallback} (no /scale: {why})"
    try:
        found = await kube.get_hpa(ns, so.hpa_name)
        hpa = f"{so.hpa_name}: not found" if found is None else hpa_status(found)
    except KubeError as exc:
        hpa = f"{so.hpa_name}: unreadable: {status_text(exc)}"
    return Observed(replicas, source, so.status.last_active_time, hpa)


def hpa_status(hpa: Mapping[str, object]) -> str:
    """``keda-hpa-q: current 1, desired 4; ScalingActive=False FailedGetExternalMetric: ...``;
    a condition's message only when it reports trouble (otherwise it restates the reason).
    Raise KubeError when ``hpa`` is not shaped as an HPA."""
    status = HorizontalPodAutoscalerStatus.from_response(hpa, "HorizontalPodAutoscaler (get)")
    parts = [f"current {status.current_replicas}, desired {status.desired_replicas}"]
    for c in status.conditions:
        text = f"{c.type}={c.status} {c.reason}"
        healthy = "False" if c.type == "ScalingLimited" else "True"
        if c.status != healthy and c.message:
            text += f": {c.message}"
        parts.append(text)
    return f"{status.name}: " + "; ".join(parts)


# A ScaledJob's Jobs, as KEDA counts them.


async def count(kube: KubeClient, listing: Listing) -> dict[ScaledJobRef, JobsSeen]:
    scaled = list(listing.inventory.scaled_jobs.values())
    limit = asyncio.Semaphore(CONCURRENCY)
    found = await asyncio.gather(*(_limited(limit, _count(kube, sj)) for sj in scaled))
    return {sj.ref: seen for sj, seen in zip(scaled, found, strict=True)}


async def _count(kube: KubeClient, sj: ScaledJob) -> JobsSeen:
    """The ScaledJob's running and pending Jobs; when they cannot be listed, 0 and why."""
    selector = f"{JOB_LABEL}={sj.meta.name}"
    ns = sj.meta.namespace
    # Both lists end before a failure is reported: none is left running on a closing client.
    jobs, pods = await asyncio.gather(
        kube.list_objects(JOBS, ns, label_selector=selector),
        kube.list_objects(PODS, ns, label_selector=selector),
        return_exceptions=True,
    )
    for answer in (jobs, pods):
        if isinstance(answer, KubeError):
            return JobsSeen(source=f"not counted, taken as 0: {status_text(answer)}")
        if isinstance(answer, BaseException):
            raise answer
    assert not isinstance(jobs, BaseException) and not isinstance(pods, BaseException)
    counts = count_jobs(
        [Job.parse(j) for j in jobs[0]],
        [Pod.parse(p) for p in pods[0]],
        sj.scaling_strategy.pending_pod_conditions,
    )
    return JobsSeen(counts, f"Jobs and Pods labelled {selector}")
