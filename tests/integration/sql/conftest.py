"""One PostgreSQL and one MariaDB server for the session, and servers of a test's own to stop.

Each test works in tables of its own (:func:`table`), so the shared servers never need
resetting. Tests that take a parameter ``db`` run once against each database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.sql.helpers import Db, MariaDb, Postgres
from tests.support import mariadb, postgres
from tests.support.pki import Pki, make_pki
from tests.support.servers import require_in_ci

PG_BIN = postgres.binaries()
MARIADB_BIN = mariadb.binaries()
require_in_ci(PG_BIN is not None, postgres.NEEDS)
require_in_ci(MARIADB_BIN is not None, mariadb.NEEDS)


def _postgres(pki: Pki | None = None) -> Postgres:
    if PG_BIN is None:
        pytest.skip(f"no {postgres.NEEDS} (CI fails instead)")
    return Postgres(postgres.PostgresServer(PG_BIN, pki=pki).start()).prepare()


def _mariadb(pki: Pki | None = None) -> MariaDb:
    if MARIADB_BIN is None:
        pytest.skip(f"no {mariadb.NEEDS} (CI fails instead)")
    return MariaDb(mariadb.MariaDbServer(*MARIADB_BIN, pki=pki).start()).prepare()


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    db = _postgres()
    try:
        yield db
    finally:
        db.server.cleanup()


@pytest.fixture(scope="session")
def maria() -> Iterator[MariaDb]:
    db = _mariadb()
    try:
        yield db
    finally:
        db.server.cleanup()


@pytest.fixture(params=["postgresql", "mysql"])
def db(request: pytest.FixtureRequest) -> Db:
    """Each shared server in turn."""
    fixture = "pg" if request.param == "postgresql" else "maria"
    found: Db = request.getfixturevalue(fixture)
    return found


@pytest.fixture(params=["postgresql", "mysql"])
def own_db(request: pytest.FixtureRequest) -> Iterator[Db]:
    """A server of the test's own, of each kind in turn, to stop, pause and restart."""
    db: Db = _postgres() if request.param == "postgresql" else _mariadb()
    try:
        yield db
    finally:
        db.server.cleanup()


@pytest.fixture
def table() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sql_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("sql-pki"))


@pytest.fixture(scope="module")
def tls_pg(sql_pki: Pki) -> Iterator[Postgres]:
    """A PostgreSQL server that also accepts TLS with the test CA's server certificate."""
    db = _postgres(sql_pki)
    try:
        yield db
    finally:
        db.server.cleanup()


@pytest.fixture(scope="module")
def tls_maria(sql_pki: Pki) -> Iterator[MariaDb]:
    """A MariaDB server that also accepts TLS with the test CA's server certificate."""
    db = _mariadb(sql_pki)
    try:
        yield db
    finally:
        db.server.cleanup()
