"""RabbitMQ fixtures: one node for the session (it takes seconds to boot), unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.rabbitmq import NEEDS, RabbitMQServer, available
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitMQServer]:
    """One node for the session; tests use queues and vhosts of their own."""
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    server = RabbitMQServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def name() -> str:
    """A prefix no other test uses, for queues and vhosts."""
    return f"t{uuid.uuid4().hex[:10]}"
