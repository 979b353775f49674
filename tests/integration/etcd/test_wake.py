"""Wake hints from a real etcd: a watch of the trigger's key.

Every trigger here is polled every 300 s (:data:`~tests.support.wake.SLOW_POLL`), so a value
that follows a put within the test's deadline was polled for a hint.
"""

from __future__ import annotations

import asyncio

import pytest

from scalers.wake import CONNECTED, Wake, WatchOptions, wake_of
from tests.support.etcd_server import ROOT, EtcdServer
from tests.support.servers import free_port
from tests.support.triggers import trigger
from tests.support.wake import WITHIN, woken

pytestmark = pytest.mark.integration


async def test_a_put_on_an_idle_key_is_polled_at_once(etcd: EtcdServer, key: str) -> None:
    etcd.put(key, "0")
    meta = {"endpoints": etcd.endpoint, "watchKey": key, "value": "5"}
    async with woken("idle", meta, "etcd") as run:
        assert run.readings[-1].value == 0
        await run.state(CONNECTED)
        etcd.put(key, "12")
        woke = await run.reading("the new value", lambda r: r.value == 12)
        assert woke.active and run.extra_polls() >= 1


async def test_a_watch_with_a_token_and_a_first_endpoint_down(
    auth_etcd: EtcdServer, key: str
) -> None:
    """The token comes from the trigger's credentials; the session on the endpoint that is
    down fails, and the next one watches on the other."""
    auth_etcd.put(key, "0")
    endpoints = f"127.0.0.1:{free_port()},{auth_etcd.endpoint}"
    meta = {"endpoints": endpoints, "watchKey": key, "value": "5"}
    scaler = trigger("etcd", meta, {"username": ROOT[0], "password": ROOT[1]})
    wake = wake_of(scaler)
    assert isinstance(wake, Wake)
    hints: list[object] = []
    arrived = asyncio.Event()

    def on_hint(topic: object) -> None:
        hints.append(topic)
        arrived.set()

    watcher = wake.watcher.open(on_hint, WatchOptions(timeout=3.0, backoff_initial=0.1))
    watcher.watch([key])
    task = asyncio.create_task(watcher.run())
    try:
        async with asyncio.timeout(WITHIN):
            await arrived.wait()  # the watch is confirmed: one hint for what was missed
        assert hints == [key] and watcher.health.state == CONNECTED
        arrived.clear()
        auth_etcd.put(key, "7")
        async with asyncio.timeout(WITHIN):
            await arrived.wait()
        assert hints == [key, key]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
