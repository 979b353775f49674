"""Kafka wake hints through the service: a record on an idle topic is polled at once.

Every trigger here is polled every 300 s (:data:`~tests.support.wake.SLOW_POLL`), so a value
that follows a produce within the test's deadline was polled for a hint. Polls are counted
by the broker: each one is an OffsetFetch from the polls' client id.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from scalers.kafka_client import CLIENT_ID
from scalers.wake import CONNECTED
from scalers.wake_kafka import WAKE_CLIENT_ID
from tests.integration.kafka.test_wake import kafka_broker_offsets, until
from tests.support.kafka import KafkaBroker, commit, create_topic, produce
from tests.support.wake import WITHIN, woken

pytestmark = pytest.mark.integration


def metadata(bootstrap: str, group: str, topic: str, **more: str) -> dict[str, str]:
    return {
        "bootstrapServers": bootstrap,
        "consumerGroup": group,
        "topic": topic,
        "lagThreshold": "10",
        **more,
    }


async def idle_topic(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """A topic whose group has committed everything (0 of nothing): lag 0, inactive."""
    await create_topic(bootstrap, topic, partitions)
    await commit(bootstrap, group, {(topic, p): 0 for p in range(partitions)})


async def test_a_record_on_an_idle_topic_is_polled_at_once(
    kafka_broker: KafkaBroker, name: str
) -> None:
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-jobs"
    await idle_topic(bootstrap, name, topic, 2)
    async with woken("idle", metadata(bootstrap, name, topic), "kafka") as run:
        first = run.readings[-1]
        assert (first.value, first.active) == (0, False)
        await run.state(CONNECTED)
        await produce(bootstrap, topic, {1: 3})
        woke = await run.reading("the produced records", lambda r: r.value == 3)
        assert woke.active and run.extra_polls() >= 1
        # Active now: the watcher is closed until the target is idle again.
        await until(lambda: run.health() is None, "the watcher closed", within=WITHIN)
    # Neither the watcher nor the polls moved the group.
    assert await kafka_broker_offsets(bootstrap, name, topic) == {0: 0, 1: 0}


async def test_a_flood_costs_at_most_one_poll_per_second(
    kafka_broker: KafkaBroker, name: str
) -> None:
    """Records as fast as one producer goes for 3 s, the target kept idle by its activation
    threshold: the extra polls, counted as the broker's OffsetFetch requests, stay within one
    per second."""
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-flood"
    await idle_topic(bootstrap, name, topic, 2)
    meta = metadata(
        bootstrap, name, topic, activationLagThreshold="1000000000", allowIdleConsumers="true"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        async with woken("flood", meta, "kafka") as run:
            await run.state(CONNECTED)
            since, started, sent = len(kafka_broker.requests()), time.monotonic(), 0
            while time.monotonic() - started < 3.0:
                batch = [producer.send(topic, b"x", partition=i % 2) for i in range(500)]
                await asyncio.gather(*(await asyncio.gather(*batch)))
                sent += len(batch)
            await run.reading("the flood", lambda r: r.value == sent)
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.5)  # the broker logs a request after answering it
            polls = kafka_broker.request_counts(CLIENT_ID, since)["OFFSET_FETCH"]
            assert 1 <= polls <= int(elapsed) + 2, (polls, elapsed, sent)
            assert not run.readings[-1].active
    finally:
        await producer.stop()


async def test_a_spurious_hint_activates_nothing(kafka_broker: KafkaBroker, name: str) -> None:
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-empty"
    await idle_topic(bootstrap, name, topic, 1)
    async with woken("spurious", metadata(bootstrap, name, topic), "kafka") as run:
        await run.state(CONNECTED)
        assert run.hints is not None
        loop, polls = run.poller._loops[run.bound.scaler.query], run.polls
        run.hints._hint(run.wake.watcher, run.wake.topic)
        assert loop.hinted is not None
        # A poll clears the hint when it starts, so a reading that comes while it is cleared
        # is from a poll started after the hint (the one in flight then, if any, came before).
        await run.reading("the hint's poll", lambda _: loop.hinted is None and run.polls > polls)
        assert all((r.value, r.active) == (0, False) for r in run.readings)
        assert run.health() is not None  # still idle, still watched


async def test_a_restarted_broker_is_watched_and_polled_again(own_broker: KafkaBroker) -> None:
    bootstrap = own_broker.bootstrap
    await idle_topic(bootstrap, "workers", "jobs", 1)
    async with woken("restart", metadata(bootstrap, "workers", "jobs"), "kafka") as run:
        await run.state(CONNECTED)
        await asyncio.to_thread(own_broker.stop)
        await asyncio.to_thread(own_broker.start)
        await run.state(CONNECTED)
        polls = run.polls
        await produce(bootstrap, "jobs", {0: 2})
        await run.reading("records after the restart", lambda r: r.value == 2)
        assert run.polls > polls


async def test_explain_says_the_trigger_is_watched(kafka_broker: KafkaBroker, name: str) -> None:
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-jobs"
    await idle_topic(bootstrap, name, topic, 1)
    async with woken("explained", metadata(bootstrap, name, topic), "kafka") as run:
        await run.state(CONNECTED)
        assert run.hints is not None
        shown = run.hints.explain(run.bound)
        assert shown.startswith("yes: ") and f"kafka {bootstrap}" in shown, shown


async def test_hints_off_send_nothing_from_the_watcher(
    kafka_broker: KafkaBroker, name: str
) -> None:
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-jobs"
    await idle_topic(bootstrap, name, topic, 1)
    since = len(kafka_broker.requests())
    async with woken("off", metadata(bootstrap, name, topic), "kafka", hints=False) as run:
        await asyncio.to_thread(kafka_broker.wait_for_requests, CLIENT_ID, "OFFSET_FETCH", 1, since)
        assert run.readings[-1].error is None
    # A watcher opens with ApiVersions, Metadata and ListOffsets (a Fetch logged meanwhile is
    # an earlier test's watcher's last one, answered when it closed).
    opened = {"API_VERSIONS", "METADATA", "LIST_OFFSETS"}
    assert not opened & set(kafka_broker.request_counts(WAKE_CLIENT_ID, since))
