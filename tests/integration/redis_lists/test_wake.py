"""Wake hints from a real redis-server: keyspace notifications of the trigger's list.

Every trigger here is polled every 300 s (:data:`~tests.support.wake.SLOW_POLL`), so a value
that follows a push within the test's deadline was polled for a hint. Each test has a server
of its own (``fresh_redis``): the notification setting is the server's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from metrics_adapter.explain.local import ObjectReport, explain
from scalers.wake import CONNECTED, UNAVAILABLE
from scalers.wake_redis import CLIENT_NAME
from tests.support.redis_server import RedisServer
from tests.support.redis_server import binary as redis_binary
from tests.support.triggers import scaled_object
from tests.support.wake import until, woken

pytestmark = pytest.mark.integration


def metadata(server: RedisServer, **more: str) -> dict[str, str]:
    return {"address": server.address, "listName": "jobs", "listLength": "5", **more}


def notify(server: RedisServer, flags: str) -> None:
    with server.client() as client:
        client.config_set("notify-keyspace-events", flags)


def push(server: RedisServer, count: int, key: str = "jobs") -> None:
    with server.client() as client:
        client.rpush(key, *(f"job-{i}" for i in range(count)))


def length(server: RedisServer, key: str = "jobs") -> int:
    with server.client() as client:
        return int(client.llen(key))


@pytest.mark.parametrize("flags", ["Kl", "El", "KA"])
async def test_a_push_on_an_idle_list_is_polled_at_once(
    fresh_redis: RedisServer, flags: str
) -> None:
    notify(fresh_redis, flags)
    async with woken("idle", metadata(fresh_redis), "redis") as run:
        assert run.readings[-1].value == 0
        await run.state(CONNECTED)
        assert fresh_redis.connections_named(CLIENT_NAME) == 1

        push(fresh_redis, 3)
        woke = await run.reading("the pushed jobs", lambda r: r.value == 3)

        assert woke.active and run.extra_polls() >= 1
        assert length(fresh_redis) == 3  # nothing popped
        # Active now: the watcher's connection is closed until the target is idle again.
        await until(
            "watcher closed", lambda: fresh_redis.connections_named(CLIENT_NAME), lambda n: n == 0
        )


async def test_without_notifications_there_are_no_hints(fresh_redis: RedisServer) -> None:
    """Redis's default: notify-keyspace-events is empty. The trigger polls as before, and the
    watcher says why it gives no hints."""
    async with woken("silent", metadata(fresh_redis), "redis") as run:
        health = await run.state(UNAVAILABLE)
        assert "notify-keyspace-events" in (health.last_error or "")
        assert run.hints is not None
        assert run.hints.explain(run.bound).startswith("no: ")
        assert fresh_redis.connections_named(CLIENT_NAME) == 0


@pytest.mark.parametrize("flags", ["Kl", "El"])
async def test_a_flood_costs_at_most_one_poll_per_second(
    fresh_redis: RedisServer, flags: str
) -> None:
    """A few seconds of pushes as fast as one client sends them, the target kept idle by
    its activation threshold: extra polls counted by the server's EVALSHA calls."""
    notify(fresh_redis, flags)
    meta = metadata(fresh_redis, activationListLength="1000000000")
    async with woken("flood", meta, "redis") as run:
        await run.state(CONNECTED)
        polls, started = fresh_redis.command_calls("evalsha"), time.monotonic()
        pushed = 0
        with fresh_redis.client() as client:
            while time.monotonic() - started < 3.0:
                pipe = client.pipeline(transaction=False)
                for _ in range(100):
                    pipe.rpush("jobs", "x")
                pipe.execute()
                pushed += 100
        await run.reading("the flood", lambda r: r.value == pushed)
        elapsed = time.monotonic() - started
        extra = fresh_redis.command_calls("evalsha") - polls
        assert pushed >= 10_000, pushed
        assert 1 <= extra <= int(elapsed) + 2, (extra, elapsed)
        assert length(fresh_redis) == pushed


