"""Slow and greedy clients against the secure port as ``serve`` builds it, on a real socket.

Each attacker has its own loopback address (127.0.0.2, 127.0.0.3); the HPA, through the
aggregator's front-proxy certificate, reads from 127.0.0.1. Limits are set small so that each
bound is reached in a few seconds; the waits below are derived from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from metrics_adapter.metrics.telemetry import Telemetry
from tests.support import attack
from tests.support.secure_port import SecurePort, secure_port

PER_ADDRESS = 10
READ_TIMEOUT = 1.5
HANDSHAKE_TIMEOUT = 3.0
RATE = 5.0
"""Handshakes a second per address; the burst is twice as many."""
MARGIN = 10.0
"""Seconds a loaded 2-core machine may add to any wait below."""

ATTACKER, FLOODER, THIRD = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def limited(tmp_path: Path, **over: float) -> contextlib.AbstractAsyncContextManager[SecurePort]:
    limits: dict[str, float] = {
        "max_connections": 3 * PER_ADDRESS,
        "max_connections_per_address": PER_ADDRESS,
        "tls_handshakes_per_second": RATE,
        "read_timeout": READ_TIMEOUT,
        "tls_handshake_timeout": HANDSHAKE_TIMEOUT,
    }
    return secure_port(tmp_path, **(limits | over))


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[SecurePort]:
    async with limited(tmp_path) as served:
        yield served


def counted(telemetry: Telemetry, series: str, reason: str) -> float:
    value = telemetry.registry.get_sample_value(f"{series}_total", {"reason": reason})
    assert REGISTRY is not telemetry.registry
    return value or 0.0


async def hpa_reads(port: SecurePort, until: asyncio.Event) -> list[int]:
    """The HPA reading until ``until``, each read on a new connection (the hard case: a new
    connection is what a full port refuses), at half its address's handshake rate. The
    status of each."""
    codes: list[int] = []
    while not until.is_set():
        async with port.hpa(timeout=MARGIN) as client:
            codes.append((await client.get(port.value_url)).status_code)
        await asyncio.sleep(2 / RATE)
    return codes


async def test_a_slowloris_is_held_to_its_share_and_timed_out_while_the_hpa_reads(
    port: SecurePort,
) -> None:
    done = asyncio.Event()
    reads = asyncio.create_task(hpa_reads(port, done))
    seconds = 2 * READ_TIMEOUT + 1
    tally = await attack.slowloris(
        port.port, ATTACKER, port.server_ca, 3 * PER_ADDRESS, seconds, every=0.2
    )
    done.set()
    codes = await reads

    assert codes and set(codes) == {200}, codes
    # Never more than its share at once: the rest were reset before TLS.
    assert tally.refused > 0
    assert counted(port.telemetry, "metrics_adapter_connections_refused", "per_address") > 0
    # Every admitted connection that ended before the attack did was closed by the server,
    # READ_TIMEOUT after its handshake, not held for the whole head it never finished.
    assert tally.closed_after, tally
    assert all(
        READ_TIMEOUT * 0.9 <= lasted <= READ_TIMEOUT + MARGIN for lasted in tally.closed_after
    )
    assert counted(port.telemetry, "metrics_adapter_connections_closed", "read_timeout") >= len(
        tally.closed_after
    )


async def test_a_handshake_flood_is_held_to_its_rate_while_the_hpa_reads(port: SecurePort) -> None:
    done = asyncio.Event()
    reads = asyncio.create_task(hpa_reads(port, done))
    seconds = 2.0
    began = time.monotonic()
    tally = await attack.handshake_flood(port.port, FLOODER, port.server_ca, seconds)
    took = time.monotonic() - began
    done.set()
    codes = await reads

    assert codes and set(codes) == {200}, codes
    assert tally.refused > 0
    # The burst, then RATE a second: never more, however fast the flood.
    assert tally.admitted <= 2 * RATE + RATE * took + 1, (tally, took)
    assert counted(port.telemetry, "metrics_adapter_connections_refused", "handshake_rate") == (
        tally.refused
    )


async def idle_connections(port: SecurePort, source: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` TLS connections from ``source`` that send nothing; all admitted."""
    writers = []
    for _ in range(count):
        opened = await attack.connect(port.port, source, attack.context(port.server_ca))
        assert opened is not None
        writers.append(opened[1])
        await asyncio.sleep(1 / RATE)  # within the handshake budget
    return writers


