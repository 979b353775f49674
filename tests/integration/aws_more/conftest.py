"""One moto server for the module's AWS triggers, and an AWS environment that reaches only it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.moto import NEEDS, MotoServer, available, isolate_environment
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


def _server() -> MotoServer:
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return MotoServer().start()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """Shared by a module's tests, which isolate themselves with unique names."""
    server = _server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A moto of the test's own, for tests that stop it or enforce IAM on it."""
    server = _server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    isolate_environment(monkeypatch, tmp_path_factory.getbasetemp())
