"""rabbitmq against a real RabbitMQ 3.10 node: KEDA's numbers, errors not zeros, shared requests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiormq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from scalers import rabbitmq
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.rabbitmq_client import AmqpQuery
from tests.support.rabbitmq import RabbitMQServer, unacked, wait_until
from tests.support.servers import free_port, serving
from tests.support.triggers import bound_trigger, build, new_poller, poll, reading

pytestmark = pytest.mark.integration


def make(metadata: dict[str, str], auth: dict[str, str] | None = None) -> rabbitmq.RabbitMQScaler:
    return build(rabbitmq.KIND, rabbitmq.RabbitMQScaler, metadata, auth)


@contextlib.asynccontextmanager
async def clients(within: float = 3.0) -> AsyncIterator[Clients]:
    shared = Clients(within)
    try:
        yield shared
    finally:
        await shared.aclose()


# The fidelity table: server state → KEDA's value, activity and HPA replicas.


@dataclass(frozen=True)
class Row:
    id: str
    queues: dict[str, tuple[int, int]]
    """Queue suffix → (messages published, of which held unacknowledged)."""
    metadata: dict[str, str]
    """``{q}`` is the first queue's name, ``{prefix}`` the test's prefix, ``{vhost}`` its vhost."""
    value: float
    """KEDA's metric value."""
    active: bool
    """KEDA's activity (``GetMetricsAndActivity``)."""
    replicas: int
    """What the HPA makes of it: ``ceil(value / target)`` (AverageValue)."""
    host: str = "http"
    """``http``, ``amqp``, or ``http-path`` (the vhost in the host URL's path)."""
    vhost: bool = False
    """Create the queues in a vhost of the test's own instead of ``/``."""
    idle: bool = False
    """Wait until the broker's publish rate has fallen back to 0."""


def regex(operation: str | None = None, pattern: str = "^{prefix}-.$") -> dict[str, str]:
    found = {"queueName": pattern, "useRegex": "true", "mode": "QueueLength", "value": "5"}
    return found | ({"operation": operation} if operation else {})


QL4 = {"mode": "QueueLength", "value": "4"}
ONE = {"a": (10, 3)}
THREE = {"a": (2, 0), "b": (5, 0), "c": (9, 0)}
ROWS = [
    Row("ready-and-unacked", ONE, QL4, 10, True, 3),
    Row("exclude-unacknowledged", ONE, QL4 | {"excludeUnacknowledged": "true"}, 7, True, 2),
    Row("default-target-20", {"a": (30, 0)}, {}, 30, True, 2),
    Row("deprecated-queueLength", {"a": (10, 0)}, {"queueLength": "4"}, 10, True, 3),
    Row("empty-queue", {"a": (0, 0)}, {}, 0, False, 0),
    Row("not-above-activation", {"a": (5, 0)}, QL4 | {"activationValue": "5"}, 5, False, 2),
    Row(
        "rate-mode-active-on-backlog",
        {"a": (3, 0)},
        {"mode": "MessageRate", "value": "10", "activationValue": "1"},
        0,
        True,
        0,
        idle=True,
    ),
    Row("regex-sum", THREE, regex(), 16, True, 4),
    Row("regex-avg-whole-messages", THREE, regex("avg"), 5, True, 1),
    Row("regex-max", THREE, regex("max"), 9, True, 2),
    Row("regex-no-match", THREE, regex(pattern="^{prefix}-zz$"), 0, False, 0),
    Row("vhost-in-host-path", {"a": (6, 0)}, {}, 6, True, 1, host="http-path", vhost=True),
    Row("vhostName-overrides", {"a": (6, 0)}, {"vhostName": "{vhost}"}, 6, True, 1, vhost=True),
    Row("amqp-counts-ready-only", ONE, QL4, 7, True, 2, host="amqp"),
    Row("amqp-vhostName", {"a": (4, 0)}, {"vhostName": "{vhost}"}, 4, True, 1, "amqp", True),
]


