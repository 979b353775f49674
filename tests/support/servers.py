"""Run an ASGI app on a real socket with uvicorn, in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        http=http,
    )
    if context is not None:
        config.load()
        config.ssl = context
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"{'https' if cert or context else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
