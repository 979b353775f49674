"""Make real JetStream state with nats-py: streams, durable consumers, messages."""

from __future__ import annotations

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy


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
            await js.publish(f"{subject}.job", f"msg-{i}".encode())
    finally:
        await nc.close()


async def publish(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for i in range(count):
            await js.publish(subject, f"msg-{i}".encode())
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