def settled(queue: dict[str, Any], messages: int, unacked: int = 0, idle: bool = False) -> bool:
    """The broker's statistics show the state the row created (they lag by seconds)."""
    rate = queue.get("message_stats", {}).get("publish_details", {}).get("rate", 0)
    return (
        queue.get("messages") == messages
        and queue.get("messages_unacknowledged") == unacked
        and (rate == 0 or not idle)
    )


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_fidelity(rabbit: RabbitMQServer, name: str, row: Row) -> None:
    vhost = f"{name}-vhost" if row.vhost else "/"
    if row.vhost:
        rabbit.add_vhost(vhost)
    queues = {suffix: f"{name}-{suffix}" for suffix in row.queues}
    for suffix, (published, _) in row.queues.items():
        rabbit.add_queue(queues[suffix], vhost)
        rabbit.publish(queues[suffix], published, vhost)
    async with contextlib.AsyncExitStack() as stack:
        for suffix, (_, held) in row.queues.items():
            if held:
                await stack.enter_async_context(unacked(rabbit, queues[suffix], held, vhost))
        for suffix, (published, held) in row.queues.items():
            await asyncio.to_thread(
                rabbit.wait_for_queue,
                queues[suffix],
                functools.partial(settled, messages=published, unacked=held, idle=row.idle),
                vhost,
            )
        host = {
            "http": rabbit.http_host(),
            "http-path": rabbit.http_host(vhost=vhost),
            "amqp": rabbit.amqp_host(),
        }[row.host]
        fill = {"q": queues[next(iter(queues))], "prefix": name, "vhost": vhost}
        metadata = {
            "host": host,
            "queueName": "{q}",
            **row.metadata,
        }
        scaler = make({k: v.format(**fill) for k, v in metadata.items()})
        async with clients() as shared:
            value, active = await poll(scaler, shared)
    assert (value, active) == (row.value, row.active)
    assert math.ceil(value / scaler.target) == row.replicas


@contextlib.asynccontextmanager
async def publishing(server: RabbitMQServer, queue: str, per_second: int) -> AsyncIterator[None]:
    """Publish to ``queue`` steadily until the block ends."""
    connection = await aiormq.connect(server.amqp_host())
    channel = await connection.channel()

    async def loop() -> None:
        while True:
            await channel.basic_publish(b"x", routing_key=queue)
            await asyncio.sleep(1 / per_second)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()


async def test_fidelity_message_rate_with_traffic(rabbit: RabbitMQServer, name: str) -> None:
    """MessageRate is message_stats.publish_details.rate; the HPA sees ceil(rate / value)."""
    rabbit.add_queue(name)
    scaler = make(
        {"host": rabbit.http_host(), "queueName": name, "mode": "MessageRate", "value": "8"}
    )
    async with publishing(rabbit, name, per_second=20), clients() as shared:
        await asyncio.to_thread(
            rabbit.wait_for_queue,
            name,
            lambda q: q.get("message_stats", {}).get("publish_details", {}).get("rate", 0) > 10,
        )
        value, active = await poll(scaler, shared)
    # The broker's own sampling of a 20/s publisher: not exact, but never 0 and never the count.
    assert value == pytest.approx(20, rel=0.5)
    assert active
    assert math.ceil(value / scaler.target) in (2, 3, 4)


# Failures: errors, never a zero.


async def test_server_down_is_unreachable(rabbit: RabbitMQServer, name: str) -> None:
    port = free_port()
    async with clients() as shared:
        for host in (
            f"http://guest:guest@127.0.0.1:{port}",
            f"amqp://guest:guest@127.0.0.1:{port}",
        ):
            scaler = make({"host": host, "queueName": name})
            with pytest.raises(SourceUnreachable, match=f"127.0.0.1:{port}") as info:
                await scaler.query.run(shared)
            assert "guest" not in str(info.value)


async def test_missing_queue_is_an_error(rabbit: RabbitMQServer, name: str) -> None:
    rabbit.add_queue(f"{name}-real")
    rabbit.publish(f"{name}-real", 2)
    missing = rf'queue "{name}-nope" in vhost "/"'
    async with clients() as shared:
        http = make({"host": rabbit.http_host(), "queueName": f"{name}-nope"})
        with pytest.raises(SourceResponseError, match=rf"{missing}: GET .* HTTP 404"):
            await http.query.run(shared)
        real = make({"host": rabbit.amqp_host(), "queueName": f"{name}-real"})
        assert await poll(real, shared) == (2, True)
        (before,) = wait_until(rabbit.connections, lambda c: len(c) == 1, 10, "a connection")
        amqp = make({"host": rabbit.amqp_host(), "queueName": f"{name}-nope"})
        with pytest.raises(SourceResponseError, match=rf"{missing}: not found at amqp://"):
            await amqp.query.run(shared)
        # NOT_FOUND closed the channel, not the connection: the next declare opens a channel.
        assert await poll(real, shared) == (2, True)
        (after,) = rabbit.connections()
        assert after["name"] == before["name"]


async def not_rabbitmq(request: Request) -> Response:
    """Some other HTTP service on the host and port a trigger names."""
    path = request.scope["raw_path"]
    if path.startswith(b"/html/"):
        return PlainTextResponse("<html>hello</html>")
    if path.endswith(b"/other"):
        return PlainTextResponse("no such page", status_code=404)
    return JSONResponse({"status": "ok", "messages": 3})


