"""Oversized requests over a real TLS socket, to the server exactly as ``uvicorn_servers``
builds it (h11 with a 64 KiB event limit, the guard, the gate, request metrics).

Each request here never ends: a request line or header block that keeps going, or a body
announced and never sent. An answer (or a closed connection) can therefore only mean the
server refused it early, without waiting for, or buffering, the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metrics_adapter.api.tls import ClientCertProtocol
from tests.support.secure_port import METRIC, QUERY, SecurePort, secure_port

LIMIT = 64 * 1024
READ_AT_MOST = 4 * LIMIT
"""The limit, plus what one read of the socket may bring beyond it (~115 KiB measured)."""
ANSWER_WITHIN = 5.0
"""Seconds: a refusal is immediate; a server waiting for the rest would never answer."""


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count what the server reads from its sockets: what the client wrote may still sit in
    kernel buffers, so only this says whether the server kept reading a refused request."""
    count = [0]
    received = ClientCertProtocol.data_received

    def counting(self: ClientCertProtocol, data: bytes) -> None:
        count[0] += len(data)
        received(self, data)

    monkeypatch.setattr(ClientCertProtocol, "data_received", counting)
    return count


@dataclass
class Served(SecurePort):
    read: list[int]
    """Bytes the server's protocol has received, over all connections."""


@pytest.fixture
async def served(tmp_path: Path, read: list[int]) -> AsyncIterator[Served]:
    async with secure_port(tmp_path) as port:
        yield Served(port.port, port.server_ca, port.proxy, port.telemetry, read)


@dataclass
class Refusal:
    status: int | None
    """``None``: the connection was closed without an answer."""
    body: bytes
    sent: int
    read: int
    """What the server read of it: the client's ``sent`` may still sit in kernel buffers."""


async def refusal(served: Served, head: bytes, filler: bytes = b"", most: int = 0) -> Refusal:
    """Send ``head``, then ``filler`` until ``most`` bytes are sent or the server answers;
    the request is never completed. The server's answer, and how much was sent by then."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", served.port, ssl=served.context(), server_hostname="127.0.0.1"
    )
    answer = asyncio.create_task(read_response(reader))
    sent, read_before = 0, served.read[0]
    try:
        writer.write(head)
        sent = len(head)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while sent < most and not answer.done():
                writer.write(filler)
                await writer.drain()
                sent += len(filler)
        status, body = await asyncio.wait_for(answer, ANSWER_WITHIN)
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    return Refusal(status, body, sent, served.read[0] - read_before)


async def read_response(reader: asyncio.StreamReader) -> tuple[int | None, bytes]:
    """Status and body of one HTTP/1.1 answer; ``(None, b"")`` when the server just closes."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return None, b""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines if ": " in line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split(" ")[1]), body


def status_json(body: bytes, code: int) -> dict[str, object]:
    status: dict[str, object] = json.loads(body)
    assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", code)
    return status


async def test_a_request_line_over_64_kib_is_refused_before_it_ends(served: Served) -> None:
    got = await refusal(served, b"GET /" + b"a" * (LIMIT + 1), b"a" * 16_384, most=16 * 2**20)
    assert got.status in (None, 400, 414, 431), got
    assert got.read < READ_AT_MOST, got
    await served.hpa_reads_the_value()


async def test_headers_over_64_kib_are_refused_before_they_end(served: Served) -> None:
    head = f"GET {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\n".encode()
    filler = b"X-Remote-Group: " + b"g" * 1_000 + b"\r\n"
    got = await refusal(served, head, filler, most=16 * 2**20)
    assert got.status in (None, 400, 413, 431), got
    assert got.read < READ_AT_MOST, got
    await served.hpa_reads_the_value()


async def test_one_header_value_over_64_kib_is_refused(served: Served) -> None:
    head = f"GET {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\nX-Remote-User: ".encode()
    got = await refusal(served, head, b"u" * 16_384, most=16 * 2**20)
    assert got.status in (None, 400, 413, 431), got
    assert got.read < READ_AT_MOST, got
    await served.hpa_reads_the_value()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
async def test_a_ten_gigabyte_body_is_refused_before_it_is_sent(
    served: Served, method: str
) -> None:
    head = (
        f"{method} {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    ).encode()
    got = await refusal(served, head)
    assert got.status == 413, got
    status = status_json(got.body, 413)
    assert status["reason"] == "RequestEntityTooLarge"
    assert "10000000000" in str(status["message"])
    await served.hpa_reads_the_value()


async def test_a_chunked_body_is_refused_before_its_first_chunk(served: Served) -> None:
    head = (
        f"POST {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    got = await refusal(served, head)
    assert got.status == 413, got
    assert status_json(got.body, 413)["reason"] == "RequestEntityTooLarge"
    await served.hpa_reads_the_value()


async def test_a_body_under_the_limit_reaches_the_routes(served: Served) -> None:
    """The limit is the gate's, not a blanket refusal: 64 KiB is still let through (and the
    route, a GET, answers 401 to an anonymous caller like any other)."""
    head = (
        f"GET {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\nContent-Length: {LIMIT}\r\n\r\n"
    ).encode()
    got = await refusal(served, head + b"x" * LIMIT)
    assert got.status == 401, got
    status_json(got.body, 401)


async def test_many_refusals_in_a_row_leave_the_server_serving(served: Served) -> None:
    head = f"GET {METRIC}?{QUERY} HTTP/1.1\r\nHost: adapter\r\nX-Big: ".encode()
    for _ in range(20):
        got = await refusal(served, head, b"b" * 16_384, most=4 * LIMIT)
        assert got.status in (None, 400, 431), got
        assert got.read < READ_AT_MOST, got
    await served.hpa_reads_the_value()
