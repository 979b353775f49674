"""RabbitMQ wake hints against a real node: a publish to an idle queue is a hint, and the
watcher consumes nothing, re-delivers nothing and creates nothing (counted by the server).

Waits: the watcher declares each queue every :data:`EVERY` s (0.1), so a hint follows a
publish within about that; the tests allow :data:`HINT_WITHIN` s for a loaded machine.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import pytest

from scalers import rabbitmq, wake_rabbitmq
from scalers.wake import BACKOFF, CONNECTED, UNAVAILABLE, NoWake, Topic, Wake, WatchOptions, wake_of
from scalers.wake_rabbitmq import HTTP_ONLY, WAKE_CONNECTION_NAME, RabbitMQWatch, RabbitMQWatcher
from tests.support.rabbitmq import NEEDS, RabbitMQServer, available, wait_until
from tests.support.triggers import build

pytestmark = pytest.mark.integration

HINT_WITHIN = 10.0


class Hints:
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


def watch_of(
    host: str, queue: str, auth: dict[str, str] | None = None, **meta: str
) -> RabbitMQWatch:
    params = {"host": host, **(auth or {})}
    scaler = build(rabbitmq.KIND, rabbitmq.RabbitMQScaler, {"queueName": queue, **meta}, params)
    found = wake_of(scaler)
    assert isinstance(found, Wake) and isinstance(found.watcher, RabbitMQWatch), found
    assert found.topic == queue
    return found.watcher


@asynccontextmanager
async def watching(
    watch: RabbitMQWatch, *queues: str
) -> AsyncIterator[tuple[RabbitMQWatcher, Hints]]:
    hints = Hints()
    watcher = watch.open(hints, WatchOptions(timeout=5.0, backoff_initial=0.2, backoff_max=1.0))
    assert isinstance(watcher, RabbitMQWatcher)
    watcher.watch(queues)
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.health.state == CONNECTED, "connected")
        yield watcher, hints
    finally:
        task.cancel()
        await asyncio.wait({task})


def stats(queue: dict[str, Any]) -> dict[str, int]:
    """What the server counts of deliveries: none of these may move because of us."""
    found = queue.get("message_stats") or {}
    keys = ("deliver", "deliver_get", "deliver_no_ack", "get", "get_no_ack", "redeliver", "ack")
    return {k: found.get(k, 0) for k in keys}


def watcher_connections(server: RabbitMQServer) -> list[dict[str, Any]]:
    return [
        c
        for c in server.connections()
        if c["client_properties"].get("connection_name") == WAKE_CONNECTION_NAME
    ]


async def the_watcher_connection(server: RabbitMQServer, channels: bool = False) -> dict[str, Any]:
    """The watcher's one connection, once the management API lists it (it lags a little),
    and with ``channels`` once its statistics count a channel (they lag a little more)."""

    def listed(found: list[dict[str, Any]]) -> bool:
        return len(found) == 1 and (not channels or found[0].get("channels", 0) >= 1)

    connections = await asyncio.to_thread(
        wait_until, lambda: watcher_connections(server), listed, 10, "connections"
    )
    found: dict[str, Any] = connections[0]
    return found


async def test_a_publish_to_an_idle_queue_is_a_hint_and_nothing_is_delivered(
    rabbit: RabbitMQServer, name: str
) -> None:
    jobs, quiet = f"{name}-jobs", f"{name}-quiet"
    rabbit.add_queue(jobs)
    rabbit.add_queue(quiet)
    queues_before = sorted(q["name"] for q in rabbit.api("GET", "/api/queues"))
    exchanges_before = sorted(e["name"] for e in rabbit.api("GET", "/api/exchanges"))
    async with watching(watch_of(rabbit.amqp_host(), jobs), jobs, quiet) as (_, hints):
        assert sorted(map(str, hints.seen)) == sorted([jobs, quiet])  # the catch-up, once each
        await asyncio.to_thread(rabbit.publish, jobs, 1)
        await until(lambda: hints.count(jobs) == 2, "a hint for 0 → 1")
        await asyncio.to_thread(rabbit.publish, jobs, 3)
        await until(lambda: hints.count(jobs) == 3, "a hint for 1 → 4")
        assert hints.count(quiet) == 1
        connection = await the_watcher_connection(rabbit, channels=True)
        assert connection["channels"] == 1
        # Let the server's statistics catch up with the watcher's declares, then count.
        await asyncio.sleep(1.0)
        queue = await asyncio.to_thread(
            rabbit.wait_for_queue, jobs, lambda q: q.get("messages") == 4
        )
    assert stats(queue) == dict.fromkeys(stats(queue), 0), queue.get("message_stats")
    assert queue["messages_ready"] == 4 and queue["consumers"] == 0
    assert sorted(q["name"] for q in rabbit.api("GET", "/api/queues")) == queues_before
    assert sorted(e["name"] for e in rabbit.api("GET", "/api/exchanges")) == exchanges_before
    await until(lambda: not watcher_connections(rabbit), "the watcher's connection closed")


# aiormq 6.9 leaves its socket open after the server's Connection.Close (see test_rabbitmq.py):
# it is collected at the end of the test, where that warning is expected.
@pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")
async def test_a_killed_connection_is_reopened_and_watches_again(
    rabbit: RabbitMQServer, name: str
) -> None:
    jobs = f"{name}-jobs"
    rabbit.add_queue(jobs)
    async with watching(watch_of(rabbit.amqp_host(), jobs), jobs) as (watcher, hints):
        connection = await the_watcher_connection(rabbit)
        path = f"/api/connections/{quote(connection['name'], safe='')}"
        await asyncio.to_thread(rabbit.api, "DELETE", path)
        await until(lambda: watcher.health.state == BACKOFF, "backing off")
        await until(lambda: watcher.health.state == CONNECTED, "reconnected")
        await until(lambda: hints.count(jobs) == 2, "the reconnect's catch-up hint")
        await asyncio.to_thread(rabbit.publish, jobs, 1)
        await until(lambda: hints.count(jobs) == 3, "a hint after reconnecting")
        await the_watcher_connection(rabbit)
    gc.collect()


async def test_a_missing_queue_is_refused_until_it_exists(
    rabbit: RabbitMQServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake_rabbitmq, "RECHECK_REFUSED", 0.2)
    jobs, other = f"{name}-later", f"{name}-other"
    rabbit.add_queue(other)
    async with watching(watch_of(rabbit.amqp_host(), jobs), jobs, other) as (watcher, hints):
        await until(lambda: jobs in watcher.health.topic_problems, "refused")
        assert watcher.health.topic_problems[jobs] == f'queue "{jobs}" does not exist'
        # The refusal closed the channel; the other queue is still watched.
        await asyncio.to_thread(rabbit.publish, other, 1)
        await until(lambda: hints.count(other) == 2, "a hint on the other queue")
        await asyncio.to_thread(rabbit.add_queue, jobs)
        await asyncio.to_thread(rabbit.publish, jobs, 2)
        await until(lambda: hints.count(jobs) == 2, "a hint once it exists with messages")
        assert watcher.health.topic_problems == {}
    # A passive declare created nothing: the queue is the one the test made, not ours.
    assert rabbit.queue(jobs)["durable"] is False


# aiormq 6.9 leaves its socket open after the server's Connection.Close (see test_rabbitmq.py):
# it is collected at the end of the test, where that warning is expected.
@pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")
async def test_a_restarted_server_is_watched_again(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    monkeypatch.setattr(wake_rabbitmq, "RECHECK_REFUSED", 0.2)
    server = RabbitMQServer().start()
    try:
        jobs = f"{name}-jobs"
        server.add_queue(jobs)
        async with watching(watch_of(server.amqp_host(), jobs), jobs) as (watcher, hints):
            await asyncio.to_thread(server.stop)
            await until(lambda: watcher.health.state == BACKOFF, "backing off", within=30)
            await asyncio.to_thread(server.start)
            await until(lambda: watcher.health.state == CONNECTED, "reconnected", within=60)
            # A restart loses a transient queue: the watcher says so instead of hinting.
            await until(lambda: jobs in watcher.health.topic_problems, "refused after restart")
            await asyncio.to_thread(server.add_queue, jobs)
            await until(lambda: not watcher.health.topic_problems, "accepted once re-declared")
            seen = hints.count(jobs)
            await asyncio.to_thread(server.publish, jobs, 1)
            await until(lambda: hints.count(jobs) > seen, "a hint after the restart")
            await asyncio.to_thread(
                wait_until, lambda: server.queue(jobs), lambda q: q.get("messages") == 1, 10, jobs
            )
    finally:
        server.cleanup()
    gc.collect()


def test_an_http_trigger_gets_no_hints_and_says_why(rabbit: RabbitMQServer) -> None:
    scaler = build(
        rabbitmq.KIND, rabbitmq.RabbitMQScaler, {"queueName": "jobs"}, {"host": rabbit.http_host()}
    )
    assert wake_of(scaler) == NoWake(HTTP_ONLY)


def test_triggers_of_one_server_vhost_and_login_share_a_watcher(rabbit: RabbitMQServer) -> None:
    assert watch_of(rabbit.amqp_host(), "a") == watch_of(rabbit.amqp_host(), "b")
    assert watch_of(rabbit.amqp_host(), "a") != watch_of(rabbit.amqp_host(vhost="other"), "a")
    shown = repr(watch_of(rabbit.amqp_host(password="s3cret-pw"), "a"))
    assert (
        "s3cret-pw" not in shown
        and "s3cret-pw" not in watch_of(rabbit.amqp_host(password="s3cret-pw"), "a").describe()
    )


async def test_the_watcher_uses_the_triggers_tls(rabbit: RabbitMQServer, name: str) -> None:
    jobs = f"{name}-tls"
    rabbit.add_queue(jobs)
    watch = watch_of(rabbit.amqps_host(), jobs, {"tls": "enable", "ca": rabbit.ca_pem})
    assert watch.server.scheme == "amqps"
    async with watching(watch, jobs) as (_, hints):
        await asyncio.to_thread(rabbit.publish, jobs, 1)
        await until(lambda: hints.count(jobs) == 2, "a hint over TLS")


async def test_a_refused_login_is_unavailable_and_says_why(
    rabbit: RabbitMQServer, name: str
) -> None:
    watch = watch_of(rabbit.amqp_host(password="wrong-password"), f"{name}-jobs")
    watcher = watch.open(Hints(), WatchOptions(timeout=5.0))
    watcher.watch({f"{name}-jobs"})
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.health.state == UNAVAILABLE, "unavailable")
        error = str(watcher.health.last_error)
        assert "login refused" in error and "wrong-password" not in error, error
    finally:
        task.cancel()
        await asyncio.wait({task})
