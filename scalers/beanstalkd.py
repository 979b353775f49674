"""``beanstalkd``: the jobs waiting in a beanstalkd tube, as KEDA's ``BeanstalkdScaler``.

The value is ``current-jobs-ready + current-jobs-reserved`` of the tube's ``stats-tube``,
plus ``current-jobs-delayed`` with ``includeDelayed``; buried jobs never count. A tube the
server does not know is 0, as in KEDA: beanstalkd forgets a tube once no job is in it and no
client uses or watches it, so "not found" is how an idle tube looks, not a failure.

We speak beanstalkd's text protocol ourselves (one command, ``stats-tube``, needs no
library): one connection per server, shared by every trigger on it, one command at a time.
Any failure on a connection (refused, reset, a timeout halfway through an answer, an answer
we cannot read) closes it, and the next poll dials again; a failure is an error, never 0.

Where we differ from KEDA: its ``timeout`` (default ``30``, i.e. 30 ms: a bare number is
milliseconds in KEDA's typed config) bounds only the dial it makes when the scaler is
created, and its stats call has none. Ours is one connection for many triggers, so the
adapter's own ``--scaler-timeout`` bounds the dial and every call; ``timeout`` is parsed
and checked as KEDA does, then not used. A ``tube`` that is not a beanstalkd name fails
the trigger when it is polled, before anything is sent (beanstalkd would say BAD_FORMAT;
a name with a line break would be a second command).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote_plus

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.params import TriggerMetadata, param
from scalers.redis import split_address

NAME = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]{0,199}")
"""beanstalkd's tube names: up to 200 bytes of these characters, not starting with ``-``."""
MAX_STATS_BYTES = 64 * 1024
"""A ``stats-tube`` answer is about 400 bytes; anything near this is not beanstalkd."""
COUNTED = ("current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed")


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    server: str = param("server", doc="host:port")
    tube: str = param("tube")
    value: float = param("value", gt=0, doc="jobs per replica")
    activation_value: float = param("activationValue", default="0")
    include_delayed: bool = param("includeDelayed", default="false")
    timeout: timedelta = param(  # noqa: RUF009 (a frozen value)
        "timeout",
        default="30",
        doc="KEDA's dial timeout (30 = 30 ms); the adapter's --scaler-timeout bounds ours",
    )

    def check(self) -> Iterator[tuple[str, str]]:
        try:
            split_address(self.server)
        except ValueError as exc:
            yield "server", str(exc)


@dataclass(frozen=True, slots=True)
class BeanstalkdServer:
    """One server: every trigger on it shares one connection."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"beanstalkd {host}:{self.port}"


class Connection:
    """One TCP connection, one command at a time: answers come back in order, so a command
    abandoned halfway (a timeout, a cancel) would leave its answer for the next one to read.
    Anything that interrupts a command therefore breaks the connection for good."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._turn = asyncio.Lock()
        self.broken = False

    @classmethod
    async def open(cls, server: BeanstalkdServer) -> Connection:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def close(self) -> None:
        self.broken = True
        # Nothing of ours is worth flushing, and a frozen server would hold a close open.
        self._writer.transport.abort()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def stats_tube(self, tube: str) -> dict[str, str] | None:
        """The tube's statistics, or ``None`` if the server does not know the tube."""
        async with self._turn:
            if self.broken:  # broken while this command waited for its turn
                raise _Stale
            try:
                return await self._stats_tube(tube)
            except BaseException:
                self.broken = True
                self._writer.transport.abort()
                raise

    async def _stats_tube(self, tube: str) -> dict[str, str] | None:
        self._writer.write(f"stats-tube {tube}\r\n".encode("ascii"))
        await self._writer.drain()
        line = (await self._reader.readuntil(b"\r\n"))[:-2].decode("ascii", "replace")
        if line == "NOT_FOUND":
            return None
        status, _, size = line.partition(" ")
        if status != "OK" or not size.isdigit() or int(size) > MAX_STATS_BYTES:
            raise _Unexpected(f"answered {quote(line)} to stats-tube")
        body = await self._reader.readexactly(int(size) + 2)
        if not body.endswith(b"\r\n"):
            raise _Unexpected("sent a stats-tube answer without its closing CRLF")
        return parse_stats(body[:-2].decode("utf-8", "replace"))


class _Stale(Exception):
    """The connection broke while a command waited for its turn: it was never sent."""


