"""A STOMP 1.2 client just big enough for tests: connect, send with a receipt, subscribe
with client acknowledgements, receive, ack. ActiveMQ Classic's STOMP connector and
Artemis' multi-protocol acceptor both speak it, so the tests put messages into a queue
(and take them out) as an application would, not through the management API they read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

WAIT = 30.0
"""Seconds a broker may take to answer one frame on a loaded machine."""


@dataclass(frozen=True)
class Frame:
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class StompError(Exception):
    """The broker answered ERROR."""


class Stomp:
    """One STOMP connection; use :meth:`connect` and close it with :meth:`close`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(1)
        self._pending: collections.deque[Frame] = collections.deque()
        """Frames that arrived while a receipt was awaited: the next to :meth:`receive`."""

    @classmethod
    async def connect(cls, port: int, login: str, passcode: str, host: str = "/") -> Stomp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        headers = {"accept-version": "1.2", "host": host, "login": login, "passcode": passcode}
        await client._write(Frame("CONNECT", headers))
        answer = await client.receive()
        if answer.command != "CONNECTED":
            await client.close()
            raise StompError(f"CONNECT answered {answer}")
        return client

    async def send(
        self, destination: str, count: int = 1, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``count`` messages and wait for the broker's receipt of the last: by then
        each is in the queue (the connection keeps their order)."""
        for i in range(count):
            last = i == count - 1
            extra = {"receipt": f"r{next(self._ids)}"} if last else {}
            frame_headers = {"destination": destination, **(headers or {}), **extra}
            await self._write(Frame("SEND", frame_headers, f"message {i}".encode()))
        if count:
            await self._expect_receipt(extra["receipt"])

    async def subscribe(self, destination: str, headers: Mapping[str, str] | None = None) -> str:
        """Subscribe with ``ack:client-individual``; return the subscription id. Both
        brokers otherwise hand a client-acknowledging subscriber one message at a time:
        their windows are opened (each ignores the other's header)."""
        sub = f"s{next(self._ids)}"
        frame_headers = {
            "destination": destination,
            "id": sub,
            "ack": "client-individual",
            "activemq.prefetchSize": "1000",
            "consumer-window-size": "-1",
            **(headers or {}),
        }
        await self._write(Frame("SUBSCRIBE", frame_headers))
        return sub

    async def receive(self) -> Frame:
        """The next frame (heart-beat newlines skipped); ERROR raises."""
        if self._pending:
            return self._pending.popleft()
        return await self._read()

    async def _read(self) -> Frame:
        async with asyncio.timeout(WAIT):
            raw = await self._reader.readuntil(b"\0")
        head, _, body = raw[:-1].lstrip(b"\r\n").partition(b"\n\n")
        command, *lines = head.decode().split("\n")
        headers = dict(line.split(":", 1) for line in lines if ":" in line)
        frame = Frame(command, headers, body)
        if command == "ERROR":
            raise StompError(f"{headers.get('message', '')}: {body.decode(errors='replace')}")
        return frame

    async def ack(self, message: Frame) -> None:
        receipt = f"r{next(self._ids)}"
        await self._write(Frame("ACK", {"id": message.headers["ack"], "receipt": receipt}))
        await self._expect_receipt(receipt)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._write(Frame("DISCONNECT"))
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _expect_receipt(self, receipt: str) -> None:
        while True:
            frame = await self._read()
            if frame.command == "RECEIPT" and frame.headers.get("receipt-id") == receipt:
                return
            self._pending.append(frame)

    async def _write(self, frame: Frame) -> None:
        lines = [frame.command, *(f"{k}:{v}" for k, v in frame.headers.items())]
        self._writer.write("\n".join(lines).encode() + b"\n\n" + frame.body + b"\0")
        await self._writer.drain()


@contextlib.asynccontextmanager
async def holding(
    port: int,
    login: tuple[str, str],
    destination: str,
    state: tuple[int, int, int],
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[None]:
    """``destination`` in ``state`` = (sent, delivered to a consumer, of which acknowledged)
    until the block ends: the consumer holds its unacknowledged deliveries till then.
    ``headers`` go on every SEND and the SUBSCRIBE (Artemis' routing types)."""
    sent, delivered, acked = state
    producer = await Stomp.connect(port, *login)
    try:
        await producer.send(destination, sent, headers)
    finally:
        await producer.close()
    consumer: Stomp | None = None
    try:
        if delivered:
            consumer = await Stomp.connect(port, *login)
            await consumer.subscribe(destination, headers)
            messages = [await consumer.receive() for _ in range(delivered)]
            for message in messages[:acked]:
                await consumer.ack(message)
        yield
    finally:
        if consumer is not None:
            await consumer.close()
