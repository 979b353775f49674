"""Helpers every scaler's tests share: build a trigger and poll it once, build the poller as
``serve`` does, bind a ScaledObject through the real parser and binder, read the store.

A new trigger type needs none of its own: ``poll_once("my-type", {...})`` builds it from
its metadata as the registry does and asks its source once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.config.settings import Settings
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from metrics_adapter.server import build_poller
from scalers.base import Scaler, ScalerKind, is_active, split
from scalers.clients import DEFAULT_TIMEOUT, Clients
from scalers.errors import Problems
from scalers.params import TriggerInputs
from scalers.registry import KINDS

S = TypeVar("S")

POLL_TIMEOUT = 2.0
"""Seconds the clients of a single poll give the source, unless a test says otherwise."""


def trigger(
    type_name: str,
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Scaler[Any]:
    """A trigger of the registered type ``type_name`` from its metadata (and auth params
    and resolved env), as the binder builds it; a :class:`~scalers.errors.ConfigError`
    names every problem."""
    problems = Problems()
    inputs = TriggerInputs(dict(metadata), env or {}, auth or {})
    built = KINDS[type_name].create(inputs, problems)
    problems.raise_for(f"trigger {type_name}")
    assert built is not None, "create returns a scaler when there is no problem"
    return built


def build(
    kind: ScalerKind[Any],
    expected: type[S],
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> S:
    """:func:`trigger` of ``kind``, typed as the scaler class the test reads fields of."""
    built = trigger(kind.type_name, metadata, auth, env)
    assert isinstance(built, expected)
    return built


class Polled(NamedTuple):
    """What one poll measured, as the poller records it."""

    value: float
    active: bool
    """The activity (the value, or what the type compares instead) above the activation
    target: KEDA's rule, :func:`scalers.base.is_active`."""


async def poll(
    scaler: Scaler[Any], clients: Clients | None = None, client_timeout: float = POLL_TIMEOUT
) -> Polled:
    """Run ``scaler``'s query once against ``clients`` (fresh ones, with ``client_timeout``,
    closed after, when none are given) and measure the answer. A
    :class:`~scalers.errors.ScalerError` of the source or of the measure propagates."""
    own = clients is None
    shared = Clients(timeout=client_timeout) if clients is None else clients
    try:
        value, activity = split(scaler.measure(await scaler.query.run(shared)))
    finally:
        if own:
            await shared.aclose()
    return Polled(value, is_active(activity, scaler.activation_target))


async def poll_once(
    type_name: str,
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    *,
    clients: Clients | None = None,
    client_timeout: float = POLL_TIMEOUT,
) -> Polled:
    """Build a ``type_name`` trigger (:func:`trigger`) and :func:`poll` it once."""
    return await poll(trigger(type_name, metadata, auth), clients, client_timeout)


async def measure_once(scaler: Scaler[Any], client_timeout: float = POLL_TIMEOUT) -> float:
    """The value of one :func:`poll` of ``scaler`` with fresh clients."""
    return (await poll(scaler, client_timeout=client_timeout)).value


def new_poller(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    store: MetricStore | None = None,
    telemetry: Telemetry | None = None,
    rng: random.Random | None = None,
) -> Poller:
    """The poller as ``serve`` builds it (:func:`metrics_adapter.server.build_poller`) with
    ``--scaler-timeout`` ``timeout``: its clients and each of its polls end within it."""
    settings = Settings(scaler_timeout=timeout)
    return build_poller(settings, store or MetricStore(), telemetry or Telemetry(), rng=rng)


def always_cron(desired: int) -> dict[str, Any]:
    """A cron trigger always active: the next end (every minute) always comes before the
    next start (Jan 1), so its window is open whenever it is read."""
    window = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "* * * * *"}
    return {"type": "cron", "metadata": {**window, "desiredReplicas": str(desired)}}


