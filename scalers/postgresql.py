"""``postgresql``: the number a SQL query returns, read from PostgreSQL (asyncpg).

As KEDA's ``postgreSQLScaler``: the connection comes from ``connection`` (a libpq
``key=value`` string or a ``postgres://`` URL, from the authentication or the environment),
else from ``host``, ``port``, ``userName``, ``dbName``, ``sslmode`` and ``password``; the
value is the first column of the first row, compared with ``targetQueryValue`` and
``activationTargetQueryValue``; the metric is named ``postgresql``.

Where we differ, on purpose:

- ``podIdentity`` ``azure-workload`` (an Entra ID token as the password) is refused with
  a message, not supported.
- Problems KEDA meets only when it first connects (a ``connection`` that does not parse,
  ``port`` not a number, an unknown ``sslmode``) are configuration errors here, named at
  once; ``targetQueryValue`` must be greater than 0 (KEDA refuses only 0; the HPA refuses
  any target below).
- ``connect_timeout`` in a connection string is ignored: ``--scaler-timeout`` bounds the
  connect, and the server's ``statement_timeout`` is set to it, so a slow query is an error
  of the trigger, cancelled on the server too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import asyncpg  # type: ignore[import-untyped]
import asyncpg.exceptions  # type: ignore[import-untyped]

from scalers.base import Example, Scaler, ScalerKind
from scalers.errors import Problems, SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.params import Source, TriggerInputs, TriggerMetadata, param
from scalers.redis import join_host_port
from scalers.sql import APPLICATION_NAME, POOL_SIZE, Database, SqlQuery, SqlScaler

if TYPE_CHECKING:
    from scalers.clients import Clients

_AUTH_ENV = (Source.AUTH, Source.ENV)
_AUTH_TRIGGER = (Source.AUTH, Source.TRIGGER)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's (and pgx's) ``sslmode`` values, which asyncpg implements with the same meaning."""
_SECRET_KEYS = frozenset({"password", "sslpassword"})
_IGNORED_KEYS = frozenset({"connect_timeout"})


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    """KEDA's ``postgreSQLMetadata``: names and source orders as its tags say."""

    target_query_value: float | None = param(
        "targetQueryValue",
        gt=0,
        target=True,
        doc="optional when it feeds a scalingModifiers formula",
    )
    activation_target_query_value: float = param("activationTargetQueryValue", default="0")
    connection: str | None = param(
        "connection",
        order=_AUTH_ENV,
        optional=True,
        secret=True,
        doc="libpq key=value string or postgres:// URL; else host, port, ...",
    )
    query: str = param("query", doc="SQL returning one number")
    host: str | None = param("host", order=_AUTH_TRIGGER, optional=True)
    port: str | None = param("port", order=_AUTH_TRIGGER, optional=True)
    user_name: str | None = param("userName", order=_AUTH_TRIGGER, optional=True)
    db_name: str | None = param("dbName", order=_AUTH_TRIGGER, optional=True)
    sslmode: str | None = param("sslmode", order=_AUTH_TRIGGER, optional=True, enum=SSL_MODES)
    password: str | None = param("password", order=_AUTH_ENV, optional=True, secret=True)

    def check(self) -> Iterator[tuple[str, str]]:
        if self.connection:
            try:
                settings(self)
            except ValueError as exc:
                yield "connection", str(exc)
            return
        for name, value in (
            ("host", self.host),
            ("port", self.port),
            ("userName", self.user_name),
            ("dbName", self.db_name),
            ("sslmode", self.sslmode),
        ):
            if not value:
                yield name, "is required when no connection is given"
        if self.port and not _valid_port(self.port):
            yield "port", f"{quote(self.port)} is not a port number (1 to 65535)"


def _valid_port(text: str) -> bool:
    return all(p.isdigit() and 0 < int(p) < 65536 for p in text.split(","))


_CONNINFO_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")


