"""The SQL triggers' parsing: parameters as KEDA reads them, connection strings, and the
answer as Go's ``Scan`` into a float64 reads it."""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from typing import Any

import pytest

from scalers import mysql, postgresql
from scalers.base import ScalerKind
from scalers.errors import ConfigError, Problems, SourceResponseError
from scalers.identity import PodIdentity
from scalers.params import TriggerInputs
from scalers.sql import SqlQuery, SqlScaler, go_parse_float, scan_float

PG_URL = "postgresql://keda:pg-pass@db.example:5432/jobs?sslmode=require"
MY_DSN = "keda:my-pass@tcp(db.example:3306)/jobs"


def make(
    kind: ScalerKind[Any],
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    pod_identity: PodIdentity | None = None,
) -> SqlScaler:
    problems = Problems()
    inputs = TriggerInputs(dict(metadata), env or {}, auth or {}, pod_identity=pod_identity)
    built = kind.create(inputs, problems)
    problems.raise_for(f"trigger {kind.type_name}")
    assert isinstance(built, SqlScaler)
    return built


def refusal(kind: ScalerKind[Any], metadata: Mapping[str, str], **kw: Any) -> str:
    with pytest.raises(ConfigError) as error:
        make(kind, metadata, **kw)
    return str(error.value)


# The answer, as Go's database/sql Scan(&float64) reads it.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12.0),
        ("-1.5", -1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("+7", 7.0),
        ("0x1p-2", 0.25),
        ("Inf", math.inf),
        ("-infinity", -math.inf),
    ],
)
def test_text_go_reads_as_a_number(text: str, expected: float) -> None:
    assert go_parse_float(text) == expected


@pytest.mark.parametrize("text", ["", " 12", "12 ", "1_000", "ten", "1e400", "0x10", "1,5", "-nan"])
def test_text_go_refuses(text: str) -> None:
    assert go_parse_float(text) is None


def test_nan_text_is_a_number_to_go() -> None:
    number = go_parse_float("NaN")
    assert number is not None and math.isnan(number)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        (decimal.Decimal("7.25"), 7.25),
        ("42", 42.0),
        (b"17", 17.0),
        (2**63, float(2**63)),
    ],
)
def test_numbers_and_numeric_text_are_values(value: object, expected: float) -> None:
    assert scan_float(value, "q") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "returned NULL"),
        (True, "returned a boolean"),
        ("ten", 'returned "ten", which is not a number'),
        (decimal.Decimal("1E+400"), "not a number"),
        (object(), "returned a object"),
    ],
)
def test_null_booleans_and_text_are_errors_never_zero(value: object, message: str) -> None:
    with pytest.raises(SourceResponseError, match=message):
        scan_float(value, "q")


# postgresql


def test_postgresql_from_separate_parameters_as_keda_builds_its_string() -> None:
    s = make(
        postgresql.KIND,
        {
            "query": "SELECT 1",
            "targetQueryValue": "2.5",
            "activationTargetQueryValue": "1",
            "host": "db.example",
            "port": "5432",
            "userName": "keda",
            "dbName": "jobs",
            "sslmode": "disable",
        },
        {"password": "pg pass"},
    )
    assert (s.metric_name, s.target, s.activation_target) == ("postgresql", 2.5, 1.0)
    database = s.query.database
    assert isinstance(database, postgresql.PostgresDatabase)
    assert dict(database.settings) == {
        "host": "db.example",
        "port": "5432",
        "user": "keda",
        "dbname": "jobs",
        "sslmode": "disable",
        "password": "pg pass",
    }
    assert str(database) == "postgresql://keda@db.example:5432/jobs?sslmode=disable"
    assert "pg pass" not in repr(s)


def test_postgresql_connection_forms_that_mean_the_same_share_one_query() -> None:
    conninfo = "host=db.example port=5432 user=keda password='pg-pass' dbname=jobs sslmode=require"
    by_url = make(
        postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "1"}, {"connection": PG_URL}
    )
    by_pairs = make(
        postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "3"}, {"connection": conninfo}
    )
    assert by_url.query == by_pairs.query
    assert hash(by_url.query) == hash(by_pairs.query)
    other_sql = make(
        postgresql.KIND, {"query": "SELECT 2", "targetQueryValue": "1"}, {"connection": PG_URL}
    )
    assert other_sql.query != by_url.query
    assert "pg-pass" not in f"{by_url!r} {by_url.query.describe()}"