async def test_a_killed_connection_and_a_restart_are_followed(fresh_redis: RedisServer) -> None:
    notify(fresh_redis, "Kl")
    async with woken("restart", metadata(fresh_redis), "redis") as run:
        await run.state(CONNECTED)
        with fresh_redis.client() as client:
            killed = client.execute_command("CLIENT", "KILL", "ID", _wake_id(client))
        assert killed in (1, True)
        await until(
            "reconnected", lambda: fresh_redis.connections_named(CLIENT_NAME), lambda n: n == 1
        )
        await run.state(CONNECTED)
        push(fresh_redis, 1)
        await run.reading("the push after the kill", lambda r: r.value == 1)
        with fresh_redis.client() as client:
            client.delete("jobs")

    fresh_redis.restart()  # nothing is saved: notifications are off again until set
    notify(fresh_redis, "Kl")
    async with woken("restart2", metadata(fresh_redis), "redis") as run:
        await run.state(CONNECTED)
        fresh_redis.restart()
        notify(fresh_redis, "Kl")
        await until(
            "reconnected", lambda: fresh_redis.connections_named(CLIENT_NAME), lambda n: n == 1
        )
        await run.state(CONNECTED)
        push(fresh_redis, 2)
        await run.reading("the push after the restart", lambda r: r.value == 2)


async def test_hints_off_open_no_connection(fresh_redis: RedisServer) -> None:
    notify(fresh_redis, "Kl")
    async with woken("off", metadata(fresh_redis), "redis", hints=False) as run:
        push(fresh_redis, 1)
        assert fresh_redis.connections_named(CLIENT_NAME) == 0
        assert run.polls == 1 and run.readings[-1].value == 0


def _wake_id(client: object) -> int:
    import redis

    assert isinstance(client, redis.Redis)
    [found] = [c for c in client.client_list() if c.get("name") == CLIENT_NAME]
    return int(found["id"])


async def test_explain_says_why_a_trigger_gets_no_hints(
    fresh_redis: RedisServer, tmp_path: Path
) -> None:
    trigger = {"type": "redis", "metadata": metadata(fresh_redis)}
    (tmp_path / "so.yaml").write_text(yaml.safe_dump(scaled_object("q", "default", trigger)))
    [report] = await explain(tmp_path)
    assert isinstance(report, ObjectReport)
    hints = report.triggers[0].hints
    assert hints.startswith(f"no: redis://{fresh_redis.address}: notify-keyspace-events is"), hints

    notify(fresh_redis, "Kl")
    [report] = await explain(tmp_path)
    assert isinstance(report, ObjectReport)
    assert report.triggers[0].hints.startswith("yes: "), report.triggers[0].hints


async def test_a_user_refused_config_still_gets_hints() -> None:
    """Managed services refuse CONFIG: the watcher cannot check the setting, subscribes
    anyway, and hints when the server sends notifications."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server")
    server = RedisServer(binary, users=("bob on >pw ~* &* +@all -config",)).start()
    try:
        notify(server, "Kl")
        meta = {**metadata(server), "username": "bob", "password": "pw"}
        async with woken("acl", meta, "redis") as run:
            await run.state(CONNECTED)
            push(server, 1)
            await run.reading("the push", lambda r: r.value == 1)
    finally:
        server.cleanup()


async def test_a_user_refused_the_channels_gets_no_hints() -> None:
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server")
    server = RedisServer(binary, users=("carol on >pw ~* resetchannels +@all",)).start()
    try:
        notify(server, "Kl")
        meta = {**metadata(server), "username": "carol", "password": "pw"}
        async with woken("noperm", meta, "redis") as run:
            health = await run.state(UNAVAILABLE)
            assert "not permitted to subscribe" in (health.last_error or ""), health
    finally:
        server.cleanup()
