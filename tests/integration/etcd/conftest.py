"""etcd fixtures: a plain server, one with authentication, one with TLS, fresh ones to stop."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd_server import NEEDS, EtcdServer, etcd_binary
from tests.support.pki import Pki, make_pki

ETCD = etcd_binary()
_KEYS = itertools.count()


def _binary() -> Path:
    if ETCD is None:
        pytest.skip(f"no {NEEDS} (CI builds it)")
    return ETCD


def _serve(server: EtcdServer) -> Iterator[EtcdServer]:
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    """One plain server for the module: tests use keys of their own."""
    yield from _serve(EtcdServer(_binary()))


@pytest.fixture
def own_etcd() -> Iterator[EtcdServer]:
    """A server of the test's own, to stop or freeze."""
    yield from _serve(EtcdServer(_binary()))


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdServer]:
    """Authentication on, a root user (tests.support.etcd_server.ROOT)."""
    yield from _serve(EtcdServer(_binary(), auth=True))


@pytest.fixture(scope="module")
def etcd_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("etcd-pki"))


@pytest.fixture(scope="module")
def tls_etcd(etcd_pki: Pki) -> Iterator[EtcdServer]:
    """TLS only, and clients must present a certificate the test CA signed."""
    yield from _serve(EtcdServer(_binary(), pki=etcd_pki))


@pytest.fixture
def key() -> str:
    return f"/jobs/pending-{next(_KEYS)}"
