"""What the SQL triggers (``postgresql``, ``mysql``) share: the query, its answer as a number,
and the scaler.

A query is (database, SQL text): every trigger that asks the same SQL of the same database
(same DSN and identity) shares one request per interval, over one small connection pool per
database (:data:`POOL_SIZE`). KEDA reads the answer with Go's ``database/sql``
``QueryRow(query).Scan(&float64)``: the first row's only column. :func:`scan_float` gives
the same number, or the same refusal, for what the Python drivers hand back.
"""

from __future__ import annotations

import decimal
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalers.base import Scaler
from scalers.errors import SourceResponseError, quote

if TYPE_CHECKING:
    from scalers.clients import Clients

POOL_SIZE = 4
"""Connections per database at most. A query is a cheap scalar read asked once per interval
whatever the number of triggers, so only distinct SQL texts on one database run at once;
a database's connection budget (``max_connections``, 100 by default in PostgreSQL, 151 in
MySQL) is shared with the application and multiplied by the adapter's replicas, so the pool
stays small and a burst of distinct queries waits its turn within the timeout."""

APPLICATION_NAME = "metrics-adapter"
"""How our sessions show in ``pg_stat_activity`` and the MySQL process list."""


class Database(ABC):
    """One database as one identity sees it: the key of its shared connection pool.

    Subclasses are frozen dataclasses whose password fields have ``repr=False``; ``str()``
    is the redacted DSN that every message shows.
    """

    @abstractmethod
    async def first_row(self, clients: Clients, sql: str) -> tuple[object, ...] | None:
        """The first row ``sql`` returns (``None`` for no row), driver errors mapped onto
        the ScalerError tree."""


@dataclass(frozen=True, slots=True)
class SqlQuery:
    """One SQL text on one database: the request triggers share."""

    database: Database
    sql: str

    async def run(self, clients: Clients) -> float:
        row = await self.database.first_row(clients, self.sql)
        where = self.describe()
        if row is None:
            raise SourceResponseError(f"{where}: the query returned no rows; expected one number")
        if len(row) != 1:
            raise SourceResponseError(
                f"{where}: the query returned {len(row)} columns; expected one number"
            )
        return scan_float(row[0], where)

    def describe(self) -> str:
        return f"SQL {quote(self.sql)} on {self.database}"


@dataclass(frozen=True, kw_only=True)
class SqlScaler(Scaler[float]):
    """The value is the query's number, as is (KEDA reports it in milli-units)."""

    query: SqlQuery

    def measure(self, answer: float) -> float:
        return answer


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)


def go_parse_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)``, which ``Scan`` applies to text: ``None`` where
    Go refuses (spaces, ``1_000``, a value beyond float64). ``NaN`` and ``Inf`` are numbers
    to Go; a NaN is never active, as in KEDA."""
    if _SPECIAL.fullmatch(text):
        return float(text.lower().replace("infinity", "inf"))
    if _DECIMAL.fullmatch(text):
        number = float(text)
    elif _HEX.fullmatch(text):
        try:
            number = float.fromhex(text)
        except OverflowError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def scan_float(value: object, where: str) -> float:
    """The column ``value`` as KEDA's ``Scan`` into a float64 reads it: numbers as they are,
    text (and decimals, which Go's drivers hand over as text) through ``ParseFloat``; NULL,
    booleans, dates and anything else refused, an error of the trigger and never a zero."""
    if value is None:
        raise SourceResponseError(f"{where}: the query returned NULL; expected a number")
    if isinstance(value, bool):  # Go's Scan does not turn a boolean into a float
        raise SourceResponseError(f"{where}: the query returned a boolean; expected a number")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str | decimal.Decimal):
        number = go_parse_float(str(value))
        if number is None:
            raise SourceResponseError(
                f"{where}: the query returned {quote(str(value))}, which is not a number"
            )
        return number
    raise SourceResponseError(
        f"{where}: the query returned a {type(value).__name__} ({quote(str(value))}); "
        "expected a number"
    )