async def test_not_rabbitmq_is_a_response_error() -> None:
    app = Starlette(routes=[Route("/{rest:path}", not_rabbitmq)])
    async with serving(app) as url, clients() as shared:
        cases = [
            ({"host": f"{url}/html/%2F"}, "not JSON"),
            ({"host": url}, "the answer is not a RabbitMQ queue object"),
            ({"host": url, "useRegex": "true"}, "the answer has no list of queues"),
            ({"host": url, "queueName": "other"}, "HTTP 404"),
        ]
        for metadata, message in cases:
            scaler = make({"queueName": "jobs", **metadata})
            with pytest.raises(SourceResponseError, match=message):
                await scaler.query.run(shared)


async def test_refused_logins_are_response_errors(rabbit: RabbitMQServer, name: str) -> None:
    rabbit.add_queue(name)
    async with clients() as shared:
        http = make({"host": rabbit.http_host(password="wrong"), "queueName": name})
        with pytest.raises(SourceResponseError, match="HTTP 401") as info:
            await http.query.run(shared)
        assert "wrong" not in str(info.value)
        amqp = make({"host": rabbit.amqp_host(password="wrong"), "queueName": name})
        with pytest.raises(SourceResponseError, match="login refused") as info:
            await amqp.query.run(shared)
        assert "wrong" not in str(info.value)
        no_vhost = make({"host": rabbit.amqp_host(vhost=f"{name}-none"), "queueName": name})
        with pytest.raises(SourceResponseError, match=f'vhost "{name}-none"'):
            await no_vhost.query.run(shared)
        # The authentication's username/password replace the host's, as in KEDA.
        rabbit.add_user(f"{name}-user", "pw-1")
        fixed = {"username": f"{name}-user", "password": "pw-1"}
        for host in (rabbit.http_host(password="wrong"), rabbit.amqp_host(password="wrong")):
            assert await poll(make({"host": host, "queueName": name}, fixed), shared) == (0, False)


async def test_paused_server_times_out_then_recovers(rabbit: RabbitMQServer, name: str) -> None:
    rabbit.add_queue(name)
    rabbit.publish(name, 3)
    rabbit.wait_for_queue(name, lambda q: q.get("messages") == 3)
    http = make({"host": rabbit.http_host(), "queueName": name})
    own_timeout = make({"host": rabbit.http_host(), "queueName": name, "timeout": "300ms"})
    amqp = make({"host": rabbit.amqp_host(), "queueName": name})
    async with clients(within=1.0) as shared:
        assert await poll(amqp, shared) == (3, True)  # a live shared connection, then paused
        rabbit.pause()
        try:
            with pytest.raises(SourceTimeout, match=r"no answer within 1s"):
                await http.query.run(shared)
            with pytest.raises(SourceTimeout, match=r"within 0\.3s \(the trigger's timeout\)"):
                await own_timeout.query.run(shared)
            with pytest.raises(SourceTimeout, match=r"AMQP queue.declare\(passive\)"):
                await amqp.query.run(shared)
        finally:
            rabbit.resume()
        # The timed-out connection was discarded; the next poll opens a fresh one.
        assert await poll(amqp, shared) == (3, True)
        assert await poll(http, shared) == (3, True)


# aiormq 6.9 leaves its socket open after the server's Connection.Close (the writer task ends
# without closing it); it is collected below, where that warning is expected.
@pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")
async def test_connection_closed_by_the_server_reconnects(
    rabbit: RabbitMQServer, name: str
) -> None:
    rabbit.add_queue(name)
    rabbit.publish(name, 4)
    amqp = make({"host": rabbit.amqp_host(), "queueName": name})
    async with clients() as shared:
        assert await poll(amqp, shared) == (4, True)
        (first,) = wait_until(rabbit.connections, lambda c: len(c) == 1, 10, "a connection")
        assert rabbit.close_connections() == 1
        # Asked at once, before the client has even read the server's Connection.Close.
        assert await poll(amqp, shared) == (4, True)
        await asyncio.to_thread(
            wait_until,
            rabbit.connections,
            lambda c: [x["name"] for x in c] not in ([], [first["name"]]),
            10,
            "one new connection",
        )
        assert len(rabbit.connections()) == 1
    gc.collect()


async def test_tls_listeners(rabbit: RabbitMQServer, name: str) -> None:
    """amqps and https, verified against the authentication's ca (tls: enable)."""
    rabbit.add_queue(name)
    rabbit.publish(name, 2)
    rabbit.wait_for_queue(name, functools.partial(settled, messages=2))
    trusted = {"tls": "enable", "ca": rabbit.ca_pem}
    async with clients() as shared:
        for host in (rabbit.amqps_host(), rabbit.https_host()):
            assert await poll(make({"host": host, "queueName": name}, trusted), shared) == (2, True)
            with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await make({"host": host, "queueName": name}).query.run(shared)
        unsafe = make({"host": rabbit.https_host(), "queueName": name, "unsafeSsl": "true"})
        assert await poll(unsafe, shared) == (2, True)


