"""One Azurite queue service and one blob service for the session (each test makes queues
and containers of its own names)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.azurite import NEEDS, Azurite, AzuriteUnavailable, available, ensure_installed
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


def _start(service: str) -> Azurite:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    try:
        bin_dir = ensure_installed()
    except AzuriteUnavailable as exc:
        require_in_ci(False, str(exc))
        pytest.skip(str(exc))
    return Azurite(service, bin_dir).start()


@pytest.fixture(scope="session")
def queues() -> Iterator[Azurite]:
    server = _start("queue")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def blobs() -> Iterator[Azurite]:
    server = _start("blob")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def name() -> str:
    """A queue or container name of the test's own (3-63 lowercase letters, digits, -)."""
    return f"t{uuid.uuid4().hex[:16]}"
