"""A 3-node JetStream cluster for the nats-jetstream cluster tests; the single server
(``nats_server``) is in tests/integration/conftest.py, as other integration tests use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.nats import NatsCluster, binaries

NATS_BINARIES = binaries()


@pytest.fixture(params=sorted(NATS_BINARIES), ids=lambda k: f"nats-{k}")
def nats_cluster(request: pytest.FixtureRequest) -> Iterator[NatsCluster]:
    """A 3-node JetStream cluster on 127.0.0.2-4, once per nats-server build."""
    cluster = NatsCluster(NATS_BINARIES[request.param]).start()
    try:
        yield cluster
    finally:
        cluster.cleanup()