def open_connections(port: SecurePort) -> float:
    value = port.telemetry.registry.get_sample_value("metrics_adapter_connections")
    return value or 0.0


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[SecurePort]:
    """Idle connections are not timed out while the port fills."""
    async with limited(tmp_path, read_timeout=120) as served:
        yield served


async def test_a_full_port_makes_room_from_the_address_holding_the_most(
    patient: SecurePort,
) -> None:
    port = patient
    held: list[asyncio.StreamWriter] = []
    for source in (ATTACKER, FLOODER, THIRD):
        held += await idle_connections(port, source, PER_ADDRESS)
    assert open_connections(port) == 3 * PER_ADDRESS  # full

    # The HPA's address holds nothing: its connection takes the place of the oldest idle one
    # of an address holding the most.
    async with port.hpa(timeout=MARGIN) as client:
        assert (await client.get(port.value_url)).status_code == 200
        assert (await client.get(port.value_url)).status_code == 200  # kept alive
        assert counted(port.telemetry, "metrics_adapter_connections_closed", "evicted") == 1
        # The address that lost one holds no more than any other now: it takes no one's place.
        tls = attack.context(port.server_ca)
        assert await attack.connect(port.port, ATTACKER, tls) is None
        assert counted(port.telemetry, "metrics_adapter_connections_refused", "capacity") == 1
    for writer in held:
        writer.close()


async def test_a_body_that_never_arrives_is_cut_off_and_a_kept_alive_connection_is_not(
    port: SecurePort,
) -> None:
    tls = port.context(port.proxy)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port.port, ssl=tls, server_hostname="127.0.0.1"
    )
    # A request kept alive past the read timeout is not cut off between requests...
    request = (
        f"GET {port.value_url.split(str(port.port), 1)[1]} HTTP/1.1\r\nHost: adapter\r\n"
        "X-Remote-User: hpa\r\nX-Remote-Group: system:masters\r\n\r\n"
    ).encode()
    for _ in range(2):
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), MARGIN)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(READ_TIMEOUT * 1.5)
    # ...but a body announced and not sent is: the whole request must arrive in time.
    writer.write(
        b"POST /validate-keda-sh-v1alpha1-scaledobject HTTP/1.1\r\nHost: adapter\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    began = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), READ_TIMEOUT + MARGIN)
    assert time.monotonic() - began >= READ_TIMEOUT * 0.9
    assert b"200 OK" not in rest
    writer.close()
    await port.hpa_reads_the_value()


async def test_a_connection_that_never_completes_its_handshake_is_closed(
    port: SecurePort,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
    writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and nothing more
    began = time.monotonic()
    assert await asyncio.wait_for(reader.read(), HANDSHAKE_TIMEOUT + MARGIN) == b""
    assert time.monotonic() - began >= HANDSHAKE_TIMEOUT * 0.9
    writer.close()
    assert counted(port.telemetry, "metrics_adapter_connections_closed", "handshake") == 1


async def test_requests_past_the_inflight_bound_are_answered_429(tmp_path: Path) -> None:
    async with secure_port(tmp_path, max_requests_inflight=1) as served:
        async with served.hpa(timeout=MARGIN) as client:
            # One request in flight at a time: a slow one holds the only place.
            slow = asyncio.create_task(
                client.post(
                    f"https://127.0.0.1:{served.port}/validate-keda-sh-v1alpha1-scaledobject",
                    content=_slowly(b"{}", READ_TIMEOUT / 2),
                    headers={"Content-Type": "application/json", "Content-Length": "2"},
                )
            )
            await asyncio.sleep(READ_TIMEOUT / 4)
            refused = await client.get(served.value_url)
            await slow
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["reason"] == "TooManyRequests"
        async with httpx.AsyncClient(verify=served.context(), timeout=MARGIN) as anyone:
            probe = await anyone.get(f"https://127.0.0.1:{served.port}/readyz")
        assert probe.status_code == 200
        assert counted(served.telemetry, "metrics_adapter_requests_refused", "max_inflight") == 1


async def _slowly(body: bytes, delay: float) -> AsyncIterator[bytes]:
    await asyncio.sleep(delay)
    yield body
