"""The scenarios with an event source's life in them, run on each system beside the request
path: the seed's burst from zero, a source that stops, and the load on a nats-server.

- *Wake and burst*: :func:`bench.activation.run_case` as it is, on the system's control
  plane: the seed's echo-worker (nats-jetstream, 50 messages, target 10, 0 to 5 replicas) at
  ``pollingInterval`` 5 and 30, ``--repetitions`` each, each burst at a random phase of the
  interval; seconds to the first replica and to all five.
- *Outage*: ``--outage-objects`` ScaledObjects (``minReplicaCount: 0``, ``cooldownPeriod:
  30``, ``pollingInterval: 5``, no fallback) at 3 replicas; their source answers 503 for
  ``--outage`` seconds: the fewest replicas any target had meanwhile, how many were scaled
  down, and the seconds until all are back at 3 once the source is.
- *Upstream, NATS*: ``--nats-triggers`` nats-jetstream triggers on ten consumers of one
  stream, ``pollingInterval: 30``: ``GET /jsz`` per interval as the server counts them
  (``http_req_stats`` of ``/varz``), HPA reads included.
- *Upstream, Kafka*: ``--kafka-triggers`` kafka triggers over five consumer groups of one
  topic: the broker's requests per interval from its request log, by API, every client's
  (one system runs at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Mapping
from typing import Any

from bench import activation
from bench.activation_sources import Nats
from bench.keda.scenarios import INTERVAL, NS, Results, scaled_object
from bench.keda.systems import System
from bench.report import note
from bench.soak import WORKERS, worker, worker_object
from bench.upstream import Series, kafka_series, log_size
from tests.support import jetstream
from tests.support.controlplane import wait_for
from tests.support.kafka import KafkaBroker, commit, create_topic, produce
from tests.support.value_server import ValueServer

OUTAGE_VALUE = 30.0
"""3 replicas at target 10."""
OUTAGE_REPLICAS = 3


def wake(system: System, nats: Nats, short: str, args: argparse.Namespace, out: Results) -> None:
    """The seed's burst, at pollingInterval 5 and 30."""
    cp = system.cp
    cp.ensure_namespace(activation.NS)
    for doc in nats.documents(activation.NS):
        cp.apply(doc)
    rng = random.Random(args.seed)
    for interval in (5, 30):
        case_args = argparse.Namespace(
            repetitions=args.repetitions, polling_interval=interval, hpa_sync=args.hpa_sync
        )
        # Ready waits for the operator too: KEDA's may still be working through its queue.
        ready = interval + 300
        case = activation.run_case(cp, nats, f"{short}-p{interval}", case_args, rng, ready)
        scenario = f"wake from 0, seed's burst, pollingInterval {interval}"
        for label, values in (("first replica", case.first), ("all 5 replicas", case.all)):
            out.add(scenario, f"{label} p50 s", activation.p(values, 50))
            out.add(scenario, f"{label} p95 s", activation.p(values, 95))
        out.add(scenario, f"missed of {args.repetitions}", float(case.missed))


def _outage_object(name: str, url: str) -> dict[str, Any]:
    doc = scaled_object(name, url, cached=False)
    doc["spec"].update(minReplicaCount=0, maxReplicaCount=10, pollingInterval=5, cooldownPeriod=30)
    return doc


def _scale(system: System, doc: dict[str, Any]) -> None:
    """``doc`` and the Worker it scales."""
    system.cp.apply(worker(doc["metadata"]["name"], NS))
    system.cp.apply(doc)


def _replicas(system: System, names: list[str]) -> dict[str, int]:
    items = system.cp.client.get(system.cp.path(WORKERS, "Worker", NS)).json()["items"]
    found = {w["metadata"]["name"]: int(w["spec"].get("replicas") or 0) for w in items}
    return {n: found.get(n, 0) for n in names}


def outage(system: System, args: argparse.Namespace, out: Results) -> None:
    """A source that answers 503 for ``--outage`` seconds under a 30 s cooldown."""
    names = [f"outage-{i}" for i in range(args.outage_objects)]
    scenario = f"source down {args.outage:g}s, cooldownPeriod 30, no fallback"
    with ValueServer(values=lambda path: OUTAGE_VALUE) as source:
        for name in names:
            _scale(system, _outage_object(name, source.url))

        def at_three() -> bool:
            system.check()
            return all(r == OUTAGE_REPLICAS for r in _replicas(system, names).values())

        wait_for(f"{len(names)} targets at 3 replicas", at_three, 120 + 2 * args.hpa_sync, 1)
        source.failing = True
        began, lowest, down = time.monotonic(), OUTAGE_REPLICAS, set()
        while time.monotonic() - began < args.outage:
            counts = _replicas(system, names)
            lowest = min(lowest, *counts.values())
            down |= {n for n, r in counts.items() if r < OUTAGE_REPLICAS}
            time.sleep(1)
        source.failing = False
        back = time.monotonic()
        note(f"keda-bench: {system.name}: source back; {len(down)} targets were scaled down")
        try:
            wait_for("every target back at 3", at_three, 120 + 2 * args.hpa_sync, 1)
            recovered: float | None = time.monotonic() - back
        except TimeoutError:
            recovered = None
        _remove(system, names)
    out.add(scenario, "fewest replicas of a target (3 before)", float(lowest))
    out.add(scenario, f"targets scaled down, of {len(names)}", float(len(down)))
    out.add(scenario, "all back at 3 after the source, s", recovered)


