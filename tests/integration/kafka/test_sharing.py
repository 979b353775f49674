"""200 triggers on one broker: one client per backend, one request set per distinct query.

Counted server-side: the broker's ``kafka.request.logger`` writes one line per request with
its API name, client id, listener and connection. Each poll of a query is one Metadata, one
OffsetFetch and one ListOffsets (single broker, every partition committed). The triggers
differ in their per-trigger options, which never change the request.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka.protocol.admin import ApiVersionRequest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.authentication import parse_trigger_authentication
from metrics_adapter.model.keda import ObjectRef, parse_scaled_object
from scalers import kafka
from scalers.clients import Clients
from scalers.kafka_client import CLIENT_ID, KafkaBackend, connect
from tests.support.kafka import USERS, KafkaBroker, commit, create_topic, produce
from tests.support.triggers import new_poller, run_until_polled

pytestmark = pytest.mark.integration

TRIGGERS = 200
QUERY_APIS = ("METADATA", "OFFSET_FETCH", "LIST_OFFSETS")


def trigger(i: int, spec: tuple[str, str, str | None], bootstrap: str) -> dict[str, Any]:
    listener, group, topic = spec
    metadata = {
        "bootstrapServers": bootstrap,
        "consumerGroup": group,
        "lagThreshold": str(1 + i % 7),
        "allowIdleConsumers": "true",
    }
    if topic:
        metadata["topic"] = topic
        limitation = ["", "0", "1-2"][i // 5 % 3]
        if limitation:
            metadata["partitionLimitation"] = limitation
    if i // 5 % 4 == 3:
        metadata["excludePersistentLag"] = "true"
    doc: dict[str, Any] = {"type": "kafka", "metadata": metadata}
    if listener == "SASL_PLAINTEXT":
        metadata["sasl"] = "scram_sha512"
        doc["authenticationRef"] = {"name": "kafka-alice"}
    return doc


def so_doc(i: int, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"so{i}", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": f"w{i}"}, "pollingInterval": 1, "triggers": [doc]},
    }


def inventory() -> Inventory:
    found = Inventory()
    found.auths[ObjectRef("default", "kafka-alice")] = parse_trigger_authentication(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "kafka-alice", "namespace": "default"},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "username", "name": "alice", "key": "user"},
                    {"parameter": "password", "name": "alice", "key": "password"},
                ]
            },
        }
    )
    found.secrets[ObjectRef("default", "alice")] = {"user": "alice", "password": USERS["alice"]}
    return found


def own(bound: BoundTrigger) -> kafka.KafkaScaler:
    assert isinstance(bound.scaler, kafka.KafkaScaler)
    return bound.scaler


def expected(
    bound: BoundTrigger, lags: dict[tuple[str, str | None], dict[tuple[str, int], int]]
) -> int:
    s = own(bound)
    per_partition = lags[(s.meta.consumer_group, s.meta.topic)]
    return sum(
        n for (_, p), n in per_partition.items() if s.limitation is None or p in s.limitation
    )


async def settle(
    broker: KafkaBroker, clients: Clients, backends: set[KafkaBackend], since: int
) -> list[dict[str, Any]]:
    """Our requests since log entry ``since``, once the log holds them all.

    The broker logs a request once its answer is sent: a last request on each shared
    connection, answered and logged after every earlier one, marks the log complete."""
    for backend in backends:
        connection = await connect(clients, backend)
        await connection.send(connection.any_node(), ApiVersionRequest())
    broker.wait_for_requests(CLIENT_ID, "API_VERSIONS", len(backends), since)
    return [
        entry
        for entry in broker.requests()[since:]
        if entry["requestHeader"]["clientId"] == CLIENT_ID
        and entry["requestHeader"]["requestApiKeyName"] != "API_VERSIONS"
    ]


async def test_200_triggers_share_one_client_per_backend_and_one_request_per_query(
    kafka_broker: KafkaBroker, name: str
) -> None:
    bootstrap = kafka_broker.bootstrap
    t1, t2 = f"{name}-t1", f"{name}-t2"
    g1, g2, g3, g4 = (f"{name}-g{i}" for i in range(1, 5))
    await create_topic(bootstrap, t1, 3)
    await create_topic(bootstrap, t2, 2)
    await produce(bootstrap, t1, {0: 10, 1: 20, 2: 30})
    await produce(bootstrap, t2, {0: 7, 1: 9})
    await commit(bootstrap, g1, {(t1, 0): 5, (t1, 1): 5, (t1, 2): 5})
    await commit(bootstrap, g2, {(t1, 0): 10, (t1, 1): 20, (t1, 2): 0})
    await commit(bootstrap, g3, {(t2, 0): 0, (t2, 1): 4})
    await commit(bootstrap, g4, {(t1, 0): 10, (t1, 1): 20, (t1, 2): 30, (t2, 0): 7, (t2, 1): 0})
    lags = {
        (g1, t1): {(t1, 0): 5, (t1, 1): 15, (t1, 2): 25},
        (g2, t1): {(t1, 0): 0, (t1, 1): 0, (t1, 2): 30},
        (g3, t2): {(t2, 0): 7, (t2, 1): 5},
        (g4, None): {(t1, 0): 0, (t1, 1): 0, (t1, 2): 0, (t2, 0): 0, (t2, 1): 9},
    }
    # Five distinct queries over two backends: the same cluster as anonymous and as alice.
    specs = [
        ("PLAINTEXT", g1, t1),
        ("PLAINTEXT", g2, t1),
        ("PLAINTEXT", g3, t2),
        ("PLAINTEXT", g4, None),
        ("SASL_PLAINTEXT", g1, t1),
    ]

    poller = new_poller(5)
    store, clients = poller.store, poller.clients
    objects = inventory()
    bound: list[BoundTrigger] = []
    for i in range(TRIGGERS):
        spec = specs[i % len(specs)]
        doc = trigger(i, spec, kafka_broker.address(spec[0]))
        so = parse_scaled_object(so_doc(i, doc))
        triggers = bind(so, objects)
        poller.set_triggers(so.ref, triggers)
        bound.extend(triggers)
    queries = {own(b).query for b in bound}
    backends = {q.backend for q in queries}
    assert (len(bound), poller.query_count, len(queries), len(backends)) == (TRIGGERS, 5, 5, 2)

    try:
        # Round 1 opens the clients and finds the coordinators.
        await asyncio.gather(*(poller.poll(q) for q in queries))
        for b in bound:
            reading = store.readings(b.so)[b.metric_name.lower()]
            assert (reading.error, reading.value) == (None, expected(b, lags)), b.so

        # Round 2, one interval: exactly one request of each kind per distinct query. Round 1
        # must be all in the log first: a request logged late would count as round 2's.
        await settle(kafka_broker, clients, backends, 0)
        since = len(kafka_broker.requests())
        await asyncio.gather(*(poller.poll(q) for q in queries))
        requests = await settle(kafka_broker, clients, backends, since)
        counts = Counter((r["listener"], r["requestHeader"]["requestApiKeyName"]) for r in requests)
        assert counts == Counter(
            {("PLAINTEXT", api): 4 for api in QUERY_APIS}
            | {("SASL_PLAINTEXT", api): 1 for api in QUERY_APIS}
        )
        # One client per backend, seen from the broker: one connection per listener.
        connections = sorted({(r["listener"], r["connection"]) for r in requests})
        assert [listener for listener, _ in connections] == ["PLAINTEXT", "SASL_PLAINTEXT"]
        # Each trigger read the shared answer its own way: persistent lag is now excluded.
        for b in bound:
            want = 0 if own(b).meta.exclude_persistent_lag else expected(b, lags)
            assert store.readings(b.so)[b.metric_name.lower()].value == want, b.so

        # On the poller's own schedule: requests follow queries, not triggers.
        since = len(kafka_broker.requests())
        polled = await run_until_polled(poller, bound, 3)
        requests = await settle(kafka_broker, clients, backends, since)
        fetches = Counter(
            (r["listener"], r["request"]["groupId"])
            for r in requests
            if r["requestHeader"]["requestApiKeyName"] == "OFFSET_FETCH"
        )
        # One OffsetFetch per poll of each query (plus at most the poll in flight when the
        # poller stopped), where one per trigger would be forty per poll.
        listener_group = {
            own(b).query: (specs[i % len(specs)][0], own(b).meta.consumer_group)
            for i, b in enumerate(bound)
        }
        assert len(fetches) == len(queries)
        for query, polls in polled.items():
            assert polls <= fetches[listener_group[query]] <= polls + 1, (polled, fetches)
    finally:
        await clients.aclose()
