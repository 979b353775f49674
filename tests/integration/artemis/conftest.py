"""One Artemis broker for the session (a JVM takes seconds to start); a queue per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.artemis import NEEDS, ArtemisBroker, available, start_broker
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


@pytest.fixture(scope="session")
def artemis() -> Iterator[ArtemisBroker]:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def queue(artemis: ArtemisBroker) -> str:
    """An anycast queue no other test uses, on an address of the same name, created empty."""
    name = f"q{uuid.uuid4().hex[:10]}"
    artemis.create_queue(name, name)
    return name