class _Unexpected(Exception):
    """The server said something beanstalkd does not say here: the stream is unusable."""


def parse_stats(text: str) -> dict[str, str]:
    """beanstalkd's YAML dictionary (``---`` then one ``key: value`` a line), strictly: any
    other line makes the whole answer unreadable rather than half read."""
    lines = text.split("\n")
    if lines[0] != "---":
        raise _Unexpected(f"sent stats that do not start with '---': {quote(text[:40])}")
    stats: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep or not key:
            raise _Unexpected(f"sent a stats line that is not 'key: value': {quote(line)}")
        stats[key] = value
    return stats


@dataclass(frozen=True, slots=True)
class TubeStats:
    """The counts one ``stats-tube`` answer gives every trigger on the tube."""

    ready: int
    reserved: int
    delayed: int


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """One ``stats-tube`` of one tube on one server, shared by every trigger on it."""

    server: BeanstalkdServer
    tube: str

    async def run(self, clients: Clients) -> TubeStats:
        if not NAME.fullmatch(self.tube):
            raise SourceResponseError(
                f"tube {quote(self.tube)} is not a beanstalkd tube name: up to 200 of "
                "A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with -"
            )
        try:
            stats = await self._ask(clients, await self._connection(clients))
        except _Stale:  # another query's failure closed it first: this one was never sent
            stats = await self._ask(clients, await self._connection(clients))
        if stats is None:
            return TubeStats(0, 0, 0)
        return TubeStats(*(self._count(stats, name) for name in COUNTED))

    async def _ask(self, clients: Clients, connection: Connection) -> dict[str, str] | None:
        try:
            async with asyncio.timeout(clients.timeout):
                return await connection.stats_tube(self.tube)
        except TimeoutError as exc:
            raise SourceTimeout(f"{self._where()}: no answer within {clients.timeout:g}s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise SourceUnreachable(f"{self._where()}: {_reason(exc)}") from exc
        except _Unexpected as exc:
            raise SourceResponseError(f"{self._where()}: the server {exc}") from exc

    def _count(self, stats: dict[str, str], name: str) -> int:
        value = stats.get(name)
        if value is None or not value.isdigit():
            raise SourceResponseError(
                f"{self._where()}: stats-tube has no whole number {name}: {quote(value)}"
            )
        return int(value)

    async def _connection(self, clients: Clients) -> Connection:
        async def dial() -> Connection:
            try:
                async with asyncio.timeout(clients.timeout):
                    return await Connection.open(self.server)
            except TimeoutError as exc:
                raise SourceTimeout(
                    f"{self.server}: no connection within {clients.timeout:g}s"
                ) from exc
            except OSError as exc:
                raise SourceUnreachable(f"{self.server}: {_reason(exc)}") from exc

        while True:
            connection = await clients.shared(self.server, dial, Connection.close)
            if not connection.broken:
                return connection
            # No await between finding it and dropping it: another caller cannot have
            # replaced it meanwhile, so this discards the broken one and no other.
            await clients.discard(self.server)

    def _where(self) -> str:
        return f"{self.server} tube {quote(self.tube)}"

    def describe(self) -> str:
        return f"stats-tube {quote(self.tube)} at {self.server}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, kw_only=True)
class BeanstalkdScaler(Scaler[TubeStats]):
    meta: Metadata
    query: StatsQuery

    def measure(self, answer: TubeStats) -> float:
        jobs = answer.ready + answer.reserved
        if self.meta.include_delayed:
            jobs += answer.delayed
        return float(jobs)


def build(meta: Metadata) -> BeanstalkdScaler:
    host, port = split_address(meta.server)
    return BeanstalkdScaler(
        meta=meta,
        query=StatsQuery(BeanstalkdServer(host, port), meta.tube),
        # Go's url.QueryEscape, then NormalizeString (its % becomes -)
        metric_name=normalize(f"beanstalkd-{quote_plus(meta.tube, safe='')}"),
        target=meta.value,
        activation_target=meta.activation_value,
        value_label="jobs",
    )


KIND = ScalerKind(
    type_name="beanstalkd",
    keda_name="BeanstalkdScaler",
    metadata=Metadata,
    build=build,
    summary="Jobs ready and reserved (and delayed, if asked) in a beanstalkd tube.",
    example=Example(
        {"server": "beanstalkd.default.svc:11300", "tube": "jobs", "value": "5"},
        source="server",
    ),
)
