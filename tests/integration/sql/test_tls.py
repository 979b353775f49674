"""TLS as KEDA's drivers understand it: libpq's ``sslmode`` for postgresql, the Go MySQL
driver's ``tls`` for mysql; the servers say whether the session is encrypted."""

from __future__ import annotations

import pytest

from scalers.errors import ScalerError, SourceUnreachable
from scalers.sql import SqlScaler
from tests.integration.sql.helpers import APP_PASSWORD, APP_USER, DATABASE, MariaDb, Postgres
from tests.support.pki import Pki, make_pki
from tests.support.triggers import build
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

PG_ENCRYPTED = "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"
MY_ENCRYPTED = (
    "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS "
    "WHERE VARIABLE_NAME = 'Ssl_cipher'"
)


def pg_scaler(db: Postgres, query: str, options: str) -> SqlScaler:
    url = f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{db.port}/{DATABASE}?{options}"
    return build(db.kind, SqlScaler, db.metadata(query), {"connection": url})


def my_scaler(db: MariaDb, query: str, tls: str) -> SqlScaler:
    dsn = f"{db.source(APP_USER, APP_PASSWORD)}?tls={tls}"
    return build(db.kind, SqlScaler, db.metadata(query), {"connectionString": dsn})


async def test_postgres_verify_full_with_the_ca_is_encrypted(
    tls_pg: Postgres, sql_pki: Pki
) -> None:
    s = pg_scaler(tls_pg, PG_ENCRYPTED, f"sslmode=verify-full&sslrootcert={sql_pki.ca}")
    assert await measure(s) == 1


async def test_postgres_key_value_connection_with_tls(tls_pg: Postgres, sql_pki: Pki) -> None:
    conninfo = (
        f"host=127.0.0.1 port={tls_pg.port} user={APP_USER} password={APP_PASSWORD} "
        f"dbname={DATABASE} sslmode=verify-ca sslrootcert='{sql_pki.ca}'"
    )
    s = build(tls_pg.kind, SqlScaler, tls_pg.metadata(PG_ENCRYPTED), {"connection": conninfo})
    assert await measure(s) == 1


async def test_postgres_require_encrypts_without_verifying(tls_pg: Postgres) -> None:
    assert await measure(pg_scaler(tls_pg, PG_ENCRYPTED, "sslmode=require")) == 1


async def test_postgres_disable_stays_plain(tls_pg: Postgres) -> None:
    assert await measure(pg_scaler(tls_pg, PG_ENCRYPTED, "sslmode=disable")) == 0


async def test_postgres_verify_full_refuses_a_server_another_ca_signed(
    tls_pg: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = make_pki(tmp_path_factory.mktemp("other-ca"))
    s = pg_scaler(tls_pg, "SELECT 1", f"sslmode=verify-full&sslrootcert={other.ca}")
    with pytest.raises(SourceUnreachable, match="certificate verify failed"):
        await measure(s)


async def test_postgres_require_against_a_plain_server_is_an_error(pg: Postgres) -> None:
    with pytest.raises(ScalerError):
        await measure(pg_scaler(pg, "SELECT 1", "sslmode=require"))
    assert await measure(pg_scaler(pg, PG_ENCRYPTED, "sslmode=prefer")) == 0


async def test_mysql_skip_verify_and_preferred_encrypt(tls_maria: MariaDb) -> None:
    assert await measure(my_scaler(tls_maria, MY_ENCRYPTED, "skip-verify")) == 1
    assert await measure(my_scaler(tls_maria, MY_ENCRYPTED, "preferred")) == 1
    assert await measure(my_scaler(tls_maria, MY_ENCRYPTED, "false")) == 0


async def test_mysql_tls_true_verifies_against_the_system_cas(tls_maria: MariaDb) -> None:
    # The test CA is not one the system trusts: the Go driver's tls=true refuses it too.
    with pytest.raises(SourceUnreachable, match="certificate verify failed"):
        await measure(my_scaler(tls_maria, "SELECT 1", "true"))


@pytest.mark.parametrize("tls", ["true", "skip-verify"])
async def test_mysql_required_tls_against_a_plain_server_is_an_error(
    maria: MariaDb, tls: str
) -> None:
    with pytest.raises(SourceUnreachable, match="does not offer TLS"):
        await measure(my_scaler(maria, "SELECT 1", tls))
    assert await measure(my_scaler(maria, MY_ENCRYPTED, "preferred")) == 0
