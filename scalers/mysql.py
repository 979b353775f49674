"""``mysql``: the number a SQL query returns, read from MySQL or MariaDB (aiomysql).

As KEDA's ``mySQLScaler``: the connection comes from ``connectionString`` (the Go driver's
DSN, ``user:password@tcp(host:3306)/db?tls=true``, from the authentication or the
environment), else from ``host``, ``port``, ``username``, ``password`` and ``dbName``; the
value is the first column of the first row, compared with ``queryValue`` and
``activationQueryValue``; the metric is ``mysql-<dbName>``, the database named by what
follows the last ``/`` of a connection string (query parameters included, as KEDA does).

Where we differ, on purpose:

- A DSN that does not parse, or ``host``/``port`` missing without one, is a configuration
  error named at once (KEDA fails when it first connects); ``queryValue`` must be greater
  than 0 (the HPA refuses any target below).
- Of the DSN's parameters only ``tls`` (``true``, ``skip-verify``, ``preferred``,
  ``false``) is honoured; the driver's timeouts and the rest are ignored:
  ``--scaler-timeout`` bounds the connect and each query, and the session's statement limit
  (MariaDB ``max_statement_time``, MySQL ``max_execution_time``) is set to it, so a slow
  query is an error of the trigger, stopped on the server too.
- ``metricName``, which KEDA declares and then overwrites, is not read.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import aiomysql  # type: ignore[import-untyped]
import pymysql.err  # type: ignore[import-untyped]

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import HttpIdentity, tls_context
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.params import Source, TriggerMetadata, param
from scalers.redis import join_host_port, split_address
from scalers.sql import APPLICATION_NAME, POOL_SIZE, Database, SqlQuery, SqlScaler

if TYPE_CHECKING:
    from scalers.clients import Clients

_AUTH_ENV = (Source.AUTH, Source.ENV)
_TRIGGER_AUTH = (Source.TRIGGER, Source.AUTH)
TLS_MODES = ("true", "false", "skip-verify", "preferred")
"""The Go driver's ``tls`` values that need no TLS config registered in Go code."""
_REFUSED = frozenset({1044, 1045, 1698})
"""Access denied: to the database, for the user, by the auth plugin."""
_GONE = frozenset({2002, 2003, 2006, 2013, 2055})
"""Cannot connect, server gone away, connection lost."""
_TOO_SLOW = frozenset({1969, 3024})
"""The session's statement time limit: MariaDB's ``max_statement_time``, MySQL's
``max_execution_time``."""


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    """KEDA's ``mySQLMetadata``: names and source orders as its tags say."""

    connection_string: str | None = param(
        "connectionString",
        order=_AUTH_ENV,
        optional=True,
        secret=True,
        doc="user:password@tcp(host:port)/db; else host, port, ...",
    )
    username: str | None = param(
        "username", order=(Source.TRIGGER, Source.AUTH, Source.ENV), optional=True
    )
    password: str | None = param("password", order=_AUTH_ENV, optional=True, secret=True)
    host: str | None = param("host", order=_TRIGGER_AUTH, optional=True)
    port: str | None = param("port", order=_TRIGGER_AUTH, optional=True)
    db_name: str | None = param("dbName", order=_TRIGGER_AUTH, optional=True)
    query: str = param("query", doc="SQL returning one number")
    query_value: float = param("queryValue", gt=0, doc="the HPA's target")
    activation_query_value: float = param("activationQueryValue", default="0")

    def check(self) -> Iterator[tuple[str, str]]:
        if self.connection_string:
            try:
                parse_dsn(self.connection_string)
            except ValueError as exc:
                yield "connectionString", str(exc)
            return
        for name, value in (("host", self.host), ("port", self.port)):
            if not value:
                yield name, "is required when no connectionString is given"
        if self.host and self.port:
            try:
                split_address(join_host_port(self.host, self.port))
            except ValueError:
                yield "port", f"{quote(self.port)} is not a port number (1 to 65535)"


@dataclass(frozen=True, slots=True)
class MysqlDatabase(Database):
    """One database and the identity that reads it: the key of one shared aiomysql pool."""

    net: str = "tcp"
    address: str = "127.0.0.1:3306"
    """``host:port``, or a socket's path when :attr:`net` is ``unix``."""
    user: str = ""
    password: str = field(default="", repr=False)
    db_name: str = ""
    tls: str = "false"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        tls = f"?tls={self.tls}" if self.tls != "false" else ""
        return f"mysql://{user}{self.net}({self.address})/{self.db_name}{tls}"

    async def first_row(self, clients: Clients, sql: str) -> tuple[object, ...] | None:
        pool = await clients.shared(self, lambda: _Pool.open(self, clients.timeout), _Pool.close)
        conn: Any = None
        try:
            async with asyncio.timeout(clients.timeout):
                conn = await pool.acquire()
                async with conn.cursor() as cursor:
                    await cursor.execute(sql)
                    row = await cursor.fetchone()
        except TimeoutError as exc:
            if conn is not None:  # mid-query: its answer may still come; never reuse it
                conn.close()
            raise SourceTimeout(f"{self}: no answer within {clients.timeout:g}s") from exc
        except pymysql.err.MySQLError as exc:
            raise self._error(exc) from exc
        except OSError as exc:  # refused, reset, TLS (ssl.SSLError is an OSError)
            raise SourceUnreachable(f"{self}: {exc}") from exc
        finally:
            if conn is not None:
                pool.release(conn)
        return None if row is None else tuple(row)

    def _error(self, exc: pymysql.err.MySQLError) -> Exception:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        reason = f"{text} (error {code})" if code is not None else text
        cause = exc.__cause__ or exc.__context__  # aiomysql wraps refusals and TLS failures
        if cause is not None and str(cause) and str(cause) not in reason:
            reason = f"{reason}: {cause}"
        if code in _REFUSED:
            return SourceResponseError(f"{self}: authentication failed: {reason}")
        if code in _TOO_SLOW:
            return SourceTimeout(f"{self}: the server stopped the query: {reason}")
        if code in _GONE:
            return SourceUnreachable(f"{self}: {reason}")
        return SourceResponseError(f"{self}: {reason}")


