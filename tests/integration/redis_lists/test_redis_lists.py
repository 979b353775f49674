"""redis against a real redis-server: every key type, auth, TLS, failures, one request per key."""

from __future__ import annotations

import asyncio
import functools
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers import redis as redis_scaler
from scalers.clients import Clients
from scalers.errors import (
    ScalerError,
    SourceResponseError,
    SourceTimeout,
    SourceUnreachable,
)
from tests.integration.redis_lists.conftest import ALICE, PASSWORD
from tests.support import triggers
from tests.support.pki import KEY_PASSWORD, Pki
from tests.support.redis_server import RedisServer
from tests.support.triggers import build, new_poller, reading
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration
bound_trigger = functools.partial(triggers.bound_trigger, trigger_type="redis")


def scaler(
    server: RedisServer, metadata: dict[str, str], auth: dict[str, str] | None = None
) -> redis_scaler.RedisScaler:
    fields = {"address": server.address, "listName": "jobs", **metadata}
    return build(redis_scaler.KIND, redis_scaler.RedisScaler, fields, auth)


# Fidelity: server state → (metric value, active, HPA replicas), through the real poller.

Setup = Callable[[redis.Redis, str], Any]


def nothing(client: redis.Redis, key: str) -> None:
    pass


FIDELITY: list[tuple[str, Setup, dict[str, str], float, bool, int]] = [
    ("list", lambda c, k: c.rpush(k, *range(12)), {}, 12, True, 3),
    (
        "list-at-activation",
        lambda c, k: c.rpush(k, 1, 2, 3),
        {"activationListLength": "3"},
        3,
        False,
        1,
    ),
    (
        "list-over-activation",
        lambda c, k: c.rpush(k, 1, 2, 3, 4),
        {"activationListLength": "3"},
        4,
        True,
        1,
    ),
    ("set", lambda c, k: c.sadd(k, *range(7)), {"listLength": "2"}, 7, True, 4),
    ("sorted-set", lambda c, k: c.zadd(k, {"a": 1, "b": 2, "c": 3, "d": 4}), {}, 4, True, 1),
    ("hash", lambda c, k: c.hset(k, mapping={f"f{i}": i for i in range(11)}), {}, 11, True, 3),
    ("missing-key", nothing, {}, 0, False, 0),
    ("drained-list", lambda c, k: (c.rpush(k, 1), c.lpop(k)), {}, 0, False, 0),
    ("negative-activation", nothing, {"activationListLength": "-1"}, 0, True, 0),
    (
        "other-database",
        lambda c, k: (c.rpush(k, *range(6)), c.move(k, 3)),
        {"databaseIndex": "3"},
        6,
        True,
        2,
    ),
    (
        "default-database-misses-it",
        lambda c, k: (c.rpush(k, 1, 2), c.move(k, 3)),
        {},
        0,
        False,
        0,
    ),
]


@pytest.mark.parametrize(
    ("setup", "metadata", "value", "active", "replicas"),
    [pytest.param(*row[1:], id=row[0]) for row in FIDELITY],
)
async def test_fidelity(
    redis_server: RedisServer,
    setup: Setup,
    metadata: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    key = f"q-{uuid.uuid4().hex}"
    with redis_server.client() as client:
        setup(client, key)
    poller = new_poller(2)
    store, clients = poller.store, poller.clients
    bound = bound_trigger("w", {"address": redis_server.address, "listName": key, **metadata})
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
    finally:
        await clients.aclose()
    got = reading(store, bound)
    assert got.error is None
    assert (got.value, got.active) == (value, active)
    assert math.ceil(value / bound.scaler.target) == replicas


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda c, k: c.set(k, "x"), "string"),
        (lambda c, k: c.xadd(k, {"f": "v"}), "stream"),
    ],
    ids=["string", "stream"],
)
async def test_fidelity_other_types_are_errors_not_zero(
    redis_server: RedisServer, setup: Setup, kind: str
) -> None:
    key = f"q-{uuid.uuid4().hex}"
    with redis_server.client() as client:
        setup(client, key)
    poller = new_poller(2)
    store, clients = poller.store, poller.clients
    bound = bound_trigger("w", {"address": redis_server.address, "listName": key})
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
    finally:
        await clients.aclose()
    got = reading(store, bound)
    assert got.error == (
        f'redis://{redis_server.address}/0 key "{key}": the key is a {kind}; '
        "expected a list, set, sorted set or hash"
    )
    assert got.value is None and not got.active


