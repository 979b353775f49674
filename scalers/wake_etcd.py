"""Wake hints for ``etcd``: a watch of each trigger's key, as KEDA's scaler watches it.

One watcher per cluster (endpoints, user, TLS: :class:`~scalers.etcd.EtcdCluster`) holds
one streaming ``POST /v3/watch`` per watched key on etcd's JSON gateway, on one endpoint;
a session that fails moves to the next endpoint. A put of the key hints (a delete cannot
mean new work); a watch reads nothing and changes nothing. Events while disconnected are
lost, so each watch, once etcd confirms it, hints its key once. The token is the
username/password one of :class:`~scalers.etcd.Session`, fetched again after a refusal.

KEDA also re-watches when no progress notification came for twice
``watchProgressNotifyInterval``; here a silent connection is found by the poll (whose
failure does not touch the watcher) or by the kernel, and the next session starts over.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from scalers.clients import Clients, tls_context
from scalers.errors import quote
from scalers.etcd import INVALID_TOKEN, EtcdCluster, Session
from scalers.wake import HintCallback, Watcher, WatchOptions, finish


@dataclass(frozen=True, slots=True)
class EtcdWatch:
    cluster: EtcdCluster
    source_type: ClassVar[str] = "etcd"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return EtcdWatcher(self, on_hint, options)

    def describe(self) -> str:
        return str(self.cluster)


class EtcdWatcher(Watcher):
    key: EtcdWatch

    def __init__(self, key: EtcdWatch, on_hint: HintCallback, options: WatchOptions) -> None:
        super().__init__(key, on_hint, options)
        self._auth = Session(key.cluster)
        self._sessions = 0

    async def session(self) -> None:
        endpoints = self.key.cluster.endpoints
        url = endpoints[self._sessions % len(endpoints)]  # after a failure: the next one
        self._sessions += 1
        clients = Clients(timeout=self.options.timeout)  # the token's requests
        http = httpx.AsyncClient(
            verify=tls_context(self.key.cluster.identity),
            timeout=httpx.Timeout(self.options.timeout, read=None),  # a watch waits
            trust_env=False,
        )
        watches: dict[str, asyncio.Task[None]] = {}
        lost: asyncio.Future[None] | None = None
        try:
            while True:
                wanted = self.topics
                for gone in set(watches) - wanted:
                    watches.pop(gone).cancel()
                for key in wanted - set(watches):
                    assert isinstance(key, str)
                    watches[key] = asyncio.create_task(self._watch(http, clients, url, key))
                if lost is not None:
                    lost.cancel()  # it waited on the watches before this change
                lost = asyncio.ensure_future(_first_failure(dict(watches)))
                await self.changed_or(lost)
        finally:
            if lost is not None:
                lost.cancel()
            for task in watches.values():
                task.cancel()
            await finish(asyncio.gather(*watches.values(), return_exceptions=True), 5)
            await finish(http.aclose(), 5)
            await finish(clients.aclose(), 5)

    async def _watch(self, http: httpx.AsyncClient, clients: Clients, url: str, key: str) -> None:
        token = await self._auth.token(clients, url)
        headers = {"Authorization": token} if token else {}
        body = {"create_request": {"key": _b64(key)}}
        async with http.stream("POST", f"{url}/v3/watch", json=body, headers=headers) as reply:
            if reply.status_code != 200:
                answer = _json(await reply.aread())
                if token and answer.get("code") == INVALID_TOKEN:
                    self._auth.forget(token)
                raise Session.refusal(f"{url} watch {quote(key)}", reply.status_code, answer)
            async for line in reply.aiter_lines():
                message = _json(line.encode())
                if "error" in message:
                    raise ConnectionError(f"{url} watch {quote(key)}: {message['error']}")
                result = message.get("result", {})
                if result.get("canceled"):
                    reason = result.get("cancel_reason", "")
                    raise ConnectionError(f"{url} watch {quote(key)} canceled: {reason}")
                if result.get("created"):
                    self.caught_up([key])
                events = result.get("events") or ()
                if any(event.get("type") != "DELETE" for event in events):
                    self.hint(key)
        raise ConnectionError(f"{url} watch {quote(key)}: the stream ended")


async def _first_failure(watches: dict[str, asyncio.Task[None]]) -> None:
    """Raise what the first watch to end raised (a watch ends only by failing)."""
    if not watches:
        await asyncio.Event().wait()  # no key: nothing can fail, wait for a change
    done, _ = await asyncio.wait(watches.values(), return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if not task.cancelled() and (failure := task.exception()) is not None:
            raise failure
    raise ConnectionError("a watch ended")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _json(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    return (
        document if isinstance(document, dict) else {"error": data[:120].decode(errors="replace")}
    )
