"""redis-server fixtures: a shared plain server, one with passwords, one with TLS, fresh ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import Pki, make_pki
from tests.support.redis_server import NEEDS, RedisServer, binary
from tests.support.servers import require_in_ci

REDIS_BINARY = binary()
require_in_ci(REDIS_BINARY is not None, NEEDS)
PASSWORD = "s3cret"
ALICE = ("alice", "wonder")


def _binary() -> Path:
    if REDIS_BINARY is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return REDIS_BINARY


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One plain server for the session: tests use keys of their own."""
    server = RedisServer(_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A server of the test's own, to stop, pause or restart."""
    server = RedisServer(_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def password_redis() -> Iterator[RedisServer]:
    """``requirepass`` for the default user, plus an ACL user alice."""
    user = f"{ALICE[0]} on >{ALICE[1]} ~* +@all"
    server = RedisServer(_binary(), password=PASSWORD, users=(user,)).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("redis-pki"))


@pytest.fixture(scope="session")
def tls_redis(redis_pki: Pki) -> Iterator[RedisServer]:
    """TLS only, and clients must present a certificate the test CA signed."""
    server = RedisServer(_binary(), pki=redis_pki).start()
    try:
        yield server
    finally:
        server.cleanup()
