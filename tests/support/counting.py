"""Clients that count what they open: the ``Clients.shared`` seam is the only place a scaler
may open a client, so counting there shows how many connections, pools or sessions many
triggers really cost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from scalers.clients import Clients

T = TypeVar("T")


class CountingClients(Clients):
    """Clients that remember the key of every client they open, in order."""

    def __init__(self, timeout: float = 5) -> None:
        super().__init__(timeout=timeout)
        self.opened: list[Hashable] = []

    async def shared(
        self,
        key: Hashable,
        open_client: Callable[[], Awaitable[T]],
        close_client: Callable[[T], Awaitable[None]],
    ) -> T:
        async def counted() -> T:
            self.opened.append(key)
            return await open_client()

        return await super().shared(key, counted, close_client)
