"""RabbitMQ wake hints through the service: a publish to an idle queue is polled at once.

Every trigger here is polled every 300 s (:data:`~tests.support.wake.SLOW_POLL`), so a value
that follows a publish within the test's deadline was polled for a hint.
"""

from __future__ import annotations

import asyncio
import gc
import time
from urllib.parse import quote

import aiormq
import pytest

from scalers.wake import BACKOFF, CONNECTED
from scalers.wake_rabbitmq import HTTP_ONLY
from tests.integration.rabbitmq.test_wake import stats, the_watcher_connection, watcher_connections
from tests.support.rabbitmq import RabbitMQServer, wait_until
from tests.support.wake import WITHIN, woken

pytestmark = pytest.mark.integration


def metadata(server: RabbitMQServer, queue: str, **more: str) -> dict[str, str]:
    return {
        "host": server.amqp_host(),
        "queueName": queue,
        "mode": "QueueLength",
        "value": "5",
    } | more


async def test_a_publish_to_an_idle_queue_is_polled_at_once(
    rabbit: RabbitMQServer, name: str
) -> None:
    queue = f"{name}-jobs"
    rabbit.add_queue(queue)
    async with woken("idle", metadata(rabbit, queue), "rabbitmq") as run:
        assert (run.readings[-1].value, run.readings[-1].active) == (0, False)
        await run.state(CONNECTED)
        await asyncio.to_thread(rabbit.publish, queue, 3)
        woke = await run.reading("the published messages", lambda r: r.value == 3)
        assert woke.active and run.extra_polls() >= 1
        # Active now: the watcher's connection is closed until the target is idle again.
        await asyncio.to_thread(
            wait_until, lambda: watcher_connections(rabbit), lambda c: not c, WITHIN, "closed"
        )
    # Nothing delivered, nothing taken: the server still holds the three messages, ready.
    found = await asyncio.to_thread(rabbit.wait_for_queue, queue, lambda q: q.get("messages") == 3)
    assert found["messages_ready"] == 3
    assert stats(found) == dict.fromkeys(stats(found), 0), found.get("message_stats")


async def test_a_flood_costs_at_most_one_poll_per_second(rabbit: RabbitMQServer, name: str) -> None:
    """Messages as fast as one AMQP publisher goes for 3 s, the target kept idle by its
    activation value: the watcher sees the count rise every 100 ms, and the polls (counted
    by the poller's readings) stay within one a second."""
    queue = f"{name}-flood"
    rabbit.add_queue(queue)
    meta = metadata(rabbit, queue, activationValue="1000000000")
    connection = await aiormq.connect(rabbit.amqp_host())
    try:
        channel = await connection.channel()
        async with woken("flood", meta, "rabbitmq") as run:
            await run.state(CONNECTED)
            polls, started, sent = run.polls, time.monotonic(), 0
            while time.monotonic() - started < 3.0:
                await asyncio.gather(
                    *(channel.basic_publish(b"x", routing_key=queue) for _ in range(200))
                )
                sent += 200
            await run.reading("the flood", lambda r: r.value == sent)
            elapsed = time.monotonic() - started
            assert 1 <= run.polls - polls <= int(elapsed) + 2, (run.polls - polls, elapsed, sent)
            assert not run.readings[-1].active
    finally:
        await connection.close()


async def test_a_spurious_hint_activates_nothing(rabbit: RabbitMQServer, name: str) -> None:
    queue = f"{name}-empty"
    rabbit.add_queue(queue)
    async with woken("spurious", metadata(rabbit, queue), "rabbitmq") as run:
        await run.state(CONNECTED)
        assert run.hints is not None
        loop, polls = run.poller._loops[run.bound.scaler.query], run.polls
        run.hints._hint(run.wake.watcher, run.wake.topic)
        assert loop.hinted is not None
        # A poll clears the hint when it starts: a reading that comes while it is cleared is
        # from a poll started after the hint.
        await run.reading("the hint's poll", lambda _: loop.hinted is None and run.polls > polls)
        assert all((r.value, r.active) == (0, False) for r in run.readings)
        assert run.health() is not None  # still idle, still watched


# aiormq 6.9 leaves its socket open after the server's Connection.Close (see test_rabbitmq.py):
# it is collected at the end of the test, where that warning is expected.
@pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")
async def test_a_killed_watcher_connection_reconnects_and_polls_stay_right(
    rabbit: RabbitMQServer, name: str
) -> None:
    queue = f"{name}-jobs"
    rabbit.add_queue(queue)
    async with woken("killed", metadata(rabbit, queue), "rabbitmq") as run:
        await run.state(CONNECTED)
        connection = await the_watcher_connection(rabbit)
        path = f"/api/connections/{quote(connection['name'], safe='')}"
        await asyncio.to_thread(rabbit.api, "DELETE", path)
        await run.state(BACKOFF)
        await run.state(CONNECTED)
        polls = run.polls
        await asyncio.to_thread(rabbit.publish, queue, 2)
        await run.reading("messages after the reconnect", lambda r: r.value == 2)
        assert run.polls > polls and run.readings[-1].error is None
    gc.collect()


async def test_explain_says_whether_a_trigger_gets_hints(rabbit: RabbitMQServer, name: str) -> None:
    queue = f"{name}-jobs"
    rabbit.add_queue(queue)
    async with woken("amqp", metadata(rabbit, queue), "rabbitmq") as run:
        await run.state(CONNECTED)
        assert run.hints is not None
        shown = run.hints.explain(run.bound)
        where = f"AMQP amqp://127.0.0.1:{rabbit.amqp_port}/%2F"
        assert shown.startswith("yes: ") and where in shown, shown
    http = metadata(rabbit, queue, host=rabbit.http_host())
    async with woken("http", http, "rabbitmq") as run:
        assert run.hints is not None
        assert run.hints.explain(run.bound) == f"no: {HTTP_ONLY}"


async def test_hints_off_open_no_watcher_connection(rabbit: RabbitMQServer, name: str) -> None:
    queue = f"{name}-jobs"
    rabbit.add_queue(queue)
    async with woken("off", metadata(rabbit, queue), "rabbitmq", hints=False) as run:
        await asyncio.to_thread(
            wait_until, rabbit.connections, lambda c: len(c) >= 1, WITHIN, "the poll's connection"
        )
        assert run.readings[-1].error is None
        assert await asyncio.to_thread(watcher_connections, rabbit) == []
