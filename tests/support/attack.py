"""Hostile clients of the secure port, from their own loopback address (127.0.0.0/8 is all
loopback on Linux, so each attacker has an address of its own, as a pod would).

- :func:`slowloris`: many connections, each sending a request head one byte at a time and
  reconnecting when dropped, as the classic tool does.
- :func:`handshake_flood`: new TLS connections as fast as they go, each closed once made.

Used in-process by tests/api/test_slow_clients.py and as a separate process by bench/attack.py
(``python -m tests.support.attack KIND PORT SOURCE CA_FILE SECONDS``), so that the attacker's
CPU is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAD = (
    b"GET /apis/external.metrics.k8s.io/v1beta1 HTTP/1.1\r\nHost: adapter\r\n"
    + b"X-Padding: "
    + b"a" * 4000
)
"""A request head that never ends: a header line that is never finished."""
CONNECT_WITHIN = 10.0


@dataclass
class Tally:
    """What an attack got: connections the server took, refused, and later closed."""

    admitted: int = 0
    refused: int = 0
    closed_after: list[float] = field(default_factory=list)
    """Seconds each admitted connection lasted until the server closed it."""


def context(ca_pem: bytes) -> ssl.SSLContext:
    tls = ssl.create_default_context(cadata=ca_pem.decode())
    tls.check_hostname = False
    return tls


async def connect(
    port: int, source: str, tls: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A TLS connection from ``source``; ``None`` when the server refuses it."""
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=tls, local_addr=(source, 0), server_hostname="127.0.0.1"
            ),
            CONNECT_WITHIN,
        )
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None


async def _drip(
    port: int, source: str, tls: ssl.SSLContext, every: float, tally: Tally, until: float
) -> None:
    """One slowloris connection after another, until ``until`` (monotonic)."""
    while time.monotonic() < until:
        opened = await connect(port, source, tls)
        if opened is None:
            tally.refused += 1
            await asyncio.sleep(every)
            continue
        reader, writer = opened
        tally.admitted += 1
        began = time.monotonic()
        try:
            for byte in HEAD:
                if time.monotonic() >= until:
                    return
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), every) == b"":
                        break  # the server closed it
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.close()
        tally.closed_after.append(time.monotonic() - began)


async def slowloris(
    port: int, source: str, ca_pem: bytes, connections: int, seconds: float, every: float = 1.0
) -> Tally:
    """``connections`` slowloris clients from ``source`` for ``seconds``."""
    tally, until, tls = Tally(), time.monotonic() + seconds, context(ca_pem)
    await asyncio.gather(
        *(_drip(port, source, tls, every, tally, until) for _ in range(connections))
    )
    return tally


async def handshake_flood(
    port: int, source: str, ca_pem: bytes, seconds: float, parallel: int = 8
) -> Tally:
    """New TLS connections from ``source``, ``parallel`` at a time, for ``seconds``."""
    tally, until, tls = Tally(), time.monotonic() + seconds, context(ca_pem)

    async def one_after_another() -> None:
        while time.monotonic() < until:
            opened = await connect(port, source, tls)
            if opened is None:
                tally.refused += 1
                continue
            tally.admitted += 1
            opened[1].close()

    await asyncio.gather(*(one_after_another() for _ in range(parallel)))
    return tally


def main() -> None:
    kind, port, source, ca_file, seconds = sys.argv[1:6]
    ca_pem = Path(ca_file).read_bytes()
    if kind == "slowloris":
        tally = asyncio.run(slowloris(int(port), source, ca_pem, 500, float(seconds)))
    else:
        tally = asyncio.run(handshake_flood(int(port), source, ca_pem, float(seconds)))
    print(f"admitted={tally.admitted} refused={tally.refused}", flush=True)


if __name__ == "__main__":
    main()
