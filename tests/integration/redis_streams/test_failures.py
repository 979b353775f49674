"""redis-streams failures against a real redis-server: each is an error naming the stream,
never a zero, and no password shows."""

from __future__ import annotations

import uuid

import pytest

from scalers import redis_streams
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.redis_lists.conftest import PASSWORD
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import scaler_of
from tests.support.triggers import poll

pytestmark = pytest.mark.integration

LAG = {"consumerGroup": "g", "lagCount": "2"}


def stream_name() -> str:
    return f"s-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({}, "WRONGTYPE"),
        ({"consumerGroup": "g"}, "WRONGTYPE"),
        (LAG, "WRONGTYPE"),
    ],
)
async def test_a_key_that_is_not_a_stream(
    redis_server: RedisServer, metadata: dict[str, str], error: str
) -> None:
    stream = stream_name()
    with redis_server.client() as client:
        client.rpush(stream, 1, 2, 3)
    scaler = scaler_of(
        redis_streams.KIND, {"address": redis_server.address, "stream": stream, **metadata}
    )
    with pytest.raises(SourceResponseError, match=error) as caught:
        await poll(scaler)
    assert f'stream "{stream}"' in str(caught.value)


async def test_pending_entries_of_a_missing_group_is_an_error(redis_server: RedisServer) -> None:
    """KEDA's XPENDING fails with NOGROUP; only lag falls back to the stream's length."""
    stream = stream_name()
    with redis_server.client() as client:
        client.xadd(stream, {"n": 1})
    metadata = {"address": redis_server.address, "stream": stream, "consumerGroup": "g"}
    with pytest.raises(SourceResponseError, match="NOGROUP"):
        await poll(scaler_of(redis_streams.KIND, metadata))
    with pytest.raises(SourceResponseError, match="NOGROUP"):  # no stream either
        await poll(scaler_of(redis_streams.KIND, {**metadata, "stream": stream_name()}))


@pytest.mark.parametrize("metadata", [{}, {"consumerGroup": "g"}, LAG])
async def test_wrong_password(password_redis: RedisServer, metadata: dict[str, str]) -> None:
    scaler = scaler_of(
        redis_streams.KIND,
        {"address": password_redis.address, "stream": "s", **metadata},
        {"password": "not-" + PASSWORD},
    )
    with pytest.raises(SourceResponseError, match="authentication failed") as caught:
        await poll(scaler)
    assert PASSWORD not in str(caught.value)
    right = scaler_of(
        redis_streams.KIND,
        {"address": password_redis.address, "stream": stream_name(), **metadata},
        {"password": PASSWORD},
    )
    if metadata.get("consumerGroup") and not metadata.get("lagCount"):
        return  # pending of a missing group is an error of its own
    assert (await poll(right)).value == 0


async def test_server_down_then_back(fresh_redis: RedisServer) -> None:
    metadata = {"address": fresh_redis.address, "stream": "s", **LAG}
    scaler = scaler_of(redis_streams.KIND, metadata)
    clients = Clients(timeout=2)
    try:
        with fresh_redis.client() as client:
            client.xadd("s", {"n": 1})
        assert (await poll(scaler, clients)).value == 1  # the group is not there: XLEN
        fresh_redis.stop()
        with pytest.raises(SourceUnreachable, match=f"{fresh_redis.address}.*stream"):
            await poll(scaler, clients)
        fresh_redis.start()  # same port, no data
        assert (await poll(scaler, clients)).value == 0  # the next poll reconnects
    finally:
        await clients.aclose()


async def test_a_paused_server_times_out(fresh_redis: RedisServer) -> None:
    scaler = scaler_of(redis_streams.KIND, {"address": fresh_redis.address, "stream": "s"})
    fresh_redis.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
            await poll(scaler, client_timeout=0.5)
    finally:
        fresh_redis.resume()
