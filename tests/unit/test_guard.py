"""The secure port's guard: admission by address, rate and room; the in-flight bound; the
settings that set them. Connections here are stand-ins; tests/api/test_slow_clients.py runs
the guard on real sockets."""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from starlette.types import Message, Receive, Scope, Send

from metrics_adapter.api import guard as guard_module
from metrics_adapter.api.guard import Guard, GuardedProtocol, InflightLimit, Limits
from metrics_adapter.config.settings import Settings


@dataclass
class Counted:
    refused: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    open: int = 0

    def connection_refused(self, reason: str) -> None:
        self.refused.append(reason)

    def connection_closed(self, reason: str) -> None:
        self.closed.append(reason)

    def request_refused(self, reason: str) -> None:
        self.requests.append(reason)

    def connections_open(self, count: int) -> None:
        self.open = count


@dataclass(eq=False)
class Conn:
    """What the guard sees of a connection."""

    address: str
    guard: Guard
    idle: bool = True
    evicted: bool = False

    def evict(self) -> None:
        self.evicted = True
        self.guard.release(cast(GuardedProtocol, self))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(**limits: float) -> tuple[Guard, Counted, Clock]:
    counted, clock = Counted(), Clock()
    values = {"tls_handshakes_per_second": 1000.0} | limits
    return Guard(Limits(**values), counted, clock), counted, clock  # type: ignore[arg-type]


def admit(guard: Guard, address: str, idle: bool = True) -> tuple[Conn, str | None]:
    conn = Conn(address, guard, idle)
    return conn, guard.admit(cast(GuardedProtocol, conn))


def test_an_address_holds_at_most_its_share_and_a_refusal_spends_no_handshake() -> None:
    guard, counted, _ = make(max_connections_per_address=2, tls_handshakes_per_second=1.5)
    assert admit(guard, "10.0.0.9")[1] is None
    assert admit(guard, "10.0.0.9")[1] is None
    assert admit(guard, "10.0.0.9")[1] == "per_address"
    assert counted.refused == ["per_address"]
    assert guard.open == counted.open == 2
    # The budget (burst 3) lost only the two admitted: one more is allowed once room is made.
    first = next(iter(guard._by_address["10.0.0.9"]))
    guard.release(first)
    guard.release(first)  # again is nothing
    assert guard.open == 1
    assert admit(guard, "10.0.0.9")[1] is None


def test_handshakes_from_one_address_are_held_to_a_burst_then_the_rate() -> None:
    guard, counted, clock = make(max_connections_per_address=100, tls_handshakes_per_second=2)
    results = [admit(guard, "10.0.0.9")[1] for _ in range(6)]
    assert results == [None] * 4 + ["handshake_rate"] * 2  # a burst of twice the rate
    assert admit(guard, "10.0.0.10")[1] is None  # another address has its own budget
    clock.now += 1.0
    assert [admit(guard, "10.0.0.9")[1] for _ in range(3)] == [None, None, "handshake_rate"]
    assert counted.refused.count("handshake_rate") == 3


def test_a_full_port_evicts_the_oldest_idle_connection_of_the_address_holding_the_most() -> None:
    guard, counted, _ = make(max_connections=5, max_connections_per_address=5)
    busy, _ = admit(guard, "attacker", idle=False)
    oldest_idle, _ = admit(guard, "attacker")
    admit(guard, "attacker")
    admit(guard, "other")
    admit(guard, "other")
    assert guard.open == 5

    _, refused = admit(guard, "hpa")
    assert refused is None
    assert oldest_idle.evicted and not busy.evicted
    assert counted.closed == [] and guard.open == 5  # the stand-in's evict reports nothing
    assert guard.held_by("attacker") == 2

    # Now "attacker" and "other" hold 2 each, "hpa" 1: no address holds two more than
    # "other", so "other" takes no one's place; a new address still does.
    assert admit(guard, "other")[1] == "capacity"
    assert admit(guard, "newcomer")[1] is None


def test_a_full_port_of_busy_connections_refuses() -> None:
    guard, _, _ = make(max_connections=2, max_connections_per_address=2)
    admit(guard, "a", idle=False)
    admit(guard, "a", idle=False)
    assert admit(guard, "b")[1] == "capacity"


def test_budgets_are_forgotten_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module, "MAX_ADDRESSES", 3)
    guard, _, _ = make(max_connections_per_address=100, tls_handshakes_per_second=0.5)
    for address in ("a", "b", "c"):
        assert admit(guard, address)[1] is None
    assert admit(guard, "a")[1] == "handshake_rate"  # a's budget of 1 is spent, and used last
    assert admit(guard, "d")[1] is None  # b's budget is forgotten to make room
    assert list(guard._budgets) == ["c", "a", "d"]


async def test_requests_past_the_bound_are_answered_429_and_probes_never() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    counted = Counted()
    limit = InflightLimit(slow_app, 1, counted)

    async def call(path: str) -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await limit({"type": "http", "path": path}, receive, send)
        return sent

    first = asyncio.create_task(call("/apis/external.metrics.k8s.io/v1beta1"))
    await asyncio.sleep(0)
    refused = await call("/apis/external.metrics.k8s.io/v1beta1")
    assert refused[0]["status"] == 429
    assert (b"retry-after", b"1") in refused[0]["headers"]
    assert json.loads(refused[1]["body"])["reason"] == "TooManyRequests"
    probe = asyncio.create_task(call("/readyz"))  # not refused: waits with the first
    release.set()
    assert (await first)[0]["status"] == 200
    assert (await probe)[0]["status"] == 200
    assert counted.requests == ["max_inflight"]
    assert limit.inflight == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"read_timeout": 0.0}, "--read-timeout: 0 must be positive"),
        ({"max_connections": -1}, "--max-connections: -1 must be positive"),
    ],
)
def test_settings_refuse_limits_that_cannot_hold(
    tmp_path: Path, flags: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(scaledobjects=tmp_path, **flags)  # type: ignore[arg-type]


def test_limits_are_the_settings() -> None:
    settings = Settings(scaledobjects=Path("."), max_connections=7, read_timeout=2.5)
    limits = Limits.of(settings)
    assert (limits.max_connections, limits.read_timeout) == (7, 2.5)
    assert limits.max_connections_per_address == 7  # no more than the whole
    assert limits.max_requests_inflight == 400


def test_connections_are_held_inside_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (512, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda _, v: set_to.append(v))
    limits = Limits(max_connections=10_000, max_connections_per_address=5_000)
    fitted = guard_module.within_descriptors(limits, reserve=96)
    assert set_to == [(4096, 4096)]  # the soft limit raised to the hard one, as Go does
    assert (fitted.max_connections, fitted.max_connections_per_address) == (4000, 4000)
    assert "--max-connections 10000 does not fit in 4096 open files" in caplog.text
    assert (
        guard_module.within_descriptors(Limits(max_connections=100), reserve=96).max_connections
        == 100
    )


def test_a_soft_limit_that_cannot_be_raised_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: int, __: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    fitted = guard_module.within_descriptors(Limits(max_connections=1024), reserve=256)
    assert fitted.max_connections == 768
