"""A real nats-server for the integration tests that need one (the nats-jetstream scaler's
own, in nats/, and standalone mode's, explain's and the upstream-load test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.nats import BUILDS, NatsServer, binaries
from tests.support.servers import require_in_ci

NATS_BINARIES = binaries()
require_in_ci(
    NATS_BINARIES.keys() >= BUILDS, f"both nats-server builds, found {sorted(NATS_BINARIES)}"
)


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
