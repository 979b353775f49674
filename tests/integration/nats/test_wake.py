"""Wake hints from a real nats-server: a core subscription to the stream's subjects.

Every trigger here is polled every 300 s (:data:`~tests.support.wake.SLOW_POLL`), so a value
that follows a publish within the test's deadline was polled for a hint.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from metrics_adapter.config.settings import Settings
from metrics_adapter.explain.local import ObjectReport, explain, render
from metrics_adapter.server import build
from scalers.wake import CONNECTED, UNAVAILABLE
from scalers.wake_nats import CLIENT_NAME
from tests.support import jetstream
from tests.support.nats import NatsCluster, NatsServer
from tests.support.triggers import scaled_object
from tests.support.wake import consumer_counts, until, woken

pytestmark = pytest.mark.integration


def metadata(server: NatsServer, **more: str) -> dict[str, str]:
    return {**metadata_at(server.monitoring_endpoint), "lagThreshold": "10", **more}


def consumer(server: NatsServer) -> dict[str, Any]:
    jsz = server.get("/jsz?acc=$G&consumers=true")
    [account] = jsz["account_details"]
    [stream] = account["stream_detail"]
    [found] = stream["consumer_detail"]
    return dict(found)


def watchers(server: NatsServer) -> int:
    """Our wake connections, counted by the server."""
    connz = server.get("/connz?limit=1024")
    return sum(1 for c in connz.get("connections") or () if c.get("name") == CLIENT_NAME)


@pytest.mark.parametrize("workqueue", [False, True], ids=["limits", "workqueue"])
async def test_a_message_on_an_idle_stream_is_polled_at_once(
    nats_server: NatsServer, workqueue: bool
) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], workqueue=workqueue)
    async with woken("idle", metadata(nats_server), "nats-jetstream") as run:
        first = run.readings[-1]
        assert first.value == 0 and not first.active
        await run.state(CONNECTED)
        assert watchers(nats_server) == 1
        before = consumer_counts(consumer(nats_server))

        await jetstream.publish(nats_server.url, "jobs.one", 1)
        woke = await run.reading("the published message", lambda r: r.value == 1)

        assert woke.active and run.extra_polls() >= 1
        # Nothing consumed, nothing delivered: the consumer is as the publish left it.
        assert consumer_counts(consumer(nats_server)) == before
        assert consumer(nats_server)["num_pending"] == 1
        # Active now: the watcher is closed until the target is idle again.
        await until("the watcher closed", lambda: watchers(nats_server), lambda n: n == 0)


async def test_a_flood_costs_at_most_one_poll_per_second(nats_server: NatsServer) -> None:
    """10,000 messages a second for 3 s on a watched subject, the target kept idle by its
    activation threshold: the extra polls are counted by the server's /jsz requests."""
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    meta = metadata(nats_server, activationLagThreshold="1000000000")
    async with woken("flood", meta, "nats-jetstream") as run:
        await run.state(CONNECTED)
        served, started = nats_server.requests_served("/jsz"), time.monotonic()
        nc = await nats.connect(nats_server.url)
        try:
            for _second in range(3):
                tick = time.monotonic()
                for i in range(10_000):
                    await nc.publish("jobs.flood", b"x")
                    if i % 1000 == 999:
                        await nc.flush()
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            await nc.flush()
        finally:
            await nc.close()
        await run.reading("the flood", lambda r: r.value == 30_000)
        elapsed = time.monotonic() - started
        polls = nats_server.requests_served("/jsz") - served
        assert 1 <= polls <= int(elapsed) + 2, (polls, elapsed)
        assert consumer_counts(consumer(nats_server)) == (0, 0)