def test_postgresql_connection_from_the_environment() -> None:
    s = make(
        postgresql.KIND,
        {"query": "SELECT 1", "targetQueryValue": "1", "connectionFromEnv": "PG"},
        env={"PG": PG_URL},
    )
    assert str(s.query.database) == "postgresql://keda@db.example:5432/jobs?sslmode=require"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=a port=1", {"host": "a", "port": "1"}),
        ("host = a   dbname='my db'", {"host": "a", "dbname": "my db"}),
        (r"password='it\'s' user=x", {"password": "it's", "user": "x"}),
        (r"password=a\ b", {"password": "a b"}),
        ("password=''", {"password": ""}),
    ],
)
def test_libpq_key_value_strings(text: str, expected: dict[str, str]) -> None:
    assert postgresql.parse_conninfo(text) == expected


def test_a_url_with_several_hosts_and_query_parameters() -> None:
    pairs = postgresql.parse_url("postgres://u:p%40ss@h1:5432,[::1]:5433/d%20b?sslmode=verify-full")
    assert pairs == {
        "user": "u",
        "password": "p@ss",
        "host": "h1,::1",
        "port": "5432,5433",
        "dbname": "d b",
        "sslmode": "verify-full",
    }


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"connection": "host=a password='secret"}, "is not closed"),
        ({"connection": "just some words"}, "expected key=value"),
        ({"connection": "mysql://u:secret@h/d"}, "scheme is not postgres"),
        ({"connection": "host=a port=99999 password=secret"}, 'port "99999"'),
        ({"connection": "host=a sslmode=maybe password=secret"}, 'sslmode "maybe"'),
    ],
)
def test_a_bad_connection_is_named_without_its_value(auth: dict[str, str], message: str) -> None:
    text = refusal(postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "1"}, auth=auth)
    assert "metadata.connection" in text and message in text
    assert "secret" not in text


def test_postgresql_without_connection_names_every_missing_part() -> None:
    text = refusal(postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "1", "port": "x"})
    for name in ("host", "userName", "dbName", "sslmode"):
        assert f"metadata.{name}: is required when no connection is given" in text
    assert 'metadata.port: "x" is not a port number' in text


def test_postgresql_target_is_required_unless_the_trigger_feeds_a_formula() -> None:
    auth = {"connection": PG_URL}
    assert "targetQueryValue: is required" in refusal(
        postgresql.KIND, {"query": "SELECT 1"}, auth=auth
    )
    assert "greater than 0" in refusal(
        postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "0"}, auth=auth
    )
    problems = Problems()
    inputs = TriggerInputs({"query": "SELECT 1"}, {}, auth, as_metric_source=True)
    assert postgresql.KIND.create(inputs, problems) is not None and not len(problems)


def test_postgresql_password_comes_from_auth_or_env_never_the_trigger() -> None:
    meta = {
        "query": "SELECT 1",
        "targetQueryValue": "1",
        "host": "h",
        "port": "5432",
        "userName": "u",
        "dbName": "d",
        "sslmode": "disable",
    }
    in_trigger = make(postgresql.KIND, {**meta, "password": "nope"})
    assert "password" not in dict(in_trigger.query.database.settings)  # type: ignore[attr-defined]
    from_env = make(postgresql.KIND, {**meta, "passwordFromEnv": "PW"}, env={"PW": "yes"})
    assert dict(from_env.query.database.settings)["password"] == "yes"  # type: ignore[attr-defined]


def test_azure_workload_identity_is_refused_with_the_other_problems() -> None:
    text = refusal(
        postgresql.KIND,
        {"query": "SELECT 1"},
        auth={"connection": PG_URL},
        pod_identity=PodIdentity("azure-workload"),
    )
    assert "podIdentity: provider azure-workload" in text and "not supported" in text
    assert "targetQueryValue: is required" in text