def scaled_object(
    name: str, namespace: str, trigger: Mapping[str, Any], **spec: Any
) -> dict[str, Any]:
    """A ScaledObject with one trigger, as a user writes it, scaling the workload of its
    own name; ``spec`` adds (or overrides) fields of its spec."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": name}, "triggers": [dict(trigger)], **spec},
    }


def metrics_api_trigger(url: str) -> dict[str, Any]:
    """A metrics-api trigger reading ``url`` (``{"value": N}``), target 10."""
    return {
        "type": "metrics-api",
        "metadata": {"url": url, "valueLocation": "value", "targetValue": "10"},
    }


def worker_object(
    name: str,
    namespace: str,
    trigger: Mapping[str, Any],
    workers_api: str,
    interval: int,
    **spec: Any,
) -> dict[str, Any]:
    """A ScaledObject with ``trigger`` that scales the Worker of its name (a /scale CRD of
    ``workers_api`` with no controller), 0 to 3."""
    doc = scaled_object(
        name, namespace, trigger, minReplicaCount=0, maxReplicaCount=3, pollingInterval=interval
    )
    doc["spec"]["scaleTargetRef"] = {"apiVersion": workers_api, "kind": "Worker", "name": name}
    doc["spec"].update(spec)
    return doc


def scaled_job(
    name: str, namespace: str, trigger: Mapping[str, Any], **spec: Any
) -> dict[str, Any]:
    """A ScaledJob with one trigger and a one-container Job template; ``spec`` adds (or
    overrides) fields of its spec."""
    template = {"spec": {"containers": [{"name": "worker", "image": "worker"}]}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"jobTargetRef": {"template": template}, "triggers": [dict(trigger)], **spec},
    }


def so_doc(
    name: str, metadata: Mapping[str, str], trigger_type: str, interval: int = 1
) -> dict[str, Any]:
    """A ScaledObject in namespace ``default`` with one trigger, as a user writes it."""
    trigger = {"type": trigger_type, "metadata": dict(metadata)}
    return scaled_object(name, "default", trigger, pollingInterval=interval)


def bound_trigger(name: str, metadata: Mapping[str, str], trigger_type: str) -> BoundTrigger:
    """The one trigger of :func:`so_doc`, parsed and bound as the service binds it."""
    (bound,) = bind(parse_scaled_object(so_doc(name, metadata, trigger_type)), Inventory())
    return bound


def reading(store: MetricStore, bound: BoundTrigger) -> Reading:
    return store.readings(bound.so)[bound.metric_name.lower()]


async def run_until_polled(poller: Poller, bound: list[BoundTrigger], polls: int) -> dict[Any, int]:
    """Run ``poller`` on its own schedule until each query of ``bound`` has been
    polled ``polls`` times, answered or failed; stop it and return the polls of each query.

    Counted by the poller's listeners, not by a clock, so a loaded machine only makes it
    slower. A loop polls first within its start-up spread (at most one interval), then at most
    one interval after the previous poll, and each poll ends within the poller's timeout: one
    poll more than that is the deadline. A poll may be in flight when the poller stops, one
    per query at most: its request may have reached the source without being counted here.
    """
    first: dict[Any, BoundTrigger] = {}
    for b in bound:
        first.setdefault(b.scaler.query, b)
    ended = dict.fromkeys(first, 0)
    done = asyncio.Event()

    def polled(trigger: BoundTrigger, _: Reading) -> None:
        query = trigger.scaler.query
        if first.get(query) is trigger:
            ended[query] += 1
            if min(ended.values()) >= polls:
                done.set()

    interval = max(b.polling_interval for b in bound)
    within = (polls + 1) * (interval + poller.timeout)
    poller.listeners.append(polled)
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(within):
            await done.wait()
    except TimeoutError:
        raise AssertionError(f"not {polls} polls of each query in {within:g}s: {ended}") from None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        poller.listeners.remove(polled)
    return ended


def echo_worker(
    endpoint: str,
    namespace: str,
    name: str = "echo-worker",
    *,
    stream: str = "JOBS",
    consumer: str = "echo-workers",
    **spec: Any,
) -> dict[str, Any]:
    """The seed's ScaledObject (001): a nats-jetstream trigger at ``endpoint``, 0 to 5
    replicas, pollingInterval 5 and a 10 s cooldown unless ``spec`` says otherwise."""
    trigger = {
        "type": "nats-jetstream",
        "metadata": {
            "natsServerMonitoringEndpoint": endpoint,
            "account": "$G",
            "stream": stream,
            "consumer": consumer,
            "lagThreshold": "10",
            "activationLagThreshold": "0",
        },
    }
    return scaled_object(
        name,
        namespace,
        trigger,
        **{
            "minReplicaCount": 0,
            "maxReplicaCount": 5,
            "pollingInterval": 5,
            "cooldownPeriod": 10,
            **spec,
        },
    )
