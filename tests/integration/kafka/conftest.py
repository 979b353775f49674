"""A real Kafka broker (KRaft, from the Maven Central jars) for the kafka scaler's tests.

The JVM takes seconds to start, so one broker serves the session and every test isolates
itself with unique topic and group names; tests that stop or freeze a broker get their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kafka import KafkaBroker, KafkaUnavailable, ensure_jars
from tests.support.servers import require_in_ci


def _jars() -> Path:
    try:
        return ensure_jars()
    except KafkaUnavailable as exc:
        require_in_ci(False, f"a Kafka broker: {exc}")
        pytest.skip(f"no Kafka broker: {exc}")


def _start() -> KafkaBroker:
    broker = KafkaBroker(_jars()).start()
    print(f"kafka {broker.workdir}: ready after {broker.startup_seconds:.2f}s")
    return broker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the session: tests use unique topic and group names."""
    broker = _start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of the test's own, for tests that stop or freeze it."""
    broker = _start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def name() -> str:
    """A unique prefix for this test's topics and groups."""
    return f"t{uuid.uuid4().hex[:10]}"