# mysql


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (MY_DSN, ("tcp", "db.example:3306", "keda", "my-pass", "jobs", "false")),
        ("u:p:w@d@tcp(h:1)/db?tls=true", ("tcp", "h:1", "u", "p:w@d", "db", "true")),
        ("u@tcp(h)/db", ("tcp", "h:3306", "u", "", "db", "false")),
        ("u:p@/db?tls=skip-verify", ("tcp", "127.0.0.1:3306", "u", "p", "db", "skip-verify")),
        ("u:p@unix(/run/my.sock)/db", ("unix", "/run/my.sock", "u", "p", "db", "false")),
        ("/db", ("tcp", "127.0.0.1:3306", "", "", "db", "false")),
        ("u:p@tcp([::1]:3307)/d%20b", ("tcp", "[::1]:3307", "u", "p", "d b", "false")),
    ],
)
def test_go_mysql_dsns(dsn: str, expected: tuple[str, ...]) -> None:
    d = mysql.parse_dsn(dsn)
    assert (d.net, d.address, d.user, d.password, d.db_name, d.tls) == expected


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("u:secret@tcp(h:1)", "missing the /"),
        ("u:secret@tcp(h:1/db", "must end with ')'"),
        ("u:secret@tcp(h:1)/db?tls=custom", 'tls="custom"'),
        ("u:secret@udp(h:1)/db", 'network "udp"'),
        ("u:secret@tcp(h:99999)/db", "is not host:port"),
    ],
)
def test_a_bad_dsn_is_named_without_its_value(dsn: str, message: str) -> None:
    text = refusal(
        mysql.KIND, {"query": "SELECT 1", "queryValue": "1"}, auth={"connectionString": dsn}
    )
    assert "metadata.connectionString" in text and message in text
    assert "secret" not in text


def test_mysql_metric_name_is_keda_s_last_segment_of_the_connection_string() -> None:
    meta = {"query": "SELECT 1", "queryValue": "4", "activationQueryValue": "2"}
    s = make(mysql.KIND, meta, {"connectionString": MY_DSN + "?tls=preferred"})
    assert s.metric_name == "mysql-jobs?tls=preferred"
    assert (s.target, s.activation_target) == (4.0, 2.0)
    assert str(s.query.database) == "mysql://keda@tcp(db.example:3306)/jobs?tls=preferred"
    assert "my-pass" not in f"{s!r} {s.query.describe()}"


def test_mysql_from_separate_parameters() -> None:
    meta = {"query": "SELECT 1", "queryValue": "1", "host": "h", "port": "3307", "dbName": "d.b"}
    s = make(mysql.KIND, {**meta, "username": "u"}, {"password": "pw"})
    assert s.metric_name == "mysql-d-b"
    assert s.query.database == mysql.MysqlDatabase(
        address="h:3307", user="u", password="pw", db_name="d.b"
    )
    same = make(mysql.KIND, {**meta, "query": "SELECT 1"}, {"username": "u", "password": "pw"})
    assert same.query == s.query


def test_mysql_needs_a_connection_and_a_target() -> None:
    assert "metadata.queryValue: is required" in refusal(mysql.KIND, {"query": "SELECT 1"})
    text = refusal(mysql.KIND, {"query": "SELECT 1", "queryValue": "1"})
    assert "metadata.host: is required when no connectionString is given" in text
    assert "metadata.port: is required when no connectionString is given" in text
    bad_port = refusal(
        mysql.KIND, {"query": "SELECT 1", "queryValue": "1", "host": "h", "port": "x"}
    )
    assert 'metadata.port: "x" is not a port number' in bad_port


def test_the_query_is_the_database_and_the_sql_only() -> None:
    a = make(mysql.KIND, {"query": "SELECT 1", "queryValue": "1"}, {"connectionString": MY_DSN})
    b = make(mysql.KIND, {"query": "SELECT 1", "queryValue": "9"}, {"connectionString": MY_DSN})
    assert a.query == b.query == SqlQuery(mysql.parse_dsn(MY_DSN), "SELECT 1")
    other_user = make(
        mysql.KIND,
        {"query": "SELECT 1", "queryValue": "1"},
        {"connectionString": MY_DSN.replace("keda:", "other:")},
    )
    assert other_user.query != a.query


def test_postgresql_shows_every_host_without_the_password() -> None:
    conninfo = "host=a,::1 port=5432 user=u password=hush dbname=d"
    s = make(
        postgresql.KIND, {"query": "SELECT 1", "targetQueryValue": "1"}, {"connection": conninfo}
    )
    assert str(s.query.database) == "postgresql://u@a:5432,[::1]:5432/d"
    assert "hush" not in f"{s!r} {s.query.describe()}"
