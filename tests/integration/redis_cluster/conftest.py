"""A Redis Cluster of three masters with a password, shared by the module; fresh ones to break."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import NEEDS, binary
from tests.support.redis_topologies import ClusterTopology, redis_cli
from tests.support.servers import require_in_ci

REDIS_BINARY = binary()
require_in_ci(REDIS_BINARY is not None and redis_cli() is not None, NEEDS + " and redis-cli")
PASSWORD = "cluster-s3cret"


def _binary() -> Path:
    if REDIS_BINARY is None or redis_cli() is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return REDIS_BINARY


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterTopology]:
    topology = ClusterTopology(_binary(), password=PASSWORD).start()
    try:
        yield topology
    finally:
        topology.cleanup()


@pytest.fixture
def fresh_cluster() -> Iterator[ClusterTopology]:
    """A cluster of the test's own, to stop a master of."""
    topology = ClusterTopology(_binary(), password=PASSWORD).start()
    try:
        yield topology
    finally:
        topology.cleanup()
