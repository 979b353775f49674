"""redis-sentinel(-streams) over TLS: the sentinel and the master it names are both reached
with the trigger's CA and client certificate, as go-redis does with one TLSConfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scalers import redis_variants
from scalers.errors import SourceUnreachable
from tests.integration.redis_sentinel.conftest import PASSWORD, SENTINEL_PASSWORD, _binary
from tests.support.pki import Pki, make_pki
from tests.support.redis_topologies import MASTER_NAME, SentinelTopology, scaler_of
from tests.support.triggers import poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_sentinel(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SentinelTopology, Pki]]:
    pki = make_pki(Path(tmp_path_factory.mktemp("redis-sentinel-pki")))
    topology = SentinelTopology(
        _binary(), password=PASSWORD, sentinel_password=SENTINEL_PASSWORD, pki=pki
    ).start()
    try:
        yield topology, pki
    finally:
        topology.cleanup()


def auth(pki: Pki, **change: str) -> dict[str, str]:
    given = {"tls": "enable", "password": PASSWORD, "sentinelPassword": SENTINEL_PASSWORD}
    given |= {"ca": pki.ca_pem, "cert": pki.client_cert_pem, "key": pki.client_key_pem}
    return {k: v for k, v in {**given, **change}.items() if v}


async def test_lists_and_streams(tls_sentinel: tuple[SentinelTopology, Pki]) -> None:
    topology, pki = tls_sentinel
    with topology.working_master().client() as client:
        client.rpush("jobs", 1, 2, 3, 4)
        client.xadd("orders", {"n": 1})
    assert topology.sentinel is not None
    where = {"addresses": topology.sentinel.address, "sentinelMaster": MASTER_NAME}
    lists = scaler_of(redis_variants.SENTINEL_KIND, {**where, "listName": "jobs"}, auth(pki))
    assert (await poll(lists)).value == 4
    streams = scaler_of(
        redis_variants.SENTINEL_STREAMS_KIND, {**where, "stream": "orders"}, auth(pki)
    )
    assert (await poll(streams)).value == 1


async def test_an_unknown_ca_is_unreachable(tls_sentinel: tuple[SentinelTopology, Pki]) -> None:
    topology, pki = tls_sentinel
    assert topology.sentinel is not None
    metadata = {
        "addresses": topology.sentinel.address,
        "sentinelMaster": MASTER_NAME,
        "listName": "jobs",
    }
    scaler = scaler_of(redis_variants.SENTINEL_KIND, metadata, auth(pki, ca=""))
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED") as caught:
        await poll(scaler)
    assert PASSWORD not in str(caught.value) and SENTINEL_PASSWORD not in str(caught.value)
