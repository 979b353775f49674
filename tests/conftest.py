"""Fixtures shared by every layer: leaked-task detection and real servers on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.nats import BUILDS, NatsCluster, NatsServer, binaries
from tests.support.servers import require_in_ci

NATS_BINARIES = binaries()
require_in_ci(
    NATS_BINARIES.keys() >= BUILDS, f"both nats-server builds, found {sorted(NATS_BINARIES)}"
)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked asyncio tasks: {leaked}"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`serve` and `explain` configure the root logger; give pytest's handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=sorted(NATS_BINARIES), ids=lambda k: f"nats-{k}")
def nats_server(request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    """A fresh nats-server (JetStream + monitoring), once per build on this machine."""
    if not NATS_BINARIES:
        pytest.fail("no nats-server binary: run `make test`, which installs it")
    server = NatsServer(NATS_BINARIES[request.param]).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=sorted(NATS_BINARIES), ids=lambda k: f"nats-{k}")
def nats_cluster(request: pytest.FixtureRequest) -> Iterator[NatsCluster]:
    """A 3-node JetStream cluster on 127.0.0.2-4, once per nats-server build."""
    cluster = NatsCluster(NATS_BINARIES[request.param]).start()
    try:
        yield cluster
    finally:
        cluster.cleanup()
