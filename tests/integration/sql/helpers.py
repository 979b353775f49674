"""The two databases behind one face, so that each SQL test is written once: how a user's
trigger reaches the database (``connection`` or ``connectionString``), and how the test
sets rows up and reads what the server executed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from scalers import mysql, postgresql
from scalers.base import ScalerKind
from scalers.sql import SqlScaler
from tests.support.mariadb import MariaDbServer
from tests.support.postgres import PostgresServer
from tests.support.triggers import build

APP_USER = "keda"
APP_PASSWORD = "app-pw-7f3a"
"""The identity triggers use: it owns database ``jobs`` and nothing else."""
OTHER_USER = "reader"
OTHER_PASSWORD = "reader-pw-91c2"
DATABASE = "jobs"


@dataclass
class Db:
    server: PostgresServer | MariaDbServer
    type_name: ClassVar[str]
    kind: ClassVar[ScalerKind[Any]]
    target_param: ClassVar[str]
    activation_param: ClassVar[str]
    source_param: ClassVar[str]

    def prepare(self) -> Any:
        """Create the database and the two users triggers connect as."""
        raise NotImplementedError

    def source(self, user: str, password: str, port: int | None = None) -> str:
        raise NotImplementedError

    def run(self, *statements: str) -> None:
        """Run ``statements`` in database ``jobs`` as its owner (setting up rows)."""
        raise NotImplementedError

    def executed(self, sql: str) -> int:
        """How many times the server was asked ``sql``, by its own log."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> str:
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    def auth(
        self, user: str = APP_USER, password: str = APP_PASSWORD, port: int | None = None
    ) -> dict[str, str]:
        return {self.source_param: self.source(user, password, port)}

    def metadata(self, query: str, target: str = "1", activation: str = "0") -> dict[str, str]:
        return {"query": query, self.target_param: target, self.activation_param: activation}

    def scaler(self, query: str, **kw: Any) -> SqlScaler:
        auth_keys = ("user", "password", "port")
        auth = self.auth(**{k: v for k, v in kw.items() if k in auth_keys})
        meta = self.metadata(query, **{k: v for k, v in kw.items() if k not in auth_keys})
        return build(self.kind, SqlScaler, meta, auth)

    def create_table(self, table: str, rows: list[tuple[str, float | None]]) -> None:
        """``table(state text, size numeric)`` holding ``rows``."""
        self.run(f"CREATE TABLE {table} (state varchar(20), size numeric(10, 2))")
        if rows:
            values = ", ".join(
                f"('{state}', {'NULL' if size is None else size})" for state, size in rows
            )
            self.run(f"INSERT INTO {table} (state, size) VALUES {values}")


@dataclass
class Postgres(Db):
    server: PostgresServer
    type_name = "postgresql"
    kind = postgresql.KIND
    target_param = "targetQueryValue"
    activation_param = "activationTargetQueryValue"
    source_param = "connection"

    def prepare(self) -> Postgres:
        for user, password in ((APP_USER, APP_PASSWORD), (OTHER_USER, OTHER_PASSWORD)):
            self.server.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.server.sql(f"CREATE DATABASE {DATABASE} OWNER {APP_USER}")
        self.server.sql(f"GRANT pg_read_all_data TO {OTHER_USER}")
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def source(self, user: str, password: str, port: int | None = None) -> str:
        where = f"127.0.0.1:{port or self.server.port}"
        return f"postgresql://{user}:{password}@{where}/{DATABASE}?sslmode=disable"

    def run(self, *statements: str) -> None:
        for statement in statements:
            self.server.sql(f"SET ROLE {APP_USER}; {statement}", db=DATABASE)

    def executed(self, sql: str) -> int:
        return self.server.executed(sql)

    def sleep(self, seconds: float) -> str:
        return f"SELECT 1 FROM pg_sleep({seconds})"


@dataclass
class MariaDb(Db):
    server: MariaDbServer
    type_name = "mysql"
    kind = mysql.KIND
    target_param = "queryValue"
    activation_param = "activationQueryValue"
    source_param = "connectionString"

    def prepare(self) -> MariaDb:
        self.server.sql(f"CREATE DATABASE {DATABASE}")
        for user, password in ((APP_USER, APP_PASSWORD), (OTHER_USER, OTHER_PASSWORD)):
            self.server.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        self.server.sql(f"GRANT ALL ON {DATABASE}.* TO '{APP_USER}'@'%'")
        self.server.sql(f"GRANT SELECT ON {DATABASE}.* TO '{OTHER_USER}'@'%'")
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def source(self, user: str, password: str, port: int | None = None) -> str:
        return f"{user}:{password}@tcp(127.0.0.1:{port or self.server.port})/{DATABASE}"

    def run(self, *statements: str) -> None:
        self.server.sql(f"USE {DATABASE}", *statements)

    def executed(self, sql: str) -> int:
        return self.server.executed(sql)

    def sleep(self, seconds: float) -> str:
        return f"SELECT SLEEP({seconds})"
