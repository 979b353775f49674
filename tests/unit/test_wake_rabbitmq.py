"""The RabbitMQ watcher's session over a fake AMQP client: which counts are hints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiormq.exceptions
import pytest

from scalers import wake_rabbitmq
from scalers.rabbitmq_client import AmqpServer
from scalers.wake import CONNECTED, Topic, WatchOptions
from scalers.wake_rabbitmq import RabbitMQWatch, RabbitMQWatcher


class FakeClient:
    """Counts per queue, set by the test; a queue absent from them is NOT_FOUND."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.usable = True
        self.declares = 0
        self.closed = False

    async def message_count(self, queue: str) -> int:
        self.declares += 1
        if queue not in self.counts:
            raise aiormq.exceptions.ChannelNotFoundEntity(f"NOT_FOUND - no queue '{queue}'")
        return self.counts[queue]

    async def close(self) -> None:
        self.closed = True


SERVER = AmqpServer("amqp", "127.0.0.1:5672", "/", "guest", "s3cret")


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()

    async def connect(server: AmqpServer, within: float, name: str) -> FakeClient:
        assert (server, name) == (SERVER, wake_rabbitmq.WAKE_CONNECTION_NAME)
        return fake

    monkeypatch.setattr(wake_rabbitmq, "connect", connect)
    monkeypatch.setattr(wake_rabbitmq, "EVERY", 0.01)
    monkeypatch.setattr(wake_rabbitmq, "RECHECK_REFUSED", 0.05)
    return fake


async def test_a_rising_count_is_a_hint_and_a_falling_one_is_not(client: FakeClient) -> None:
    client.counts = {"jobs": 0, "other": 3}
    hints: list[Topic] = []
    watcher = RabbitMQWatch(SERVER).open(hints.append, WatchOptions())
    assert isinstance(watcher, RabbitMQWatcher)
    watcher.watch({"jobs", "other"})
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.health.state == CONNECTED, "connected")
        declared = client.declares
        await until(lambda: client.declares >= declared + 4, "two rounds")
        assert sorted(map(str, hints)) == ["jobs", "other"]  # the catch-up only
        client.counts["jobs"] = 2
        await until(lambda: hints.count("jobs") == 2, "0 → 2")
        client.counts["jobs"] = 1
        client.counts["other"] = 4
        await until(lambda: hints.count("other") == 2, "3 → 4")
        client.counts["jobs"] = 3
        await until(lambda: hints.count("jobs") == 3, "1 → 3: a rise, not only from 0")
        del client.counts["other"]
        await until(lambda: "other" in watcher.health.topic_problems, "refused")
        assert watcher.health.topic_problems["other"] == 'queue "other" does not exist'
        client.counts["other"] = 1  # back, with a message: that is news
        await until(lambda: hints.count("other") == 3, "reappeared with a message")
        assert not watcher.health.topic_problems
        client.usable = False
        await until(lambda: watcher.health.last_error is not None, "the session ended")
        assert "AMQP connection closed" in str(watcher.health.last_error)
        assert client.closed
    finally:
        task.cancel()
        await asyncio.wait({task})


def test_the_key_hides_the_login() -> None:
    watch = RabbitMQWatch(SERVER)
    assert "s3cret" not in repr(watch) and "s3cret" not in watch.describe()
    assert watch.describe() == "AMQP amqp://127.0.0.1:5672/%2F"
    assert watch == RabbitMQWatch(AmqpServer("amqp", "127.0.0.1:5672", "/", "guest", "s3cret"))
    assert watch != RabbitMQWatch(AmqpServer("amqp", "127.0.0.1:5672", "/", "guest", "other"))
