"""A lean HTTP/1.1 GET for polls: keep-alive connections on :class:`asyncio.Protocol`.

Every HTTP poll is one GET of a small answer. aiohttp spent about a third of a poll's CPU
building its request, parsing headers into multidicts and running two timers of its own (the
poll's clock already bounds it, :mod:`scalers.turns`); this client writes the request line
and headers as one buffer and reads back the status, the headers it needs (``Content-Length``,
``Transfer-Encoding``, ``Connection``, ``Content-Encoding``) and the body.

:class:`Pool` keeps the connections of one backend identity (:class:`ssl.SSLContext`), idle
ones per (scheme, host, port), at most ``limit`` open. A connection reused after sitting idle
may have been closed by the server meanwhile: a GET whose reused connection ends before any
byte of the answer is sent once more on a fresh one (a GET may be repeated).

Failures raise :class:`OSError` (connecting, the connection lost), :class:`ssl.SSLError`,
:class:`ProtocolError` (an answer that is not HTTP/1.x), :class:`BodyTooLarge`; the caller
maps them onto its own errors.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx

USER_AGENT = f"metrics-adapter (Python/{sys.version_info[0]}.{sys.version_info[1]})"
IDLE_SECONDS = 15.0
"""An idle connection older than this is closed rather than reused (aiohttp's keep-alive
timeout): servers close theirs after a while, and a reused one they closed costs a retry."""
ERROR_BODY_BYTES = 200
"""Bytes of a refusal's body read for its message; the rest is not waited for."""


class ProtocolError(Exception):
    """The answer is not an HTTP/1.x answer this client reads."""


