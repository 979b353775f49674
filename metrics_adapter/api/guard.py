"""The secure port's guard against slow and greedy clients, before TLS and around HTTP.

kube-apiserver bounds its clients with a header-read deadline (Go's ``ReadHeaderTimeout``,
which covers the TLS handshake too) and a bound on requests in flight
(``--max-requests-inflight``, answered 429). uvicorn has neither: a connection that sends one
header byte a second, or none, holds its socket for ever, and the TLS handshake runs before
any protocol code sees the connection. So the listening socket is served in plain TCP and each
connection is made TLS here (``loop.start_tls``), after the guard has admitted it:

- **per address**: at most ``max_connections_per_address`` open connections, and new ones
  (each a TLS handshake, the expensive part) at ``tls_handshakes_per_second``, with a burst of as
  many again. Past either, the connection is reset before any TLS work is done. The
  aggregator, the webhook's caller and the kubelet each come from their own address, so one
  greedy address cannot take their share.
- **in total**: at most ``max_connections``. When full, a new connection takes the place of
  the oldest idle connection (no request in progress) of the address holding the most, if
  that address holds more than the newcomer would; else it is refused. Many attacking
  addresses therefore share the port fairly with the aggregator's one, instead of filling it.
- **in time**: the handshake must finish within ``tls_handshake_timeout``, and a request must
  arrive, head and body, within ``read_timeout`` of its first byte (a connection's first
  request: of the handshake). A keep-alive connection between requests is uvicorn's to time
  out (``timeout_keep_alive``).
- **requests in flight**: at most ``max_requests_inflight`` at once, the rest answered 429
  with ``Retry-After: 1`` (kube-apiserver's answer); the health checks are never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import h11
from starlette.types import ASGIApp, Receive, Scope, Send

from metrics_adapter.api import paths
from metrics_adapter.api.status import send_status
from metrics_adapter.api.tls import ClientCertProtocol
from metrics_adapter.config.settings import GUARD_LIMITS, Settings
from metrics_adapter.errors import TooManyRequests

log = logging.getLogger(__name__)

TOO_MANY = TooManyRequests("too many requests, please try again later")
DESCRIPTOR_RESERVE = 256
"""Open files kept for the adapter's own use beyond the secure port's connections: event
sources, the Kubernetes API, /metrics, certificates."""
MAX_ADDRESSES = 65536
"""Handshake budgets remembered at once, the least recently used forgotten first; a forgotten
address starts again with a full budget."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of the secure port: ``serve``'s flags of the same names."""

    max_connections: int = 1024
    max_connections_per_address: int = 128
    tls_handshakes_per_second: float = 32.0
    tls_handshake_timeout: float = 10.0
    read_timeout: float = 10.0
    max_requests_inflight: int = 400

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits ``settings`` set (which checked them), an address's share no more
        than the whole."""
        limits = cls(**{name: getattr(settings, name) for name in GUARD_LIMITS})
        return limits.at_most(limits.max_connections)

    def at_most(self, total: int) -> Limits:
        """These limits with ``total`` connections in all, and an address's share within it."""
        share = min(self.max_connections_per_address, total)
        return dataclasses.replace(self, max_connections=total, max_connections_per_address=share)


def within_descriptors(limits: Limits, reserve: int = DESCRIPTOR_RESERVE) -> Limits:
    """``limits`` with ``max_connections`` inside the process's open-file limit, after raising
    its soft limit to the hard one, as Go programs (kube-apiserver among them) do at start.
    A port allowed more connections than descriptors would fail ``accept`` for everyone,
    the aggregator included, once an attacker held them all."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    room = soft - reserve if soft != resource.RLIM_INFINITY else limits.max_connections
    if limits.max_connections <= room:
        return limits
    fitted = max(1, room)
    log.warning(
        "--max-connections %d does not fit in %d open files (the process's limit, less %d "
        "for the adapter's own): serving at most %d connections",
        limits.max_connections,
        soft,
        reserve,
        fitted,
    )
    return limits.at_most(fitted)


class GuardObserver(Protocol):
    """Where the guard's decisions are counted (:class:`Telemetry`)."""

    def connection_refused(self, reason: str) -> None:
        """A connection reset on arrival: ``per_address``, ``handshake_rate``, ``capacity``."""

    def connection_closed(self, reason: str) -> None:
        """An admitted connection closed by the guard: ``handshake`` (failed or too slow),
        ``read_timeout`` or ``evicted``."""

    def request_refused(self, reason: str) -> None:
        """A request answered 429: ``max_inflight``."""

    def connections_open(self, count: int) -> None:
        """The admitted connections now."""