# Authentication and TLS.


@pytest.mark.parametrize(
    ("metadata", "auth"),
    [
        ({}, {"password": PASSWORD}),
        ({"username": ALICE[0]}, {"password": ALICE[1]}),
        ({}, {"username": ALICE[0], "password": ALICE[1]}),
    ],
    ids=["password", "acl-user-in-metadata", "acl-user-in-auth"],
)
async def test_authenticated(
    password_redis: RedisServer, metadata: dict[str, str], auth: dict[str, str]
) -> None:
    key = f"q-{uuid.uuid4().hex}"
    with password_redis.client() as client:
        client.rpush(key, 1, 2)
    assert await measure(scaler(password_redis, {"listName": key, **metadata}, auth)) == 2


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({}, "authentication failed: Authentication required."),
        ({"password": "wrong"}, "authentication failed: invalid username-password pair"),
    ],
    ids=["no-password", "wrong-password"],
)
async def test_authentication_failures_are_errors(
    password_redis: RedisServer, auth: dict[str, str], reason: str
) -> None:
    with pytest.raises(SourceResponseError, match=reason):
        await measure(scaler(password_redis, {}, auth))


def tls_auth(pki: Pki, **change: str) -> dict[str, str]:
    auth = {"ca": pki.ca_pem, "cert": pki.client_cert_pem, "key": pki.client_key_pem}
    return {k: v for k, v in {**auth, **change}.items() if v}


@pytest.mark.parametrize(
    ("metadata", "auth"),
    [
        ({}, {"tls": "enable"}),
        ({"enableTLS": "true"}, {}),
        ({"enableTLS": "true", "unsafeSsl": "true"}, {"ca": ""}),
        ({}, {"tls": "enable", "keyPassword": KEY_PASSWORD, "key": "encrypted"}),
    ],
    ids=["tls-from-auth", "enable-tls", "unsafe-ssl-without-ca", "encrypted-key"],
)
async def test_tls(
    tls_redis: RedisServer, redis_pki: Pki, metadata: dict[str, str], auth: dict[str, str]
) -> None:
    if auth.get("key") == "encrypted":
        auth = {**auth, "key": redis_pki.client_key_encrypted_pem}
    key = f"q-{uuid.uuid4().hex}"
    with tls_redis.client() as client:
        client.sadd(key, "a", "b", "c")
    s = scaler(tls_redis, {"listName": key, **metadata}, tls_auth(redis_pki, **auth))
    assert str(s.query.backend).startswith("rediss://")
    assert await measure(s) == 3


@pytest.mark.parametrize(
    ("metadata", "auth", "reason"),
    [
        ({"enableTLS": "true"}, {"ca": ""}, "CERTIFICATE_VERIFY_FAILED"),
        # TLS 1.3 refuses the certificate after the handshake: the alert or a reset.
        ({}, {"tls": "enable", "cert": "", "key": ""}, "CERTIFICATE_REQUIRED|reset by peer"),
        ({}, {}, "Connection reset by peer|Connection closed by server"),
    ],
    ids=["unknown-ca", "no-client-certificate", "plain-text-to-tls-port"],
)
async def test_tls_failures_are_unreachable(
    tls_redis: RedisServer,
    redis_pki: Pki,
    metadata: dict[str, str],
    auth: dict[str, str],
    reason: str,
) -> None:
    s = scaler(tls_redis, metadata, tls_auth(redis_pki, **auth))
    with pytest.raises(SourceUnreachable, match=reason):
        await measure(s)


# Failures: never a zero.


async def test_server_down_is_unreachable(fresh_redis: RedisServer) -> None:
    s = scaler(fresh_redis, {})
    fresh_redis.stop()
    with pytest.raises(SourceUnreachable, match=rf"redis://{fresh_redis.address}/0 key \"jobs\""):
        await measure(s)


async def test_a_paused_server_times_out(fresh_redis: RedisServer) -> None:
    s = scaler(fresh_redis, {})
    fresh_redis.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.3s"):
            await measure(s, client_timeout=0.3)
    finally:
        fresh_redis.resume()


async def test_a_database_the_server_lacks_is_an_error(redis_server: RedisServer) -> None:
    with pytest.raises(ScalerError, match="DB index is out of range"):
        await measure(scaler(redis_server, {"databaseIndex": "99"}))


