"""Kafka wake hints against a real broker: a record on an idle topic is a hint, and nothing
the watcher does moves a consumer group (its offsets, counted by the broker, stay put).

Waits: the watcher's Fetch is held by the broker at most :data:`FETCH_WAIT_MS` and answered
at once when a record lands, so a hint follows an append within one round trip; the tests
allow :data:`HINT_WITHIN` seconds, far above that on a loaded two-core machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from scalers import wake_kafka
from scalers.kafka_client import CLIENT_ID
from scalers.wake import BACKOFF, CONNECTED, Topic, Wake, WatchOptions, wake_of
from scalers.wake_kafka import WAKE_CLIENT_ID, GroupTopics, KafkaWatch, KafkaWatcher
from tests.integration.kafka.helpers import read, scaler
from tests.integration.kafka.test_auth import ways
from tests.support.kafka import KafkaBroker, commit, create_topic, produce

pytestmark = pytest.mark.integration

HINT_WITHIN = 10.0
"""Seconds a hint may take after an append: one held Fetch (0.5 s) plus a wide margin."""
NO_GROUP_APIS = {
    "JOIN_GROUP",
    "SYNC_GROUP",
    "HEARTBEAT",
    "OFFSET_COMMIT",
    "LEAVE_GROUP",
    "FIND_COORDINATOR",
    "OFFSET_FETCH",
}
"""Group APIs, as the broker's request log names them: the watcher sends none."""


class Hints:
    """What a watcher called back with, in order."""

    def __init__(self) -> None:
        self.seen: list[Topic] = []

    def __call__(self, topic: Topic) -> None:
        self.seen.append(topic)

    def count(self, topic: Topic) -> int:
        return self.seen.count(topic)


async def until(check: Callable[[], bool], what: str, within: float = HINT_WITHIN) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g}s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def watching(watch: KafkaWatch, *topics: Topic) -> AsyncIterator[tuple[KafkaWatcher, Hints]]:
    """A running watcher on ``topics``, connected and past its catch-up hints."""
    hints = Hints()
    watcher = watch.open(hints, WatchOptions(timeout=5.0, backoff_initial=0.2, backoff_max=1.0))
    assert isinstance(watcher, KafkaWatcher)
    watcher.watch(topics)
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.health.state == CONNECTED, "connected")
        yield watcher, hints
    finally:
        task.cancel()
        await asyncio.wait({task})


def wake(
    bootstrap: str, group: str, topic: str, auth: dict[str, str] | None = None, **meta: str
) -> KafkaWatch:
    found = wake_of(scaler(bootstrap, group, topic, auth, **meta))
    assert isinstance(found, Wake) and isinstance(found.watcher, KafkaWatch)
    assert found.topic == topic
    return found.watcher


async def test_a_record_on_an_idle_topic_is_a_hint_and_moves_no_group(
    kafka_broker: KafkaBroker, name: str
) -> None:
    bootstrap, topic, quiet, group = kafka_broker.bootstrap, f"{name}-jobs", f"{name}-q", name
    await create_topic(bootstrap, topic, 3)
    await create_topic(bootstrap, quiet, 1)
    await produce(bootstrap, topic, {0: 2, 1: 2})
    await commit(bootstrap, group, {(topic, 0): 1, (topic, 1): 2, (topic, 2): 0})
    trigger = scaler(bootstrap, group, topic)
    before = await read(trigger)
    since = len(kafka_broker.requests())
    async with watching(wake(bootstrap, group, topic), topic, quiet) as (watcher, hints):
        # Connecting hints each topic once (what came before was not seen), nothing more.
        assert sorted(map(str, hints.seen)) == sorted([topic, quiet])
        await produce(bootstrap, topic, {2: 1})
        await until(lambda: hints.count(topic) == 2, "a hint for the append")
        await produce(bootstrap, topic, {0: 3, 1: 1})
        await until(lambda: hints.count(topic) >= 3, "a hint for the second append")
        assert hints.count(quiet) == 1
        assert watcher.health.topic_problems == {}
    after = await read(trigger)
    assert (before.total, after.total) == (1 + 0 + 0, 1 + 0 + 0 + 1 + 3 + 1)
    # The group's committed offsets, as the broker holds them, are where the test put them.
    offsets = await kafka_broker_offsets(bootstrap, group, topic)
    assert offsets == {0: 1, 1: 2, 2: 0}
    await asyncio.to_thread(kafka_broker.wait_for_requests, WAKE_CLIENT_ID, "FETCH", 2, since)
    wake_calls = kafka_broker.request_counts(WAKE_CLIENT_ID, since)
    assert wake_calls["LIST_OFFSETS"] >= 1, wake_calls
    assert not NO_GROUP_APIS & set(wake_calls), wake_calls


async def kafka_broker_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic}


async def test_topics_come_and_go_and_new_partitions_are_found(
    kafka_broker: KafkaBroker, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake_kafka, "REFRESH", 0.5)  # metadata read twice a second
    bootstrap, first, second = kafka_broker.bootstrap, f"{name}-a", f"{name}-b"
    await create_topic(bootstrap, first, 1)
    await create_topic(bootstrap, second, 1)
    async with watching(wake(bootstrap, name, first), first) as (watcher, hints):
        watcher.watch({first, second})
        await until(lambda: hints.count(second) == 1, "the added topic's catch-up hint")
        await produce(bootstrap, second, {0: 1})
        await until(lambda: hints.count(second) == 2, "a hint on the added topic")
        watcher.watch({second})
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({second: NewPartitions(3)})
        finally:
            await admin.close()
        # A partition found later is read from its start: a record already in it counts.
        await produce(bootstrap, second, {2: 1})
        await until(lambda: hints.count(second) == 3, "a hint from a new partition")
        await produce(bootstrap, first, {0: 1})
        await produce(bootstrap, second, {1: 1})
        await until(lambda: hints.count(second) == 4, "a hint from the other new partition")
        assert hints.count(first) == 1  # only its catch-up, from before it was dropped


