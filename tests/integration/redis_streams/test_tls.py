"""redis-streams over TLS, with the client certificate the server requires."""

from __future__ import annotations

import pytest

from scalers import redis_streams
from scalers.errors import SourceUnreachable
from tests.support.pki import Pki
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import scaler_of
from tests.support.triggers import poll

pytestmark = pytest.mark.integration


async def test_pending_entries_over_tls(tls_redis: RedisServer, redis_pki: Pki) -> None:
    with tls_redis.client() as client:
        client.xadd("tls-orders", {"n": 1})
        client.xgroup_create("tls-orders", "g", "0")
        client.xreadgroup("g", "c", {"tls-orders": ">"})
    tls = {
        "ca": redis_pki.ca_pem,
        "cert": redis_pki.client_cert_pem,
        "key": redis_pki.client_key_pem,
    }
    metadata = {"address": tls_redis.address, "stream": "tls-orders", "consumerGroup": "g"}
    scaler = scaler_of(redis_streams.KIND, {**metadata, "enableTLS": "true"}, tls)
    assert str(scaler.query.describe()).endswith(f"rediss://{tls_redis.address}/0")
    assert (await poll(scaler)).value == 1
    unknown_ca = {k: v for k, v in tls.items() if k != "ca"}  # the system's CAs only
    refused = scaler_of(redis_streams.KIND, {**metadata, "enableTLS": "true"}, unknown_ca)
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await poll(refused)
