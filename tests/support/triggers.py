"""Helpers every scaler's integration tests share: build a trigger, measure it once, bind a
ScaledObject through the real parser and binder, read what the store holds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.model.keda import parse_scaled_object
from scalers.base import Scaler, ScalerKind, split
from scalers.clients import Clients
from scalers.errors import Problems
from scalers.params import TriggerInputs

S = TypeVar("S")


def build(
    kind: ScalerKind[Any],
    expected: type[S],
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> S:
    """A scaler of ``kind`` from trigger metadata (and auth params), which must be valid."""
    problems = Problems()
    built = kind.create(TriggerInputs(dict(metadata), env or {}, auth or {}), problems)
    assert not problems, [str(p) for p in problems]
    assert isinstance(built, expected)
    return built


async def measure_once(scaler: Scaler[Any], client_timeout: float = 2.0) -> float:
    """Run the scaler's query once with fresh clients and return its value."""
    clients = Clients(timeout=client_timeout)
    try:
        value, _ = split(scaler.measure(await scaler.query.run(clients)))
        return value
    finally:
        await clients.aclose()


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


async def run_until_polled(poller: Any, bound: list[BoundTrigger], polls: int) -> dict[Any, int]:
    """Run ``poller`` (a Poller) on its own schedule until each query of ``bound`` has been
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
