"""What tests need to run servers: free loopback ports, the CI rule for servers a machine
lacks, and ASGI apps served by uvicorn in the test's own event loop, as the adapter serves.

The certificates those servers present come from :mod:`tests.support.pki`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from metrics_adapter.server import Server, server_config


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now. Another process may take it before the caller binds
    it: servers that can bind port 0 themselves should (:func:`running` does)."""
    (port,) = free_ports(1, host)
    return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports nothing listens on now. They are held together while chosen:
    ports asked for one after another may repeat, since the kernel hands a port just closed
    out again (a Kafka broker once got one port for two listeners and refused to start)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def require_in_ci(found: bool, needs: str) -> None:
    """In CI a server the machine cannot run is a failure, never a skip (DESIGN.md, Tests):
    raise unless ``found``. Elsewhere the fixtures skip; ``needs`` says what to install."""
    if os.environ.get("CI") and not found:
        raise RuntimeError(f"CI needs {needs}")


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1, for a server to listen on."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def running(server: uvicorn.Server) -> AsyncIterator[str]:
    """Run ``server`` (one of :func:`metrics_adapter.server.uvicorn_servers`, or from
    :func:`serving`) on a fresh loopback socket until the block ends, and stop it as
    ``serve`` does; yield its base URL once it accepts connections."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        scheme = server.scheme if isinstance(server, Server) else "http"  # loaded by now
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def serving(
    app: Any,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    context: ssl.SSLContext | None = None,
    http: Any = "auto",
) -> AsyncIterator[str]:
    """Yield the base URL of ``app`` served on a free loopback port: HTTPS with cert/key, or
    with a ready ``context`` (the adapter's live one), on uvicorn's ``http`` protocol."""
    config = server_config(
        app,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        http=http,
    )
    if context is not None:
        config.load()
        config.ssl = context
    async with running(Server(config)) as url:
        yield url