def parse_conninfo(text: str) -> dict[str, str]:
    """libpq's ``key=value`` connection string: values in single quotes when they hold
    spaces, ``\\`` escaping the next character. The message never shows a value."""
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _CONNINFO_PAIR.match(text, pos)
        if match is None:
            raise ValueError(f"is not a connection string: expected key=value at offset {pos}")
        key, pos = match.group(1), match.end()
        value: list[str] = []
        quoted = pos < len(text) and text[pos] == "'"
        pos += quoted
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                value.append(text[pos + 1])
                pos += 2
                continue
            if (quoted and char == "'") or (not quoted and char.isspace()):
                pos += 1
                break
            value.append(char)
            pos += 1
        else:
            if quoted:
                raise ValueError(f"is not a connection string: the value of {key} is not closed")
        pairs[key] = "".join(value)
    return pairs


def parse_url(text: str) -> dict[str, str]:
    """A ``postgres://`` URL as libpq reads it, into the same keys as :func:`parse_conninfo`;
    query parameters win over the URL's parts."""
    parts = urlsplit(text)
    pairs: dict[str, str] = {}
    login, _, hosts = parts.netloc.rpartition("@")
    if login:
        user, has_password, password = login.partition(":")
        pairs["user"] = unquote(user)
        if has_password:
            pairs["password"] = unquote(password)
    names, ports = [], []
    for item in filter(None, hosts.split(",")):
        if item.startswith("["):  # [v6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        names.append(unquote(host))
        ports.append(port)
    if any(names):
        pairs["host"] = ",".join(names)
    if any(ports):
        pairs["port"] = ",".join(ports)
    if parts.path.strip("/"):
        pairs["dbname"] = unquote(parts.path.lstrip("/"))
    pairs.update(parse_qsl(parts.query, keep_blank_values=True))
    return pairs


def settings(meta: Metadata) -> dict[str, str]:
    """The connection's libpq settings, checked: from ``connection`` when given, else built
    from the separate parameters as KEDA builds its string."""
    if meta.connection:
        text = meta.connection.strip()
        if re.match(r"postgres(?:ql)?://", text):
            pairs = parse_url(text)
        elif "://" in text:
            raise ValueError("is a URL whose scheme is not postgres:// or postgresql://")
        else:
            pairs = parse_conninfo(text)
    else:
        pairs = {
            "host": meta.host or "",
            "port": meta.port or "",
            "user": meta.user_name or "",
            "dbname": meta.db_name or "",
            "sslmode": meta.sslmode or "",
        }
        if meta.password:
            pairs["password"] = meta.password
    if pairs.get("port") and not _valid_port(pairs["port"]):
        raise ValueError(f"has port {quote(pairs['port'])}, not a port number (1 to 65535)")
    if pairs.get("sslmode", "prefer") not in SSL_MODES:
        raise ValueError(
            f"has sslmode {quote(pairs['sslmode'])}; expected one of {', '.join(SSL_MODES)}"
        )
    return {k: v for k, v in pairs.items() if k not in _IGNORED_KEYS}


