"""Many distinct HTTP queries on one client: bounded in flight, and timeouts leak nothing.

Found by bench/footprint.py: 10,000 metrics-api triggers with their own URLs starved the
event loop in httpx's pool queue, and cancelled waiters leaked pool slots until every
trigger failed. A real HTTP server on loopback counts what reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from scalers.clients import HTTP_IN_FLIGHT, Clients, HttpIdentity
from scalers.errors import ScalerError

BATCH_WITHIN = 20.0
"""The bound on each request of a batch. All are queued at once behind HTTP_IN_FLIGHT slots,
so the last one waits for nearly the whole batch: a few seconds here, more on a loaded machine.
A leaked slot hangs a request for good, which any bound shows."""


@dataclass
class SlowServer:
    port: int
    delay: float = 0.0
    in_flight: int = 0
    most: int = 0
    answered: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no request is being answered."""


async def _serve(
    server: SlowServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while await reader.readuntil(b"\r\n\r\n"):
            server.in_flight += 1
            server.idle.clear()
            server.most = max(server.most, server.in_flight)
            try:
                await asyncio.sleep(server.delay)
                body = b'{"value": 1}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                server.answered += 1
            finally:
                server.in_flight -= 1
                if not server.in_flight:
                    server.idle.set()
    writer.close()


@pytest.fixture
async def slow() -> AsyncIterator[SlowServer]:
    state = SlowServer(0)
    listener = await asyncio.start_server(lambda r, w: _serve(state, r, w), "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        listener.close()
        # Requests a client gave up on are still being answered: let them end, not leak.
        if state.in_flight:
            async with asyncio.timeout(state.delay + 10):
                await state.idle.wait()
        await listener.wait_closed()


async def fetch(clients: Clients, server: SlowServer, i: int, within: float) -> object:
    url = f"http://127.0.0.1:{server.port}/value/{i}"
    async with asyncio.timeout(within):  # as the poller bounds every measure
        return await clients.get_json(url, headers={}, identity=HttpIdentity())


async def test_distinct_urls_are_bounded_in_flight_and_all_answered(slow: SlowServer) -> None:
    slow.delay = 0.02
    clients = Clients(timeout=10)
    try:
        answers = await asyncio.gather(*(fetch(clients, slow, i, BATCH_WITHIN) for i in range(400)))
    finally:
        await clients.aclose()
    assert answers == [{"value": 1}] * 400
    assert 1 < slow.most <= HTTP_IN_FLIGHT


async def test_requests_cancelled_by_timeouts_leave_the_client_usable(slow: SlowServer) -> None:
    slow.delay = 1.0
    clients = Clients(timeout=10)
    try:
        failed = await asyncio.gather(
            *(fetch(clients, slow, i, 0.1) for i in range(300)), return_exceptions=True
        )
        assert all(isinstance(f, TimeoutError | ScalerError) for f in failed)
        slow.delay = 0.0
        answers = await asyncio.gather(*(fetch(clients, slow, i, BATCH_WITHIN) for i in range(300)))
    finally:
        await clients.aclose()
    assert answers == [{"value": 1}] * 300
