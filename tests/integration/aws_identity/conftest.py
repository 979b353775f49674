"""moto (IAM, STS, SQS, Secrets Manager) for the AWS identity tests, and an AWS environment
that reaches only it: STS through botocore's ``AWS_ENDPOINT_URL_STS``, as an operator would
point the adapter at a private STS endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto import NEEDS, MotoServer, available, isolate_environment
from tests.support.servers import require_in_ci

require_in_ci(available(), NEEDS)


@pytest.fixture
def moto(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoServer]:
    """A moto of the test's own: each test turns IAM enforcement on once it is set up."""
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    isolate_environment(monkeypatch, tmp_path_factory.getbasetemp())
    server = MotoServer().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.endpoint)
    try:
        yield server
    finally:
        server.cleanup()