async def test_a_restarted_server_is_watched_again(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    async with woken("restart", metadata(nats_server), "nats-jetstream") as run:
        await run.state(CONNECTED)
        nats_server.restart()
        # The watcher saw its connection end; it connects again within its backoff.
        await run.state(CONNECTED)
        polls = run.polls
        await jetstream.publish(nats_server.url, "jobs.after", 2)
        await run.reading("messages after the restart", lambda r: r.value == 2)
        assert run.polls > polls


async def test_a_spurious_hint_activates_nothing(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    async with woken("spurious", metadata(nats_server), "nats-jetstream") as run:
        await run.state(CONNECTED)
        assert run.hints is not None
        # The first scheduled poll and the one for the connection's own hint, in either order
        # (a hint answered by a poll that started after it needs no other); then none for 300 s.
        await run.reading("the first two polls", lambda _: run.polls >= 2)
        extra = run.extra_polls()
        run.hints._hint(run.wake.watcher, run.wake.topic)
        # The extra poll starts after the hint (counted then); its reading is the next one.
        reading = await run.reading("the hint's poll", lambda _: run.extra_polls() > extra)
        assert reading.value == 0 and not reading.active


async def test_hints_off_open_no_connection(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    async with woken("off", metadata(nats_server), "nats-jetstream", hints=False) as run:
        await jetstream.publish(nats_server.url, "jobs.one", 1)
        await asyncio.sleep(1.0)  # what a hint would need, many times over
        assert watchers(nats_server) == 0
        assert run.polls == 1 and run.readings[-1].value == 0


def objects_dir(tmp_path: Path, endpoint: str) -> Path:
    trigger = {"type": "nats-jetstream", "metadata": {**metadata_at(endpoint)}}
    doc = scaled_object("explained", "default", trigger)
    (tmp_path / "so.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def metadata_at(endpoint: str) -> dict[str, str]:
    return {
        "natsServerMonitoringEndpoint": endpoint,
        "account": "$G",
        "stream": "JOBS",
        "consumer": "workers",
    }


async def test_explain_says_whether_a_trigger_gets_hints(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    [idle] = await explain(objects_dir(tmp_path, nats_server.monitoring_endpoint))
    assert isinstance(idle, ObjectReport)
    [trigger] = idle.triggers
    assert trigger.hints.startswith("yes: from nats (monitoring "), trigger.hints
    assert "hints: 0:nats-jetstream: yes" in render([idle])

    await jetstream.publish(nats_server.url, "jobs.one", 1)
    [active] = await explain(objects_dir(tmp_path, nats_server.monitoring_endpoint))
    assert isinstance(active, ObjectReport)
    assert active.triggers[0].hints.startswith("not now: the target is active")


async def test_a_server_requiring_credentials_gives_no_hints(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The trigger has only the monitoring endpoint: nothing to authenticate with. It is
    polled as before, and explain says why it gets no hints."""
    wrapper = tmp_path / "nats-server"
    wrapper.write_text(f'#!/bin/sh\nexec "{nats_server.binary}" "$@" --user app --pass s3cret\n')
    wrapper.chmod(0o755)
    secured = NatsServer(wrapper, name="secured").start()
    try:
        url = secured.url.replace("nats://", "nats://app:s3cret@")
        await jetstream.prepare(url, "JOBS", "jobs", ["workers"])
        async with woken("secured", metadata(secured), "nats-jetstream") as run:
            health = await run.state(UNAVAILABLE)
            assert "requires clients to authenticate" in (health.last_error or "")
            assert run.hints is not None
            assert run.hints.explain(run.bound).startswith("no: nats (monitoring ")
            assert watchers(secured) == 0
    finally:
        secured.cleanup()


async def test_a_cluster_is_watched_through_the_endpoints_node(nats_cluster: NatsCluster) -> None:
    """The watcher connects to the endpoint's node; a message published on another node
    reaches it (interest is routed), however the stream is replicated."""
    first, other = nats_cluster.hosts[0], nats_cluster.hosts[1]
    await jetstream.prepare_replicated(nats_cluster.url(first), "JOBS", "jobs", ["workers"])
    meta = {**metadata_at(nats_cluster.monitoring_endpoint(first)), "lagThreshold": "10"}
    async with woken("clustered", meta, "nats-jetstream") as run:
        await run.state(CONNECTED)
        await jetstream.publish(nats_cluster.url(other), "jobs.one", 1)
        await run.reading("the message published on another node", lambda r: r.value == 1)


async def test_serve_without_wake_hints_opens_no_watcher(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """--no-wake-hints: the adapter as serve builds it has no watchers; with them, one."""
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"])
    directory = objects_dir(tmp_path, nats_server.monitoring_endpoint)
    off = build(Settings(scaledobjects=directory, wake_hints=False))
    assert off.hints is None
    on = build(Settings(scaledobjects=directory))
    assert on.hints is not None
    tasks = [asyncio.create_task(on.poller.run()), asyncio.create_task(on.hints.run())]
    try:
        await until("a watcher connection", lambda: watchers(nats_server), lambda n: n == 1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await on.poller.clients.aclose()
    await until("no watcher connection", lambda: watchers(nats_server), lambda n: n == 0)
