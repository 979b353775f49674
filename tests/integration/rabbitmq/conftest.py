"""RabbitMQ fixtures: one node for the session (it takes seconds to boot), unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.rabbitmq import RabbitMQServer, available, require_in_ci

require_in_ci()


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitMQServer]:
    """One node for the session; tests use queues and vhosts of their own."""
    if not available():
        pytest.skip("rabbitmq-server is not installed (Debian package), or not root")
    server = RabbitMQServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def name() -> str:
    """A prefix no other test uses, for queues and vhosts."""
    return f"t{uuid.uuid4().hex[:10]}"