def _polled(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """An object on ``trigger`` at ``pollingInterval: 30``."""
    return worker_object(name, NS, trigger, minReplicaCount=1, pollingInterval=INTERVAL)


def _remove(system: System, names: list[str], timeout: float = 300) -> None:
    """Delete a scenario's ScaledObjects and Workers and wait until the ScaledObjects are gone
    (their finalizers done), so that the next scenario does not pay for them."""
    for name in names:
        system.cp.delete("keda.sh/v1alpha1", "ScaledObject", name, NS)
        system.cp.delete(WORKERS, "Worker", name, NS)
    path = system.cp.path("keda.sh/v1alpha1", "ScaledObject", NS)

    def gone() -> bool:
        items = system.cp.client.get(path, timeout=60).json()["items"]
        return not {o["metadata"]["name"] for o in items} & set(names)

    began = time.monotonic()
    try:
        wait_for(f"{len(names)} ScaledObjects deleted", gone, timeout, 1)
    except TimeoutError as exc:
        note(f"keda-bench: {system.name}: {exc}; going on")
    took = time.monotonic() - began
    note(f"keda-bench: {system.name}: {len(names)} objects removed in {took:.0f}s")


def _per_interval(count: int, seconds: float) -> float:
    return count / seconds * INTERVAL


def nats_upstream(system: System, nats: Nats, args: argparse.Namespace, out: Results) -> None:
    """``--nats-triggers`` triggers on ten consumers of one stream: /jsz requests per interval."""
    stream, consumers = "UPSTREAM", [f"upstream-{i}" for i in range(10)]
    asyncio.run(jetstream.prepare(nats.server.url, stream, "upstream", consumers))
    names = [f"nats-{i}" for i in range(args.nats_triggers)]
    for i, name in enumerate(names):
        trigger = nats.trigger(consumers[i % len(consumers)])
        trigger["metadata"]["stream"] = stream
        _scale(system, _polled(name, trigger))
    time.sleep(args.upstream_window)  # every trigger polled once, every HPA synced
    before, began = nats.server.requests_served(), time.monotonic()
    time.sleep(args.upstream_window)
    seconds = time.monotonic() - began
    scenario = f"upstream, {len(names)} nats-jetstream triggers on 10 consumers"
    count = nats.server.requests_served() - before
    per_interval = _per_interval(count, seconds)
    out.add(scenario, "GET /jsz per interval (one stream, 10 consumers)", per_interval)
    _remove(system, names)


KAFKA_TOPIC = "bench-kafka"
KAFKA_GROUPS = [f"{KAFKA_TOPIC}-g{i}" for i in range(5)]


def prepare_kafka(broker: KafkaBroker) -> None:
    """One topic, 50 messages, five groups each 30 behind: 3 replicas at lagThreshold 10."""

    async def prepare() -> None:
        await create_topic(broker.bootstrap, KAFKA_TOPIC, 1)
        await produce(broker.bootstrap, KAFKA_TOPIC, {0: 50})
        for group in KAFKA_GROUPS:
            await commit(broker.bootstrap, group, {(KAFKA_TOPIC, 0): 20})

    asyncio.run(prepare())


def kafka_query(entry: Mapping[str, Any]) -> str | None:
    """A logged request that serves a poll of this scenario's triggers (every client's):
    one naming its topic or groups, or a Metadata request for every topic."""
    api = entry["requestHeader"]["requestApiKeyName"]
    text = json.dumps(entry.get("request"))
    if KAFKA_TOPIC in text or (api == "METADATA" and '"topics": null' in text):
        return "kafka"
    return None


def kafka_upstream(
    system: System, broker: KafkaBroker, args: argparse.Namespace, out: Results
) -> None:
    """``--kafka-triggers`` triggers over five groups of one topic: the broker's requests per
    interval, by API, from its request log."""
    names = [f"kafka-{i}" for i in range(args.kafka_triggers)]
    for i, name in enumerate(names):
        metadata = {
            "bootstrapServers": broker.bootstrap,
            "consumerGroup": KAFKA_GROUPS[i % len(KAFKA_GROUPS)],
            "topic": KAFKA_TOPIC,
            "lagThreshold": "10",
            # KEDA's client speaks Kafka 1.0.0 unless told; Kafka 4 serves 2.1 and later only.
            "version": args.kafka_version,
        }
        _scale(system, _polled(name, {"type": "kafka", "metadata": metadata}))
    time.sleep(args.upstream_window)  # every trigger polled once, every HPA synced
    size = log_size(broker)
    times, offsets = [time.monotonic()], [size()]
    time.sleep(args.upstream_window)
    times.append(time.monotonic())
    offsets.append(size())
    found = kafka_series(broker, Series(times, offsets), kafka_query, client=None)
    seconds = times[-1] - times[0]
    scenario = f"upstream, {len(names)} kafka triggers over 5 groups of one topic"
    total = 0
    for (_, api), series in sorted(found.items()):
        count = series.values[-1] - series.values[0]
        total += count
        out.add(scenario, f"{api} per interval", _per_interval(count, seconds))
    per_interval = _per_interval(total, seconds)
    out.add(scenario, "broker requests per interval (5 distinct queries)", per_interval)
    _remove(system, names)
