"""redis-streams against a real redis-server 7: real stream states → the value and activity
KEDA computes (length, pending entries, lag, and its edge cases)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from scalers import redis_streams
from scalers.clients import Clients
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import scaler_of
from tests.support.triggers import poll

pytestmark = pytest.mark.integration

Setup = Callable[[redis.Redis, str], Any]


def entries(n: int) -> Setup:
    def add(client: redis.Redis, stream: str) -> None:
        for i in range(n):
            client.xadd(stream, {"n": i})

    return add


def group(n: int, *, read: int = 0, acked: int = 0, at: str = "0") -> Setup:
    """``n`` entries, group ``g`` created at ``at``, ``read`` delivered to a consumer and
    ``acked`` of those acknowledged."""

    def make(client: redis.Redis, stream: str) -> None:
        entries(n)(client, stream)
        client.xgroup_create(stream, "g", at, mkstream=True)
        if read:
            got: Any = client.xreadgroup("g", "c1", {stream: ">"}, count=read)
            ids = [entry_id for _, batch in got for entry_id, _ in batch]
            if acked:
                client.xack(stream, "g", *ids[:acked])

    return make


def deleted_inside_the_group_range(client: redis.Redis, stream: str) -> None:
    """An entry deleted after the group's last delivery: Redis cannot tell the lag (nil)."""
    ids = [client.xadd(stream, {"n": i}) for i in range(5)]
    client.xgroup_create(stream, "g", "0")
    client.xreadgroup("g", "c1", {stream: ">"}, count=1)
    client.xdel(stream, ids[3])


def nothing(client: redis.Redis, stream: str) -> None:
    pass


LAG = {"consumerGroup": "g", "lagCount": "2"}
PENDING = {"consumerGroup": "g"}

FIDELITY: list[tuple[str, Setup, dict[str, str], float, bool]] = [
    ("length", entries(7), {}, 7, True),
    ("length-missing-stream", nothing, {}, 0, False),
    ("length-at-activation", entries(3), {"activationLagCount": "3"}, 3, False),
    ("length-over-activation", entries(4), {"activationLagCount": "3"}, 4, True),
    ("length-ignores-the-group-without-it", group(6, read=6, acked=6), {}, 6, True),
    ("pending-none-read", group(5), PENDING, 0, False),
    ("pending-delivered", group(5, read=3), PENDING, 3, True),
    ("pending-some-acked", group(5, read=3, acked=2), PENDING, 1, True),
    ("pending-lagcount-0-is-unset", group(5, read=2), {**PENDING, "lagCount": "0"}, 2, True),
    ("lag-nothing-read", group(5), LAG, 5, True),
    ("lag-some-read", group(5, read=2), LAG, 3, True),
    ("lag-acked-or-not", group(5, read=2, acked=2), LAG, 3, True),
    ("lag-all-read", group(4, read=4), LAG, 0, False),
    ("lag-group-from-now", group(5, at="$"), LAG, 0, False),
    ("lag-missing-group-is-the-length", entries(4), LAG, 4, True),
    ("lag-missing-stream", nothing, LAG, 0, False),
    ("lag-unknown-is-minus-one", deleted_inside_the_group_range, LAG, -1, False),
    (
        "lag-unknown-negative-activation",
        deleted_inside_the_group_range,
        {**LAG, "activationLagCount": "-2"},
        -1,
        True,
    ),
]


@pytest.mark.parametrize(
    ("setup", "metadata", "value", "active"),
    [pytest.param(*row[1:], id=row[0]) for row in FIDELITY],
)
async def test_fidelity(
    redis_server: RedisServer,
    setup: Setup,
    metadata: dict[str, str],
    value: float,
    active: bool,
) -> None:
    stream = f"s-{uuid.uuid4().hex}"
    with redis_server.client() as client:
        setup(client, stream)
    scaler = scaler_of(
        redis_streams.KIND, {"address": redis_server.address, "stream": stream, **metadata}
    )
    clients = Clients(timeout=5)
    try:
        polled = await poll(scaler, clients)
    finally:
        await clients.aclose()
    assert (polled.value, polled.active) == (value, active)


async def test_other_database(redis_server: RedisServer) -> None:
    stream = f"s-{uuid.uuid4().hex}"
    with redis_server.client(db=2) as client:
        entries(3)(client, stream)
    metadata = {"address": redis_server.address, "stream": stream}
    assert (await poll(scaler_of(redis_streams.KIND, metadata))).value == 0
    in_db = scaler_of(redis_streams.KIND, {**metadata, "databaseIndex": "2"})
    assert (await poll(in_db)).value == 3