async def test_failures_keep_the_error_and_the_client_reconnects(fresh_redis: RedisServer) -> None:
    with fresh_redis.client() as client:
        client.rpush("jobs", 1, 2, 3)
    poller = new_poller(0.5)
    store, clients = poller.store, poller.clients
    bound = bound_trigger("w", {"address": fresh_redis.address, "listName": "jobs"})
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
        assert reading(store, bound).value == 3
        fresh_redis.pause()
        try:
            await poller.poll(bound.scaler.query)
        finally:
            fresh_redis.resume()
        got = reading(store, bound)
        assert got.error is not None and "no answer within 0.5s" in got.error
        assert got.value == 3 and not got.active and got.failures == 1
        fresh_redis.restart()  # the pooled connection is dead; nothing was saved
        with fresh_redis.client() as client:
            client.rpush("jobs", *range(8))
        await poller.poll(bound.scaler.query)
        got = reading(store, bound)
        assert (got.error, got.value, got.active) == (None, 8, True)
    finally:
        await clients.aclose()


async def test_queries_failing_together_reconnect_together(fresh_redis: RedisServer) -> None:
    first, second = scaler(fresh_redis, {"listName": "a"}), scaler(fresh_redis, {"listName": "b"})
    clients = Clients(timeout=1)
    try:
        assert [await first.query.run(clients), await second.query.run(clients)] == [0, 0]
        fresh_redis.stop()
        failures = await asyncio.gather(
            first.query.run(clients), second.query.run(clients), return_exceptions=True
        )
        assert all(isinstance(f, SourceUnreachable) for f in failures), failures
        fresh_redis.start()
        with fresh_redis.client() as client:
            client.rpush("a", 1)
            client.sadd("b", 1, 2)
        assert [await first.query.run(clients), await second.query.run(clients)] == [1, 2]
        assert fresh_redis.connections_named(redis_scaler.CLIENT_NAME) == 1
    finally:
        await clients.aclose()


# Sharing: one client per backend, one script run per key per poll.


async def test_one_client_and_one_request_per_key_per_poll(redis_server: RedisServer) -> None:
    prefix = f"q-{uuid.uuid4().hex}"
    keys = [f"{prefix}-list", f"{prefix}-set", f"{prefix}-zset", f"{prefix}-hash"]
    with redis_server.client() as client:
        client.rpush(keys[0], *range(10))
        client.sadd(keys[1], *range(20))
        client.zadd(keys[2], {str(i): i for i in range(30)})
        client.hset(keys[3], mapping={str(i): i for i in range(40)})
    poller = new_poller(2)
    store, clients = poller.store, poller.clients
    bound: list[BoundTrigger] = []
    # 20 ScaledObjects, 5 per key, each with its own listLength: 20 triggers, 4 queries.
    for i in range(20):
        metadata = {
            "address": redis_server.address,
            "listName": keys[i % 4],
            "listLength": str(i + 1),
            "activationListLength": str(i),
        }
        so = parse_scaled_object(triggers.so_doc(f"so{i}", metadata, "redis"))
        bound += bind(so, Inventory())
        poller.set_triggers(so.ref, bound[-1:])
    assert poller.query_count == 4
    queries = {b.scaler.query for b in bound}
    try:
        for query in queries:  # warm up: the first run also loads the script
            await poller.poll(query)
        runs, connections = (
            redis_server.command_calls("evalsha"),
            redis_server.connections_received(),
        )
        for query in queries:
            await poller.poll(query)
        assert redis_server.command_calls("evalsha") - runs == 4
        # One pooled connection served every poll: none was opened since the warm-up
        # (the +2 are the admin client's own INFO connections).
        assert redis_server.connections_received() - connections == 2
        assert redis_server.connections_named(redis_scaler.CLIENT_NAME) == 1
        for i, b in enumerate(bound):
            got = reading(store, b)
            assert got.value == [10, 20, 30, 40][i % 4]
            assert got.active == (got.value > i)

        # On its schedule: one run per poll of each key, not one per trigger (five).
        runs = redis_server.command_calls("evalsha")
        polls = await triggers.run_until_polled(poller, bound, 3)
        # Plus at most one poll per key in flight when the poller stopped.
        calls = redis_server.command_calls("evalsha") - runs
        assert sum(polls.values()) <= calls <= sum(polls.values()) + len(polls)
    finally:
        await clients.aclose()
    eventually(lambda: redis_server.connections_named(redis_scaler.CLIENT_NAME) == 0)


def eventually(condition: Callable[[], bool], within: float = 5) -> None:
    """Poll ``condition``: the server learns of a closed connection on its own schedule."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)
