"""An error answered as a Kubernetes ``Status`` from ASGI middleware, before any route."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Send

from metrics_adapter.errors import APIError
from metrics_adapter.kube import wire


async def send_status(
    send: Send, error: APIError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = wire.status(error)
    await send(
        {
            "type": "http.response.start",
            "status": error.code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