class BodyTooLarge(Exception):
    """The answer's body is larger than asked for; the rest of it was not read."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL split once for sending: where to connect and what the request line says."""

    scheme: str
    host: str
    """To connect to: a name, or an IP address (an IPv6 one without brackets)."""
    port: int
    authority: str
    """The ``Host`` header: with brackets for IPv6, with the port unless the scheme's."""
    target: str
    """Path and query, quoted as httpx quotes them and sent as they are: a SigV4 signature
    covers them byte for byte."""
    basic: str | None = field(default=None, repr=False)
    """``Authorization`` from the URL's user and password, as browsers and Go send it."""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @classmethod
    def parse(cls, url: str) -> Target:
        """``url`` ready to send; ValueError when it cannot be."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(str(exc)) from exc
        scheme = parsed.scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"URL scheme must be http or https, not {scheme!r}")
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise ValueError("URL has no host")
        port = parsed.port or (443 if scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        authority = shown if parsed.port is None else f"{shown}:{port}"
        basic = None
        if parsed.userinfo:
            user, _, password = parsed.userinfo.decode("ascii").partition(":")
            pair = f"{unquote(user)}:{unquote(password)}".encode()
            basic = "Basic " + base64.b64encode(pair).decode("ascii")
        return cls(scheme, host, port, authority, parsed.raw_path.decode("ascii"), basic)


def request(target: Target, headers: dict[str, str]) -> bytes:
    """The GET of ``target`` with ``headers`` (``Host`` added, and ``Accept``,
    ``User-Agent``, the URL's credentials unless given); no compression asked for."""
    lines = [f"GET {target.target} HTTP/1.1", f"Host: {target.authority}"]
    given = set()
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r}: a line break or colon cannot be sent")
        lowered = name.lower()
        if lowered == "host":
            lines[1] = f"Host: {value}"
        else:
            lines.append(f"{name}: {value}")
        given.add(lowered)
    if "accept" not in given:
        lines.append("Accept: */*")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if target.basic is not None and "authorization" not in given:
        lines.append(f"Authorization: {target.basic}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode()


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    """The whole body of a 200; of any other status, at most :data:`ERROR_BODY_BYTES`."""


class _Stale(Exception):
    """A reused connection ended before any byte of the answer: send the GET again."""


_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE, _DONE = range(5)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._limit = 0
        self._buffer = bytearray()
        self._state = _DONE
        self._status = 0
        self._reusable = True
        self._encoding = b""
        self._remaining = 0
        """Body bytes still due (Content-Length), or the current chunk's."""
        self._body: list[bytes] = []
        self._size = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._pool.made(self)

    def data_received(self, data: bytes) -> None:
        if self._state == _DONE:  # nothing asked: the server has nothing to say
            self._reusable = False
            self.close()
            return
        self._buffer += data
        try:
            self._advance()
        except (ProtocolError, BodyTooLarge, ValueError) as exc:
            self._fail(exc if not isinstance(exc, ValueError) else ProtocolError(str(exc)))

    def eof_received(self) -> bool | None:
        if self._state == _UNTIL_CLOSE:
            self._finish(reusable=False)
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.lost(self)
        if self._state == _UNTIL_CLOSE:
            self._finish(reusable=False)
        elif self._waiter is not None and not self._waiter.done():
            if self.reused and self._state == _HEAD and not self._buffer:
                self._fail(_Stale())
            else:
                self._fail(exc or ConnectionResetError("the server closed the connection"))

    # The caller's side

    async def ask(self, request: bytes, limit: int) -> Answer:
        """Send ``request`` and read its answer; the whole body of a 200 up to ``limit``
        bytes (BodyTooLarge past it)."""
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise _Stale() if self.reused else ConnectionResetError("connection closed")
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._limit = limit
        self._state = _HEAD
        self._body, self._size, self._reusable = [], 0, True
        self.transport.write(request)
        return await waiter

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed and self._state == _DONE

    def close(self) -> None:
        self._reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    # Parsing

    def _advance(self) -> None:
        if self._state == _HEAD and not self._head():
            return
        if self._state == _LENGTH:
            self._take(min(self._remaining, len(self._buffer)))
            if self._remaining == 0:
                self._finish(reusable=not self._buffer)
        elif self._state == _CHUNKED:
            self._chunks()
        elif self._state == _UNTIL_CLOSE:
            self._take(len(self._buffer))

    def _head(self) -> bool:
        """Parse the status line and headers once all are in; True when they were."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 65536:
                raise ProtocolError("answer headers longer than 64 KiB")
            return False
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError(f"not an HTTP/1.x answer: {lines[0][:40]!r}")
        status = int(rest[:3])
        if 100 <= status < 200:  # informational (103 Early Hints): the answer follows
            return self._head() if self._buffer else False
        self._status = status
        length = chunked = None
        keep = version == b"HTTP/1.1"
        encoding = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                keep = keep and b"close" not in value.lower()
            elif name == b"content-encoding":
                encoding = value.strip().lower()
        self._encoding = encoding
        self._reusable = keep
        if status != 200:
            self._limit = ERROR_BODY_BYTES
        if status in (204, 304):
            self._finish(reusable=keep and not self._buffer)
            return False
        if chunked:
            self._state, self._remaining = _CHUNKED, -1
        elif length is not None:
            if length < 0:
                raise ProtocolError(f"Content-Length {length}")
            if status == 200 and length > self._limit:
                raise BodyTooLarge(length)
            self._state, self._remaining = _LENGTH, length
        else:
            self._state, self._reusable = _UNTIL_CLOSE, False
        return True

    def _take(self, count: int) -> None:
        """Move ``count`` bytes of the buffer into the body."""
        if count:
            self._body.append(bytes(self._buffer[:count]))
            del self._buffer[:count]
            self._size += count
            self._remaining -= count
            if self._size >= self._limit:
                if self._status != 200:  # enough of a refusal for its message
                    self._finish(reusable=False)
                elif self._size > self._limit:
                    raise BodyTooLarge(self._size)

    def _chunks(self) -> None:
        while self._state == _CHUNKED:
            if self._remaining > 0:  # inside a chunk's data
                self._take(min(self._remaining, len(self._buffer)))
                if self._remaining:
                    return
            if self._remaining == 0:  # the CRLF after a chunk's data
                if len(self._buffer) < 2:
                    return
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del self._buffer[:2]
                self._remaining = -1
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(self._buffer[:end]).partition(b";")[0].strip(), 16)
            if size == 0:  # the last chunk, then trailers (if any) up to an empty line
                stop = end + 4 if self._buffer[end + 2 : end + 4] == b"\r\n" else -1
                if stop < 0 and (found := self._buffer.find(b"\r\n\r\n", end + 2)) >= 0:
                    stop = found + 4
                if stop < 0:
                    return
                del self._buffer[:stop]
                self._finish(reusable=not self._buffer)
                return
            del self._buffer[: end + 2]
            self._remaining = size

    def _finish(self, *, reusable: bool) -> None:
        self._state = _DONE
        self._reusable = self._reusable and reusable
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        body = b"".join(self._body)
        self._body = []
        if self._status != 200:
            body = body[: self._limit]
        if self._encoding in (b"gzip", b"deflate", b"x-gzip") and self._status == 200:
            try:  # not asked for, but a server may send it anyway: read it as aiohttp did
                body = _decompressed(body, self._encoding, self._limit)
            except (zlib.error, BodyTooLarge) as exc:
                self._fail(exc if isinstance(exc, BodyTooLarge) else ProtocolError(str(exc)))
                return
        waiter.set_result(Answer(self._status, body))

    def _fail(self, exc: BaseException) -> None:
        self._state = _DONE
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


def _decompressed(body: bytes, encoding: bytes, limit: int) -> bytes:
    wbits = 47 if encoding != b"deflate" else (15 if body[:1] == b"\x78" else -15)
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise BodyTooLarge(len(out))
    return out


class Pool:
    """The connections of one TLS identity: idle ones kept per (scheme, host, port), at most
    ``limit`` open (an idle one of another host is closed to open a new one past it)."""

    def __init__(self, context: ssl.SSLContext, limit: int) -> None:
        self._context = context
        self._limit = limit
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    def __len__(self) -> int:
        """Connections open now (idle, in use, or closing)."""
        return len(self._open)

    async def get(self, target: Target, headers: dict[str, str], limit: int) -> Answer:
        """The answer to a GET of ``target``: see :meth:`_Connection.ask`."""
        head = request(target, headers)
        connection = self._reuse(target.key)
        if connection is not None:
            try:
                return await self._ask(connection, head, limit)
            except _Stale:
                pass  # closed by the server while idle: once more, on a fresh connection
        return await self._ask(await self._connect(target), head, limit)

    async def _ask(self, connection: _Connection, head: bytes, limit: int) -> Answer:
        try:
            answer = await connection.ask(head, limit)
        except BaseException:
            connection.close()  # cancelled or failed mid-answer: its state is unknown
            raise
        if connection.reusable:
            connection.idle_since = time.monotonic()
            connection.reused = True
            self._idle.setdefault(connection.key, []).append(connection)
        else:
            connection.close()
        return answer

    def _reuse(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        too_old = time.monotonic() - IDLE_SECONDS
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= too_old:
                return connection
            connection.close()
        return None

    async def _connect(self, target: Target) -> _Connection:
        if len(self._open) >= self._limit:
            self._close_one_idle()
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self, target.key),
                target.host,
                target.port,
                ssl=self._context if tls else None,
                server_hostname=target.host if tls else None,
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {target.authority}: {exc}") from exc
        return connection

    def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return

    def made(self, connection: _Connection) -> None:
        self._open.add(connection)

    def lost(self, connection: _Connection) -> None:
        self._open.discard(connection)

    async def aclose(self) -> None:
        """Close every connection now, and wait (a second at most) until each is closed: a
        TLS connection closing when its event loop ends leaks its socket."""
        self._idle.clear()
        for connection in list(self._open):
            if connection.transport is not None:
                connection.transport.abort()
        for _ in range(100):
            if not self._open:
                return
            await asyncio.sleep(0.01)
