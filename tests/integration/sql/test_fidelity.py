"""postgresql and mysql against real servers: what KEDA computes for real rows.

KEDA reads ``QueryRow(query).Scan(&float64)``: the first row's only column, text parsed as
a number, compared with the activation threshold (strictly greater is active); the HPA's
replicas are ``ceil(value / target)`` (the metric is an AverageValue).
"""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active
from scalers.sql import SqlScaler
from tests.integration.sql.helpers import APP_PASSWORD, DATABASE, Db, MariaDb, Postgres
from tests.support.triggers import build
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

ROWS: list[tuple[str, float | None]] = [
    ("queued", 1.5),
    ("queued", 2.25),
    ("queued", 0.25),
    ("running", 4),
    ("running", None),
    ("done", 10),
]
"""Three queued jobs whose sizes add up to 4, two running, one done."""

# (query, target, activation) -> (value, active, HPA replicas)
FIDELITY = [
    ("SELECT count(*) FROM {t} WHERE state = 'queued'", "1", "0", 3, True, 3),
    ("SELECT count(*) FROM {t} WHERE state = 'queued'", "2", "0", 3, True, 2),
    ("SELECT count(*) FROM {t} WHERE state = 'queued'", "1", "3", 3, False, 3),
    ("SELECT count(*) FROM {t} WHERE state = 'queued'", "1", "2.5", 3, True, 3),
    ("SELECT count(*) FROM {t} WHERE state = 'failed'", "1", "0", 0, False, 0),
    ("SELECT sum(size) FROM {t} WHERE state = 'queued'", "1.5", "0", 4, True, 3),
    ("SELECT avg(size) FROM {t} WHERE state = 'done'", "4", "9.5", 10, True, 3),
    ("SELECT size FROM {t} WHERE size IS NOT NULL ORDER BY size DESC", "3", "0", 10, True, 4),
    ("SELECT count(*) * 0.5 FROM {t}", "1", "0", 3, True, 3),
    ("SELECT '12'", "5", "0", 12, True, 3),
    ("SELECT count(*) - 10 FROM {t}", "1", "0", -4, False, 0),
]


@pytest.mark.parametrize(
    ("query", "target", "activation", "value", "active", "replicas"),
    FIDELITY,
    ids=[f"{r[0][:40]}-t{r[1]}-a{r[2]}" for r in FIDELITY],
)
async def test_fidelity(
    db: Db,
    table: str,
    query: str,
    target: str,
    activation: str,
    value: float,
    active: bool,
    replicas: int,
) -> None:
    db.create_table(table, ROWS)
    s = db.scaler(query.format(t=table), target=target, activation=activation)
    measured = await measure(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert max(0, math.ceil(measured / s.target)) == replicas


async def test_metric_names_are_keda_s(pg: Postgres, maria: MariaDb) -> None:
    assert pg.scaler("SELECT 1").metric_name == "postgresql"
    assert maria.scaler("SELECT 1").metric_name == f"mysql-{DATABASE}"


async def test_rows_written_between_polls_are_seen(db: Db, table: str) -> None:
    db.create_table(table, [])
    s = db.scaler(f"SELECT count(*) FROM {table}")
    assert await measure(s) == 0
    db.run(f"INSERT INTO {table} (state, size) VALUES ('queued', 1), ('queued', 2)")
    assert await measure(s) == 2


async def test_separate_parameters_reach_the_same_database(
    pg: Postgres, maria: MariaDb, table: str
) -> None:
    for db in (pg, maria):
        db.create_table(table, ROWS)
    query = f"SELECT count(*) FROM {table}"
    pg_meta = {
        **pg.metadata(query),
        "host": "127.0.0.1",
        "port": str(pg.port),
        "userName": "keda",
        "dbName": DATABASE,
        "sslmode": "disable",
    }
    pg_scaler = build(pg.kind, SqlScaler, pg_meta, {"password": APP_PASSWORD})
    my_meta = {
        **maria.metadata(query),
        "host": "127.0.0.1",
        "port": str(maria.port),
        "username": "keda",
        "dbName": DATABASE,
    }
    my_scaler = build(maria.kind, SqlScaler, my_meta, {"password": APP_PASSWORD})
    assert await measure(pg_scaler) == await measure(my_scaler) == len(ROWS)
