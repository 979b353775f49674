"""external-push: StreamIsActive held open by the wake watcher, against a real scaler.

A ``true`` on the stream is a hint (the trigger is polled at once, and IsActive activates
it); a ``false`` is none. The stream is opened again after the scaler restarts. Triggers in
:func:`~tests.support.wake.woken` are polled every 300 s, so a reading that follows a push
within the test's deadline was polled for the hint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from scalers.external_client import Endpoint, Ref
from scalers.wake import BACKOFF, CONNECTED, UNAVAILABLE, Watcher, WatchOptions
from scalers.wake_external import ExternalWatch
from tests.support.external_scaler import ExternalScalerServer, serving
from tests.support.wake import WITHIN, until, woken

pytestmark = pytest.mark.integration

REF = Ref.of("orders", "shop", {"queue": "orders"})
OPTIONS = WatchOptions(timeout=3.0, backoff_initial=0.2, backoff_max=1.0)


@asynccontextmanager
async def watching(
    server: ExternalScalerServer, *refs: Ref
) -> AsyncIterator[tuple[Watcher, list[object]]]:
    """The endpoint's watcher, running and watching ``refs``; with the hints it gave."""
    hints: list[object] = []
    watcher = ExternalWatch(Endpoint(server.address)).open(hints.append, OPTIONS)
    watcher.watch(refs or (REF,))
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher, hints
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_true_is_a_hint_and_false_is_none(scaler: ExternalScalerServer) -> None:
    async with watching(scaler) as (watcher, hints):
        await scaler.streams_opened(1, WITHIN)
        await until("connected", lambda: watcher.health.state, lambda s: s == CONNECTED)
        assert hints == [REF]  # on connecting: what was said before is unknown
        await scaler.push(False)
        await scaler.push(True)  # the stream is ordered: the false came first
        await until("the hint", lambda: len(hints), lambda n: n == 2)
        assert hints == [REF, REF]
        received = scaler.refs[0]
        assert (received.name, received.namespace) == ("orders", "shop")
        assert dict(received.scalerMetadata) == {"queue": "orders"}


async def test_one_stream_per_ref_on_one_connection(scaler: ExternalScalerServer) -> None:
    other = Ref.of("invoices", "shop", {"queue": "invoices"})
    async with watching(scaler, REF, other) as (watcher, hints):
        await scaler.streams_opened(2, WITHIN)
        watcher.watch([other])
        await until("one stream left", lambda: scaler.open_streams, lambda n: n == 1)
        await scaler.push(True)
        await until("the hint", lambda: hints.count(other), lambda n: n == 2)
    assert scaler.calls["StreamIsActive"] == 2


async def test_the_stream_returns_after_a_restart(scaler: ExternalScalerServer) -> None:
    async with watching(scaler) as (watcher, hints):
        await scaler.streams_opened(1, WITHIN)
        await scaler.stop()
        await until("lost", lambda: watcher.health.state, lambda s: s != CONNECTED)
        await scaler.start()
        await scaler.streams_opened(1, WITHIN)
        await until("connected", lambda: watcher.health.state, lambda s: s == CONNECTED)
        before = len(hints)
        await scaler.push(True)
        await until("the hint after the restart", lambda: len(hints), lambda n: n > before)
    assert scaler.calls["StreamIsActive"] == 2


async def test_nothing_listening_backs_off(scaler: ExternalScalerServer) -> None:
    await scaler.stop()
    async with watching(scaler) as (watcher, _):
        await until("backoff", lambda: watcher.health.state, lambda s: s == BACKOFF)


async def test_a_scaler_without_the_stream_cannot_give_hints() -> None:
    async with serving() as plain:
        plain.streaming = False
        await plain.stop()
        await plain.start()
        async with watching(plain) as (watcher, _):
            health = await until(
                "unavailable", lambda: watcher.health, lambda h: h.state == UNAVAILABLE
            )
            assert "does not implement StreamIsActive" in (health.last_error or "")


async def test_a_true_polls_and_activates_an_idle_target(scaler: ExternalScalerServer) -> None:
    metadata = {"scalerAddress": scaler.address, "queue": "orders"}
    async with woken("pushed", metadata, "external-push") as run:
        assert run.readings[-1].value == 0 and not run.readings[-1].active
        await scaler.streams_opened(1, WITHIN)
        scaler.answer.values, scaler.answer.active = [(12, 0.0)], True
        await scaler.push(True)
        woke = await run.reading("the pushed work", lambda r: r.value == 12)
        assert woke.active and run.extra_polls() >= 1
        # Active now: the hub closes the watcher, and with it the stream.
        await until("stream closed", lambda: scaler.open_streams, lambda n: n == 0)