async def test_a_missing_topic_is_refused_until_it_exists(
    kafka_broker: KafkaBroker, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake_kafka, "REFRESH", 0.5)
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-later"
    async with watching(wake(bootstrap, name, topic), topic) as (watcher, hints):
        await until(lambda: topic in watcher.health.topic_problems, "refused")
        assert watcher.health.topic_problems[topic] == "the topic does not exist"
        await create_topic(bootstrap, topic, 1)
        await until(lambda: not watcher.health.topic_problems, "accepted once created")
        seen = hints.count(topic)
        await produce(bootstrap, topic, {0: 1})
        await until(lambda: hints.count(topic) > seen, "a hint once it exists")


async def test_a_restarted_broker_is_watched_again(own_broker: KafkaBroker) -> None:
    bootstrap = own_broker.bootstrap
    await create_topic(bootstrap, "jobs", 1)
    async with watching(wake(bootstrap, "workers", "jobs"), "jobs") as (watcher, hints):
        await asyncio.to_thread(own_broker.stop)
        await until(lambda: watcher.health.state == BACKOFF, "backing off", within=60)
        assert watcher.health.last_error
        await asyncio.to_thread(own_broker.start)
        await until(lambda: watcher.health.state == CONNECTED, "reconnected", within=60)
        # Reconnecting hints again: records appended meanwhile were not seen.
        await until(lambda: hints.count("jobs") == 2, "the reconnect's catch-up hint")
        await produce(bootstrap, "jobs", {0: 1})
        await until(lambda: hints.count("jobs") == 3, "a hint after the restart")


@pytest.mark.parametrize(
    "case", ["sasl scram_sha512", "sasl over tls", "tls with client certificate"]
)
async def test_the_watcher_uses_the_triggers_identity(
    kafka_broker: KafkaBroker, name: str, case: str
) -> None:
    listener, metadata, auth = ways(kafka_broker)[case]
    topic = f"{name}-jobs"
    await create_topic(kafka_broker.bootstrap, topic, 1)
    watch = wake(kafka_broker.address(listener), name, topic, auth, **metadata)
    assert watch.backend.security_protocol == listener
    async with watching(watch, topic) as (_, hints):
        await produce(kafka_broker.bootstrap, topic, {0: 1})
        await until(lambda: hints.count(topic) == 2, "a hint over " + listener)


async def test_without_topic_the_groups_topics_wake_it(
    kafka_broker: KafkaBroker, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEDA's trigger without ``topic`` follows every topic the group committed to: so does
    its watcher, reading them again (OffsetFetch, which moves nothing) at each refresh."""
    monkeypatch.setattr(wake_kafka, "REFRESH", 0.5)
    bootstrap, first, second = kafka_broker.bootstrap, f"{name}-a", f"{name}-b"
    await create_topic(bootstrap, first, 1)
    await create_topic(bootstrap, second, 1)
    await commit(bootstrap, name, {(first, 0): 0})
    found = wake_of(scaler(bootstrap, name, None))
    assert isinstance(found, Wake) and found.topic == GroupTopics(name)
    assert found.watcher == wake(bootstrap, "another-group", first)  # one connection
    assert isinstance(found.watcher, KafkaWatch)
    async with watching(found.watcher, found.topic) as (watcher, hints):
        await produce(bootstrap, second, {0: 1})  # not the group's (yet): no hint
        await produce(bootstrap, first, {0: 1})
        await until(lambda: hints.count(found.topic) == 2, "a hint from the group's topic")
        await commit(bootstrap, name, {(first, 0): 1, (second, 0): 1})
        await until(lambda: hints.count(found.topic) == 3, "the group's new topic, once")
        await produce(bootstrap, second, {0: 1})
        await until(lambda: hints.count(found.topic) == 4, "a hint from the new topic")
        assert watcher.health.topic_problems == {}
    assert await kafka_broker_offsets(bootstrap, name, second) == {0: 1}


def test_the_polls_and_the_watcher_are_told_apart() -> None:
    assert CLIENT_ID != WAKE_CLIENT_ID


async def test_a_flood_costs_at_most_ten_fetches_a_second(
    kafka_broker: KafkaBroker, name: str
) -> None:
    """Under a flood every Fetch is answered at once; the watcher waits REFETCH_GAP between
    two to one broker, so it sends at most elapsed / REFETCH_GAP + 1 of them (counted by the
    broker), however fast records come."""
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-flood"
    await create_topic(bootstrap, topic, 2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        async with watching(wake(bootstrap, name, topic), topic) as (_, hints):
            since = len(kafka_broker.requests())
            started = time.monotonic()
            sent = 0
            while time.monotonic() - started < 2.0:
                batch = [producer.send(topic, b"x", partition=i % 2) for i in range(500)]
                await asyncio.gather(*(await asyncio.gather(*batch)))
                sent += len(batch)
            elapsed = time.monotonic() - started
            await until(lambda: hints.count(topic) >= 2, "hints during the flood")
        await asyncio.sleep(0.5)  # the broker logs a request after answering it
        fetches = kafka_broker.request_counts(WAKE_CLIENT_ID, since)["FETCH"]
        bound = (elapsed + 1.0) / wake_kafka.REFETCH_GAP + 1  # + the catch-up's own second
        assert 2 <= fetches <= bound, (fetches, bound, sent)
        assert hints.count(topic) <= fetches + 1
    finally:
        await producer.stop()
