"""redis-cluster(-streams) over TLS: every node, the ones found from the first included, is
reached with the trigger's CA and client certificate (redis-py builds TLS only from files)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalers import redis_variants
from scalers.errors import SourceUnreachable
from tests.integration.redis_cluster.conftest import PASSWORD, _binary
from tests.support.pki import Pki, make_pki
from tests.support.redis_topologies import ClusterTopology, scaler_of
from tests.support.triggers import poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterTopology, Pki]]:
    pki = make_pki(Path(tmp_path_factory.mktemp("redis-cluster-pki")))
    topology = ClusterTopology(_binary(), password=PASSWORD, pki=pki).start()
    try:
        yield topology, pki
    finally:
        topology.cleanup()


def auth(pki: Pki, **change: str) -> dict[str, str]:
    given = {"tls": "enable", "password": PASSWORD, "ca": pki.ca_pem}
    given |= {"cert": pki.client_cert_pem, "key": pki.client_key_pem}
    return {k: v for k, v in {**given, **change}.items() if v}


async def test_lists_and_streams_on_every_node(tls_cluster: tuple[ClusterTopology, Pki]) -> None:
    cluster, pki = tls_cluster
    first = cluster.nodes[0].address  # the others are found through it
    with cluster.client() as client:
        for n in range(1, 13):  # 12 keys: every master holds some
            client.rpush(f"l-{n}", *range(n))
        stream = f"s-{uuid.uuid4().hex}"
        client.xadd(stream, {"n": 1})
    for n in range(1, 13):
        lists = scaler_of(
            redis_variants.CLUSTER_KIND, {"addresses": first, "listName": f"l-{n}"}, auth(pki)
        )
        assert (await poll(lists)).value == n
    streams = scaler_of(
        redis_variants.CLUSTER_STREAMS_KIND,
        {"addresses": first, "stream": stream, "consumerGroup": "g", "lagCount": "1"},
        auth(pki),
    )
    assert (await poll(streams)).value == 1  # no group yet: the stream's length


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"ca": ""}, "CERTIFICATE_VERIFY_FAILED"), ({"tls": ""}, None)],
    ids=["unknown-ca", "plain-text-to-tls"],
)
async def test_tls_failures_are_unreachable(
    tls_cluster: tuple[ClusterTopology, Pki], change: dict[str, str], reason: str | None
) -> None:
    cluster, pki = tls_cluster
    scaler = scaler_of(
        redis_variants.CLUSTER_KIND,
        {"addresses": cluster.addresses, "listName": "l"},
        auth(pki, **change),
    )
    with pytest.raises(SourceUnreachable, match=reason) as caught:
        await poll(scaler)
    assert PASSWORD not in str(caught.value)
