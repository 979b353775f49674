"""One ActiveMQ broker for the session (a JVM takes seconds to start); a queue per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.activemq import NEEDS, ActiveMQBroker, available, start_broker
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


@pytest.fixture(scope="session")
def activemq() -> Iterator[ActiveMQBroker]:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def queue(activemq: ActiveMQBroker) -> str:
    """A queue no other test uses, created empty."""
    name = f"q{uuid.uuid4().hex[:10]}"
    activemq.add_queue(name)
    return name
