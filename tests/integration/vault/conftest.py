"""A real Vault dev server (built from its Go module when the cache lacks it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from metrics_adapter.binding.auth_sources.base import ReadContext
from scalers.clients import Clients
from tests.support.vault import VaultServer, ensure_binary


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    """One server for the session: tests use paths of their own."""
    server = VaultServer(ensure_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh_vault() -> Iterator[VaultServer]:
    """A server of the test's own, to seal or freeze."""
    server = VaultServer(ensure_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def tls_vault() -> Iterator[VaultServer]:
    """``-dev-tls``: HTTPS with a certificate of Vault's own CA."""
    server = VaultServer(ensure_binary(), tls=True).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def context() -> AsyncIterator[ReadContext]:
    clients = Clients(timeout=3.0)
    try:
        yield ReadContext(clients)
    finally:
        await clients.aclose()