class _Unobserved:
    def connection_refused(self, reason: str) -> None:
        pass

    def connection_closed(self, reason: str) -> None:
        pass

    def request_refused(self, reason: str) -> None:
        pass

    def connections_open(self, count: int) -> None:
        pass


class _Budget:
    """A token bucket, full at first: refilled ``rate`` a second up to its ``capacity``."""

    __slots__ = ("at", "capacity", "tokens")

    def __init__(self, capacity: float, now: float) -> None:
        self.capacity = self.tokens = capacity
        self.at = now

    def refill(self, rate: float, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * rate)
        self.at = now

    def take(self) -> bool:
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Guard:
    """The connections admitted, by address; shared by every connection of one port."""

    def __init__(
        self,
        limits: Limits,
        observer: GuardObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.observer: GuardObserver = observer or _Unobserved()
        self._clock = clock
        self._by_address: dict[str, dict[GuardedProtocol, None]] = {}
        """Insertion-ordered: the oldest connection of an address first."""
        self._open = 0
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()

    @property
    def open(self) -> int:
        return self._open

    def held_by(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def admit(self, conn: GuardedProtocol) -> str | None:
        """Count ``conn`` in; or the reason it is refused, nothing counted."""
        address, limits = conn.address, self.limits
        held = self.held_by(address)
        if held >= limits.max_connections_per_address:
            return self._refuse("per_address")
        victim = None
        if self._open >= limits.max_connections:
            victim = self._victim(held)
            if victim is None:
                return self._refuse("capacity")
        # Only a connection that would be admitted spends its address's budget.
        if not self._budget(address, self._clock()).take():
            return self._refuse("handshake_rate")
        if victim is not None:
            victim.evict()
        self._by_address.setdefault(address, {})[conn] = None
        self._open += 1
        self.observer.connections_open(self._open)
        return None

    def _budget(self, address: str, now: float) -> _Budget:
        """``address``'s budget, brought up to ``now``."""
        budget = self._budgets.get(address)
        if budget is None:
            if len(self._budgets) >= MAX_ADDRESSES:
                self._budgets.popitem(last=False)
            burst = 2 * self.limits.tls_handshakes_per_second
            budget = self._budgets[address] = _Budget(burst, now)
        else:
            self._budgets.move_to_end(address)
            budget.refill(self.limits.tls_handshakes_per_second, now)
        return budget

    def release(self, conn: GuardedProtocol) -> None:
        """Count ``conn`` out; again is nothing."""
        held = self._by_address.get(conn.address)
        if held is None or conn not in held:
            return
        del held[conn]
        if not held:
            del self._by_address[conn.address]
        self._open -= 1
        self.observer.connections_open(self._open)

    def _victim(self, newcomer_holds: int) -> GuardedProtocol | None:
        """The oldest idle connection of the address holding the most, if it holds at least
        two more than the newcomer's address (so the swap leaves it no poorer than them)."""
        held = max(self._by_address.values(), key=len)
        if len(held) < newcomer_holds + 2:
            return None
        return next((c for c in held if c.idle), None)

    def _refuse(self, reason: str) -> str:
        self.observer.connection_refused(reason)
        return reason


class GuardedProtocol(ClientCertProtocol):
    """uvicorn's HTTP protocol on a plain TCP connection: admitted by :attr:`guard`, made TLS
    with :attr:`context`, then HTTP under the read deadline. Bound by :func:`guarded`."""

    guard: ClassVar[Guard]
    context: ClassVar[ssl.SSLContext]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.address = ""
        self.secured = False
        """TLS established and HTTP running (uvicorn's own state set up)."""
        self._raw: asyncio.Transport | None = None
        self._early: list[bytes] = []
        self._read_deadline: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None
        """Held only so the running handshake is not garbage-collected: the event loop keeps
        weak references to its tasks."""

    @property
    def idle(self) -> bool:
        """No request in progress: still in the handshake, or waiting for a request's head."""
        if not self.secured:
            return True
        waiting = self.cycle is None or self.cycle.response_complete
        return waiting and self.conn.their_state is h11.IDLE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else ""
        if self.guard.admit(self) is not None:
            transport.abort()
            return
        self._raw = transport
        self.server_state.connections.add(self)  # uvicorn's shutdown closes it too
        transport.pause_reading()  # nothing is read before the handshake takes the socket
        self._handshake = self.loop.create_task(self._secure(transport))

    async def _secure(self, raw: asyncio.Transport) -> None:
        try:
            secured = await self.loop.start_tls(
                raw,
                self,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.guard.limits.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            # start_tls closed the socket; whether connection_lost follows depends on where
            # the handshake failed, so the connection is counted out here (again is nothing).
            log.debug("TLS handshake from %s failed: %s", self.address, exc)
            self.guard.observer.connection_closed("handshake")
            self._forget()
            return
        if secured is None or secured.is_closing():
            return
        self.secured = True
        super().connection_made(secured)
        self._arm_read_deadline()
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self.secured:  # decrypted before _secure resumed: kept in order
            self._early.append(data)
            return
        super().data_received(data)
        if not self._arriving:
            self._disarm_read_deadline()
        elif self._read_deadline is None and not self.transport.is_closing():
            self._arm_read_deadline()  # a request's first bytes on a kept-alive connection

    @property
    def _arriving(self) -> bool:
        """A request is being read: its head, or the body after it."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Back to waiting: uvicorn's keep-alive timer runs until the next request's first byte.
        self._disarm_read_deadline()
        if self._arriving and self.conn.trailing_data[0]:
            self._arm_read_deadline()  # a pipelined request, begun already

    def _arm_read_deadline(self) -> None:
        self._disarm_read_deadline()
        timeout = self.guard.limits.read_timeout
        self._read_deadline = self.loop.call_later(timeout, self._read_too_slow)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_too_slow(self) -> None:
        self._read_deadline = None
        if self._arriving and not self.transport.is_closing():
            self.guard.observer.connection_closed("read_timeout")
            self.transport.abort()

    def evict(self) -> None:
        """Closed to make room (:meth:`Guard._victim`)."""
        self.guard.observer.connection_closed("evicted")
        self.guard.release(self)
        self._abort()

    def _abort(self) -> None:
        if self.secured:
            self.transport.abort()
        elif self._raw is not None:
            self._raw.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.secured:
            self._disarm_read_deadline()
            self.guard.release(self)
            super().connection_lost(exc)
        else:
            self._forget()

    def _forget(self) -> None:
        """Counted out, and out of uvicorn's connections (its shutdown waits for them)."""
        self.guard.release(self)
        self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        if self.secured:
            super().shutdown()
        else:
            self._abort()


def guarded(guard: Guard, context: ssl.SSLContext) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's ``http`` setting, serving TLS with ``context``."""

    class Bound(GuardedProtocol):
        pass

    Bound.guard, Bound.context = guard, context
    return Bound


class InflightLimit:
    """At most ``limit`` requests in the app at once; the rest 429, probes never."""

    def __init__(self, app: ASGIApp, limit: int, observer: GuardObserver | None = None) -> None:
        self.app = app
        self.limit = limit
        self.observer: GuardObserver = observer or _Unobserved()
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in paths.PROBES:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            self.observer.request_refused("max_inflight")
            await send_status(send, TOO_MANY, [(b"retry-after", b"1")])
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
