"""Make real JetStream state with nats-py: streams, durable consumers, messages."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy
from nats.js.errors import NoStreamResponseError

INTEREST_WITHIN = 10.0
"""Seconds until every node of a cluster routes a new stream's subjects to it: the server
answers the stream's creation before the other nodes have heard of it, and a publish through
one of them meanwhile finds no responders. A route carries it in milliseconds; the rest is
the margin a loaded machine needs."""


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
        messages = await sub.fetch(fetch, timeout=5)
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
        await js.add_stream(name=stream, subjects=[f"{subject}.>"], num_replicas=replicas)
        for consumer in consumers:
            await js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=consumer, ack_policy=AckPolicy.EXPLICIT, num_replicas=replicas
                ),
            )
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