class _Pool:
    """An aiomysql pool whose connections, once, get the statement time limit and, when TLS
    is required, are checked to be encrypted: aiomysql falls back to plain text silently."""

    def __init__(self, pool: Any, database: MysqlDatabase, timeout: float) -> None:
        self.pool = pool
        self.database = database
        self.timeout = timeout
        self.ready: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    async def open(cls, database: MysqlDatabase, within: float) -> _Pool:
        options: dict[str, Any] = {"user": database.user, "password": database.password}
        if database.net == "unix":
            options["unix_socket"] = database.address
        else:
            options["host"], options["port"] = split_address(database.address)
        if database.db_name:
            options["db"] = database.db_name
        if database.tls != "false":
            verify = database.tls == "true"
            options["ssl"] = tls_context(HttpIdentity(verify=verify))
        pool = await aiomysql.create_pool(
            minsize=0,
            maxsize=POOL_SIZE,
            connect_timeout=within,
            autocommit=True,
            program_name=APPLICATION_NAME,
            **options,
        )
        return cls(pool, database, within)

    async def acquire(self) -> Any:
        conn = await self.pool.acquire()
        if conn in self.ready:
            return conn
        try:
            # aiomysql's private flag: the only record that the TLS upgrade happened
            if self.database.tls in ("true", "skip-verify") and not conn._secure:
                raise SourceUnreachable(f"{self.database}: the server does not offer TLS")
            async with conn.cursor() as cursor:
                if "mariadb" in conn.get_server_info().lower():
                    await cursor.execute(f"SET SESSION max_statement_time = {self.timeout:.3f}")
                else:
                    limit = max(1, round(self.timeout * 1000))
                    await cursor.execute(f"SET SESSION max_execution_time = {limit}")
        except BaseException:
            conn.close()
            self.pool.release(conn)
            raise
        self.ready.add(conn)
        return conn

    def release(self, conn: Any) -> None:
        self.pool.release(conn)

    @staticmethod
    async def close(pool: _Pool) -> None:
        pool.pool.close()
        try:
            await asyncio.wait_for(pool.pool.wait_closed(), 1.0)
        except (TimeoutError, OSError, ssl.SSLError):
            pool.pool.terminate()


def parse_dsn(text: str) -> MysqlDatabase:
    """The Go driver's ``ParseDSN``, for what we use of it:
    ``[user[:password]@][net[(addr)]]/dbname[?tls=...]``. The message never shows the DSN."""
    slash = text.rfind("/")
    if slash < 0:
        raise ValueError("is not a DSN: missing the / before the database name")
    user = password = ""
    net, address = "", ""
    if slash > 0:
        left = text[:slash]
        at = left.rfind("@")
        if at >= 0:
            user, _, password = left[:at].partition(":")
        rest = left[at + 1 :]
        opening = rest.find("(")
        if opening >= 0:
            if not rest.endswith(")"):
                raise ValueError("is not a DSN: the address must end with ')'")
            net, address = rest[:opening], rest[opening + 1 : -1]
        else:
            net = rest
    db_name, _, query = text[slash + 1 :].partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    tls = params.get("tls", "false").lower()
    tls = {"1": "true", "0": "false"}.get(tls, tls)
    if tls not in TLS_MODES:
        raise ValueError(f"has tls={quote(params['tls'])}; expected one of {', '.join(TLS_MODES)}")
    net = net or "tcp"
    if net not in ("tcp", "tcp4", "tcp6", "unix"):
        raise ValueError(f"has network {quote(net)}; expected tcp or unix")
    if net == "unix":
        address = address or "/tmp/mysql.sock"
    else:
        address = address or "127.0.0.1:3306"
        if not address.rpartition(":")[2].isdigit() or address.endswith("]"):
            address = join_host_port(address.strip("[]"), "3306")
        try:
            split_address(address)
        except ValueError as exc:
            raise ValueError(f"has address {exc}") from None
    return MysqlDatabase(
        net="unix" if net == "unix" else "tcp",
        address=address,
        user=user,
        password=password,
        db_name=unquote(db_name),
        tls=tls,
    )


def build(meta: Metadata) -> Scaler[Any]:
    db_name = meta.db_name or ""
    if meta.connection_string:
        try:
            database = parse_dsn(meta.connection_string)
            db_name = meta.connection_string.split("/")[-1]  # KEDA's, query parameters and all
        except ValueError:  # check() has refused it already; build stays total
            database, db_name = MysqlDatabase(), ""
    else:
        database = MysqlDatabase(
            address=join_host_port(meta.host or "", meta.port or ""),
            user=meta.username or "",
            password=meta.password or "",
            db_name=meta.db_name or "",
        )
    return SqlScaler(
        query=SqlQuery(database, meta.query),
        metric_name=normalize(f"mysql-{db_name}"),
        target=meta.query_value,
        activation_target=meta.activation_query_value,
        value_label="query value",
    )


KIND = ScalerKind(
    type_name="mysql",
    keda_name="mySQLScaler",
    metadata=Metadata,
    build=build,
    summary="The number a MySQL or MariaDB query returns (first column of the first row).",
    example=Example(
        {"query": "SELECT count(*) FROM jobs WHERE state = 'queued'", "queryValue": "5"},
        {"connectionString": "keda:mysql-password@tcp(mysql.default.svc:3306)/jobs"},
        source="connectionString",
    ),
)
