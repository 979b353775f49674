"""moto servers for the aws-sqs-queue tests, and an AWS environment that reaches only them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.aws_sqs_queue.helpers import CannedEndpoint
from tests.support.moto import NEEDS, MotoServer, available, isolate_environment
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


def _server() -> MotoServer:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return MotoServer().start()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto for the session: tests isolate themselves with unique queue names."""
    server = _server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A moto of the test's own, for tests that stop, pause or lock it."""
    server = _server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    isolate_environment(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture
async def canned() -> AsyncIterator[CannedEndpoint]:
    endpoint = CannedEndpoint()
    server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
    endpoint.port = server.sockets[0].getsockname()[1]
    try:
        yield endpoint
    finally:
        server.close()
        await server.wait_closed()
