"""A master, its replica and a sentinel, with passwords, shared by the module; a fresh one to
fail over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import NEEDS, binary
from tests.support.redis_topologies import SentinelTopology
from tests.support.servers import require_in_ci

REDIS_BINARY = binary()
require_in_ci(REDIS_BINARY is not None, NEEDS)
PASSWORD = "master-s3cret"
SENTINEL_PASSWORD = "sentinel-s3cret"


def _binary() -> Path:
    if REDIS_BINARY is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return REDIS_BINARY


def _topology() -> SentinelTopology:
    return SentinelTopology(_binary(), password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelTopology]:
    topology = _topology().start()
    try:
        yield topology
    finally:
        topology.cleanup()


@pytest.fixture
def fresh_sentinel() -> Iterator[SentinelTopology]:
    """A topology of the test's own, whose master the test stops."""
    topology = _topology().start()
    try:
        yield topology
    finally:
        topology.cleanup()