# Sharing: one client per server, one request per distinct query per poll.


@dataclass
class Fleet:
    """ScaledObjects ``so<i>``, one trigger each, bound and polled as the service does it."""

    poller: Poller = field(default_factory=new_poller)
    bound: list[BoundTrigger] = field(default_factory=list)

    @property
    def store(self) -> MetricStore:
        return self.poller.store

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.poller.clients.aclose()

    def add(self, index: int, metadata: dict[str, str]) -> None:
        bound = bound_trigger(f"so{index}", metadata, "rabbitmq")
        self.poller.set_triggers(bound.so, [bound])
        self.bound.append(bound)

    async def poll_all(self) -> None:
        for query in {b.scaler.query for b in self.bound}:
            await self.poller.poll(query)

    def value(self, index: int) -> bytes:
        bound = self.bound[index]
        return self.store.answer("default", bound.so.name, bound.metric_name)

    def active(self, index: int) -> bool:
        return reading(self.store, self.bound[index]).active


async def test_many_triggers_share_one_request_per_queue_http(
    rabbit: RabbitMQServer, name: str
) -> None:
    queues = [f"{name}-a", f"{name}-b"]
    for i, queue in enumerate(queues):
        rabbit.add_queue(queue)
        rabbit.publish(queue, 5 * (i + 1))
        rabbit.wait_for_queue(queue, functools.partial(settled, messages=5 * (i + 1)))
    variants = [
        {"mode": "QueueLength", "value": "5"},
        {"mode": "MessageRate", "value": "50"},
        {"excludeUnacknowledged": "true"},
        {"activationValue": "7"},
    ]
    async with Fleet() as fleet:
        # 16 ScaledObjects, each with one trigger: 2 queues x 4 variants x 2 copies.
        for i in range(16):
            trigger = {"host": rabbit.http_host(), "queueName": queues[i % 2], **variants[i // 4]}
            fleet.add(i, trigger)
        assert fleet.poller.query_count == 2
        paths = [f"/api/queues/%2F/{q}" for q in queues]
        before = [rabbit.http_requests(p) for p in paths]
        await fleet.poll_all()
        # The management API's own access log: one GET per queue, not one per trigger.
        after = wait_until(
            lambda: [rabbit.http_requests(p) for p in paths],
            lambda counts: counts != before,
            5,
            "the access log",
        )
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]
        assert b'"value":"5"' in fleet.value(0)
        assert b'"value":"10"' in fleet.value(1)
        # MessageRate with no publishing in the last sample: 0, yet active on the backlog.
        await asyncio.to_thread(
            rabbit.wait_for_queue,
            queues[0],
            functools.partial(settled, messages=5, idle=True),
        )
        await fleet.poll_all()
        assert b'"value":"0"' in fleet.value(4)
        assert fleet.active(4) is True


def frames_received(server: RabbitMQServer, quiet: float = 1.5) -> int:
    """The broker's count of frames received on the one connection, once its statistics
    (sampled every second here) have stopped moving for ``quiet`` seconds."""
    deadline = time.monotonic() + 15
    value, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        (connection,) = server.connections()
        current = int(connection.get("recv_cnt", -1))
        if current != value:
            value, since = current, time.monotonic()
        elif value >= 0 and time.monotonic() - since >= quiet:
            return value
        time.sleep(0.2)
    raise AssertionError(f"recv_cnt did not settle: {value}")


async def test_many_triggers_share_one_connection_amqp(rabbit: RabbitMQServer, name: str) -> None:
    queues = [f"{name}-a", f"{name}-b"]
    for i, queue in enumerate(queues):
        rabbit.add_queue(queue)
        rabbit.publish(queue, i + 1)
    async with Fleet() as fleet:
        for i in range(10):
            activation = {"activationValue": str(i)} if i % 3 else {}
            fleet.add(i, {"host": rabbit.amqp_host(), "queueName": queues[i % 2], **activation})
        assert fleet.poller.query_count == 2
        queries = {b.scaler.query for b in fleet.bound}
        assert len({q.server for q in queries if isinstance(q, AmqpQuery)}) == 1
        await fleet.poll_all()
        # The server's view: one connection with one channel, for ten triggers.
        connections = wait_until(
            rabbit.connections, lambda c: len(c) == 1 and "recv_cnt" in c[0], 10, "connection"
        )
        assert connections[0]["channels"] == 1
        assert connections[0]["client_properties"]["connection_name"] == "metrics-adapter"
        received = await asyncio.to_thread(frames_received, rabbit)
        await fleet.poll_all()
        # Ten triggers on two queues: two more declares, two more frames, not ten.
        assert await asyncio.to_thread(frames_received, rabbit) - received == 2
        assert b'"value":"1"' in fleet.value(0)
        assert b'"value":"2"' in fleet.value(1)