@dataclass(frozen=True, slots=True)
class PostgresDatabase(Database):
    """One database and the identity that reads it: the key of one shared asyncpg pool."""

    settings: tuple[tuple[str, str], ...] = field(repr=False)
    """libpq settings, sorted: equal connections written differently share a pool."""

    @classmethod
    def of(cls, pairs: Mapping[str, str]) -> PostgresDatabase:
        return cls(tuple(sorted(pairs.items())))

    @property
    def dsn(self) -> str:
        """Every setting as a query parameter, which asyncpg reads as libpq does."""
        return "postgresql://?" + urlencode(self.settings)

    def __str__(self) -> str:
        found = dict(self.settings)
        user = f"{found['user']}@" if found.get("user") else ""
        hosts = found.get("host", "").split(",")
        ports = found.get("port", "").split(",")
        ports += [ports[-1]] * (len(hosts) - len(ports))  # libpq: one port serves every host
        where = ",".join(
            f"{join_host_port(h, p) if p else h}" for h, p in zip(hosts, ports, strict=False)
        )
        sslmode = f"?sslmode={found['sslmode']}" if "sslmode" in found else ""
        return f"postgresql://{user}{where}/{found.get('dbname', '')}{sslmode}"

    def __repr__(self) -> str:
        return f"PostgresDatabase({str(self)!r})"

    async def first_row(self, clients: Clients, sql: str) -> tuple[object, ...] | None:
        pool = await clients.shared(self, lambda: _open(self, clients.timeout), _close)
        try:
            async with pool.acquire(timeout=clients.timeout) as conn:
                record = await conn.fetchrow(sql, timeout=clients.timeout)
        except (TimeoutError, asyncpg.exceptions.QueryCanceledError) as exc:
            raise SourceTimeout(
                f"{self}: no answer within {clients.timeout:g}s ({_reason(exc)})"
            ) from exc
        except asyncpg.exceptions.InvalidAuthorizationSpecificationError as exc:
            raise SourceResponseError(f"{self}: authentication failed: {_reason(exc)}") from exc
        except asyncpg.exceptions.PostgresError as exc:
            state = getattr(exc, "sqlstate", "") or ""
            if state.startswith(("08", "57P")):  # connection lost, server shutting down
                raise SourceUnreachable(f"{self}: {_reason(exc)}") from exc
            raise SourceResponseError(f"{self}: {_reason(exc)}") from exc
        except OSError as exc:  # refused, reset, DNS, TLS (ssl.SSLError is an OSError)
            raise SourceUnreachable(f"{self}: {_reason(exc)}") from exc
        except asyncpg.exceptions.InterfaceError as exc:
            raise SourceResponseError(f"{self}: {_reason(exc)}") from exc
        return None if record is None else tuple(record.values())


def _reason(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    text = str(exc) or type(exc).__name__
    return f"{text} (SQLSTATE {state})" if state else text


async def _open(database: PostgresDatabase, within: float) -> Any:
    """A pool that connects on first use: the opening never fails, each query's does."""
    return await asyncpg.create_pool(
        dsn=database.dsn,
        min_size=0,
        max_size=POOL_SIZE,
        timeout=within,
        command_timeout=within,
        server_settings={
            "application_name": APPLICATION_NAME,
            "statement_timeout": str(max(1, round(within * 1000))),
        },
    )


async def _close(pool: Any) -> None:
    try:
        await asyncio.wait_for(pool.close(), 1.0)
    except (TimeoutError, OSError, asyncpg.exceptions.PostgresError):
        pool.terminate()


def build(meta: Metadata) -> Scaler[Any]:
    try:
        pairs = settings(meta)
    except ValueError:  # check() has refused it already; build stays total
        pairs = {}
    return SqlScaler(
        query=SqlQuery(PostgresDatabase.of(pairs), meta.query),
        metric_name="postgresql",
        target=meta.target_query_value or 0.0,
        activation_target=meta.activation_target_query_value,
        value_label="query value",
    )


@dataclass(frozen=True, slots=True)
class PostgresKind(ScalerKind[Metadata]):
    """Refuses the ``azure-workload`` podIdentity, which KEDA's scaler reads beside the
    authParams; every other problem of the trigger is reported with it."""

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        pod = inputs.pod_identity
        refused = pod is not None and pod.provider == "azure-workload"
        if refused:
            problems.add(
                f"{inputs.auth_path}.podIdentity",
                "provider azure-workload (an Entra ID token as the PostgreSQL password) is "
                "not supported by metrics-adapter: give a password or a connection instead",
            )
        built = ScalerKind.create(self, inputs, problems)
        return None if refused else built


KIND = PostgresKind(
    type_name="postgresql",
    keda_name="postgreSQLScaler",
    metadata=Metadata,
    build=build,
    summary="The number a PostgreSQL query returns (first column of the first row).",
    example=Example(
        {"query": "SELECT count(*) FROM jobs WHERE state = 'queued'", "targetQueryValue": "5"},
        {"connection": "postgresql://keda:pg-password@postgres.default.svc:5432/jobs"},
        source="connection",
    ),
)
