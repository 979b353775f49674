"""Make real JetStream state with nats-py: streams, durable consumers, messages."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

INTEREST_WITHIN = 10.0
"""Seconds until every node of a cluster routes a new stream's subjects to it: the server
answers the stream's creation before the other nodes have heard of it, and a publish through
one of them meanwhile finds no responders. A route carries it in milliseconds; the rest is
the margin a loaded machine needs."""


META_ELECTED_WITHIN = 2 * (9.0 + 0.8) + 5.0
"""Seconds a cluster's JetStream API may go unanswered: its meta leader is elected by Raft
(a follower campaigns after at most 9 s, a campaign waits at most 0.8 s more; a split vote
takes a second election), and the request asked meanwhile times out or is refused with 503.
Then 5 s of margin for a loaded machine."""


async def _until_answered(call: Callable[[], Awaitable[object]]) -> None:
    """``call`` a clustered JetStream API request, again while no meta leader answers it.
    Only for idempotent requests: creating a stream or a durable consumer with the same
    config twice is accepted."""
    deadline = time.monotonic() + META_ELECTED_WITHIN
    while True:
        try:
            await call()
            return
        except (NatsTimeout, ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _publish(js: JetStreamContext, subject: str, payload: bytes) -> None:
    """Publish and wait for the stream's ack, once the node knows where the stream is."""
    deadline = time.monotonic() + INTEREST_WITHIN
    while True:
        try:
            await js.publish(subject, payload)
            return
        except NoStreamResponseError:  # no responders: no route to the stream yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def prepare(
    url: str,
    stream: str,
    subject: str,
    consumers: list[str],
    publish: int = 0,
    workqueue: bool = False,
) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        retention = RetentionPolicy.WORK_QUEUE if workqueue else RetentionPolicy.LIMITS
        await js.add_stream(name=stream, subjects=[f"{subject}.>"], retention=retention)
        for consumer in consumers:
            await js.add_consumer(
                stream, ConsumerConfig(durable_name=consumer, ack_policy=AckPolicy.EXPLICIT)
            )
        for i in range(publish):
            await _publish(js, f"{subject}.job", f"msg-{i}".encode())
    finally:
        await nc.close()


async def publish(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for i in range(count):
            await _publish(js, subject, f"msg-{i}".encode())
    finally:
        await nc.close()


async def consume(url: str, stream: str, consumer: str, fetch: int, ack: int) -> None:
    """Fetch ``fetch`` messages on the durable pull consumer and ack the first ``ack``."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(consumer, stream)
        deadline = time.monotonic() + META_ELECTED_WITHIN
        while True:
            try:
                messages = await sub.fetch(fetch, timeout=5)
                break
            except ServiceUnavailableError:
                # A replicated consumer just created may have no leader yet: its 503 delivered
                # nothing, so asking again fetches the same messages (a timeout might not).
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        for msg in messages[:ack]:
            await msg.ack_sync()
    finally:
        await nc.close()


async def prepare_replicated(
    url: str, stream: str, subject: str, consumers: list[str], replicas: int = 3
) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await _until_answered(
            lambda: js.add_stream(name=stream, subjects=[f"{subject}.>"], num_replicas=replicas)
        )
        for consumer in consumers:
            config = ConsumerConfig(
                durable_name=consumer, ack_policy=AckPolicy.EXPLICIT, num_replicas=replicas
            )
            await _until_answered(functools.partial(js.add_consumer, stream, config))
    finally:
        await nc.close()


async def consumer_leader(url: str, stream: str, consumer: str) -> str:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(stream, consumer)
        assert info.cluster is not None and info.cluster.leader
        return str(info.cluster.leader)
    finally:
        await nc.close()


async def step_down(url: str, stream: str, consumer: str) -> None:
    """Ask the consumer's leader to step down, so another node leads it."""
    nc = await nats.connect(url)
    try:
        await nc.request(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}", b"", timeout=5)
    finally:
        await nc.close()
