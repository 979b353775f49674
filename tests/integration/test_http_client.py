"""The GET of every HTTP poll (:mod:`scalers.http1` through ``Clients.get_bytes``) against a
real loopback server that answers byte for byte what each test scripts: framing, keep-alive,
a reused connection the server closed, limits, refusals, timeouts, TLS and mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scalers import clients as clients_module
from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.http1 import Pool, Target
from tests.support.pki import CertificateAuthority, KeyPair
from tests.support.servers import free_port

OK = b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"value": 1}'
Script = Callable[["Peer", bytes], Awaitable[None]]


@dataclass
class Peer:
    """One accepted connection, for a script to answer on."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int
    """1 for the server's first connection."""
    requests: int = 0
    """Requests read on this connection, this one included."""

    async def send(self, *parts: bytes, pause: float = 0.0) -> None:
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)


@dataclass
class Server:
    """Answers each request with ``script(peer, request head)``; counts what reached it."""

    script: Script
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        peer = Peer(reader, writer, self.connections)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                while not writer.is_closing():
                    head = await reader.readuntil(b"\r\n\r\n")
                    peer.requests += 1
                    self.heads.append(head)
                    await self.script(peer, head)
        except asyncio.CancelledError:
            pass  # the test is over (serving() cancels a script still waiting): end quietly
        finally:
            writer.close()


async def answer_ok(peer: Peer, head: bytes) -> None:
    await peer.send(OK)


@contextlib.asynccontextmanager
async def serving(
    script: Script, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    server = Server(script)
    listener = await asyncio.start_server(server.serve, host, 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server.handlers:  # a script still sleeping in place of an answer
            task.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await listener.wait_closed()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients(timeout=2.0)
    try:
        yield made
    finally:
        await made.aclose()


async def get(clients: Clients, url: str, identity: HttpIdentity | None = None) -> bytes:
    return await clients.get_bytes(url, headers={}, identity=identity or HttpIdentity())


# Framing and the request sent.


async def test_the_request_is_a_plain_get_with_the_callers_headers(clients: Clients) -> None:
    async with serving(answer_ok) as server:
        url = f"http://127.0.0.1:{server.port}/api/v1/query?query=sum%28up%29&x=a%20b"
        body = await clients.get_bytes(url, headers={"X-Key": "k1"}, identity=HttpIdentity())
    assert body == b'{"value": 1}'
    lines = server.heads[0].decode().split("\r\n")
    assert lines[0] == "GET /api/v1/query?query=sum%28up%29&x=a%20b HTTP/1.1"
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["x-key"] == "k1"
    assert headers["accept"] == "*/*"
    assert "accept-encoding" not in headers  # no compression asked for


async def test_a_chunked_body_in_pieces_is_read_whole(clients: Clients) -> None:
    async def chunked(peer: Peer, head: bytes) -> None:
        await peer.send(
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{"va',
            b'l\r\n7\r\nue": 42\r',
            b"\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n",
            pause=0.02,
        )

    async with serving(chunked) as server:
        url = f"http://127.0.0.1:{server.port}/"
        assert await clients.get_json(url, headers={}, identity=HttpIdentity()) == {"value": 42}
        assert await get(clients, url) == b'{"value": 42}'  # framing kept: the same connection
    assert server.connections == 1


async def test_a_keep_alive_connection_is_reused(clients: Clients) -> None:
    async with serving(answer_ok) as server:
        for i in range(5):
            assert await get(clients, f"http://127.0.0.1:{server.port}/value/{i}")
    assert server.connections == 1
    assert len(server.heads) == 5


async def test_connection_close_is_honoured(clients: Clients) -> None:
    async def closing(peer: Peer, head: bytes) -> None:
        await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        peer.writer.close()

    async with serving(closing) as server:
        for _ in range(3):
            assert await get(clients, f"http://127.0.0.1:{server.port}/") == b"ok"
    assert server.connections == 3


async def test_an_http_1_0_answer_ends_with_the_connection(clients: Clients) -> None:
    async def old(peer: Peer, head: bytes) -> None:
        await peer.send(b"HTTP/1.0 200 OK\r\n\r\n", b'{"value"', b": 7}", pause=0.02)
        peer.writer.close()

    async with serving(old) as server:
        url = f"http://127.0.0.1:{server.port}/"
        assert await get(clients, url) == b'{"value": 7}'
        assert await get(clients, url) == b'{"value": 7}'
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_retried_once_fresh(
    clients: Clients,
) -> None:
    """The server reads the second request on the kept connection, then closes it without
    a byte of answer (an idle timeout racing the request): the GET goes again, fresh."""

    async def closes_kept(peer: Peer, head: bytes) -> None:
        if peer.number == 1 and peer.requests == 2:
            peer.writer.close()
            return
        await peer.send(OK)

    async with serving(closes_kept) as server:
        url = f"http://127.0.0.1:{server.port}/"
        assert await get(clients, url) == b'{"value": 1}'
        assert await get(clients, url) == b'{"value": 1}'
    assert server.connections == 2
    assert len(server.heads) == 3


async def test_a_fresh_connection_closed_before_answering_is_not_retried(
    clients: Clients,
) -> None:
    async def hangs_up(peer: Peer, head: bytes) -> None:
        peer.writer.close()

    async with serving(hangs_up) as server:
        with pytest.raises(SourceUnreachable, match=r"^GET http://127\.0\.0\.1:\d+/: "):
            await get(clients, f"http://127.0.0.1:{server.port}/")
    assert len(server.heads) == 1


async def test_an_answer_cut_short_is_an_error_not_a_retry(clients: Clients) -> None:
    async def cut(peer: Peer, head: bytes) -> None:
        if peer.requests == 2:
            await peer.send(b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"va')
            peer.writer.close()
            return
        await peer.send(OK)

    async with serving(cut) as server:
        url = f"http://127.0.0.1:{server.port}/"
        await get(clients, url)
        with pytest.raises(SourceUnreachable):
            await get(clients, url)
    assert len(server.heads) == 2


async def test_a_gzip_answer_sent_unasked_is_decoded(clients: Clients) -> None:
    packed = gzip.compress(b'{"value": 5}')

    async def zipped(peer: Peer, head: bytes) -> None:
        head_line = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        await peer.send(head_line % len(packed) + packed)

    async with serving(zipped) as server:
        assert await get(clients, f"http://127.0.0.1:{server.port}/") == b'{"value": 5}'


async def test_credentials_in_the_url_are_sent_as_basic_auth(clients: Clients) -> None:
    async with serving(answer_ok) as server:
        await get(clients, f"http://us%40er:p%3Ass@127.0.0.1:{server.port}/")
    assert b"\r\nAuthorization: Basic dXNAZXI6cDpzcw==\r\n" in server.heads[0]  # us@er:p:ss


async def test_an_ipv6_literal_is_connected_and_named_in_host(clients: Clients) -> None:
    async with serving(answer_ok, host="::1") as server:
        assert await get(clients, f"http://[::1]:{server.port}/v") == b'{"value": 1}'
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.heads[0]


# Refusals and limits.


async def test_a_refusal_names_the_status_and_the_start_of_its_body(clients: Clients) -> None:
    async def refuses(peer: Peer, head: bytes) -> None:
        await peer.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown")

    async with serving(refuses) as server:
        url = f"http://127.0.0.1:{server.port}/q"
        with pytest.raises(SourceResponseError) as info:
            await get(clients, url)
        assert str(info.value) == f"GET {url}: HTTP 503: 'down'"
        with pytest.raises(SourceResponseError):
            await get(clients, url)
    assert server.connections == 1  # a refusal read whole keeps its connection


async def test_a_long_refusal_is_not_read_to_its_end(clients: Clients) -> None:
    async def long_refusal(peer: Peer, head: bytes) -> None:
        await peer.send(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\n" + b"e" * 300)
        await asyncio.sleep(10)  # the rest never comes

    async with serving(long_refusal) as server:
        with pytest.raises(SourceResponseError, match=r"HTTP 500: 'e{200}'$"):
            await get(clients, f"http://127.0.0.1:{server.port}/")


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_past_the_limit_is_refused_without_reading_the_rest(
    clients: Clients, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr(clients_module, "MAX_BODY_BYTES", 1000)

    async def huge(peer: Peer, head: bytes) -> None:
        if chunked:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await peer.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
        else:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n")
        await asyncio.sleep(10)  # the rest never comes

    async with serving(huge) as server:
        with pytest.raises(SourceResponseError, match="answer larger than 1000 bytes"):
            await get(clients, f"http://127.0.0.1:{server.port}/")


async def test_no_answer_is_a_timeout_and_the_client_recovers() -> None:
    async def slow_first(peer: Peer, head: bytes) -> None:
        if peer.number == 1:
            await asyncio.sleep(10)
        await peer.send(OK)

    clients = Clients(timeout=0.3)
    try:
        async with serving(slow_first) as server:
            url = f"http://127.0.0.1:{server.port}/"
            with pytest.raises(SourceTimeout) as info:
                await get(clients, url)
            assert str(info.value) == f"GET {url}: no answer within 0.3s"
            assert await get(clients, url) == b'{"value": 1}'
    finally:
        await clients.aclose()


async def test_a_refused_connection_is_unreachable(clients: Clients) -> None:
    port = free_port()
    with pytest.raises(SourceUnreachable, match=f"cannot connect to 127.0.0.1:{port}"):
        await get(clients, f"http://127.0.0.1:{port}/")


async def test_a_garbled_answer_is_unreachable(clients: Clients) -> None:
    async def garbled(peer: Peer, head: bytes) -> None:
        await peer.send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async with serving(garbled) as server:
        with pytest.raises(SourceUnreachable, match=r"not an HTTP/1\.x answer"):
            await get(clients, f"http://127.0.0.1:{server.port}/")


async def test_open_connections_stay_within_the_pool_limit() -> None:
    pool = Pool(ssl.create_default_context(), 2)
    try:
        async with (
            serving(answer_ok) as a,
            serving(answer_ok) as b,
            serving(answer_ok) as c,
        ):
            for server in (a, b, c, a):
                target = Target.parse(f"http://127.0.0.1:{server.port}/")
                assert (await pool.get(target, {}, 100)).status == 200
                assert len(pool) <= 2
        assert a.connections == 2  # its idle one was closed to open c's
    finally:
        await pool.aclose()


# TLS.


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("http client test CA")


def server_tls(
    ca: CertificateAuthority, tmp_path: Path, *, hosts: list[str], clients_ca: bool = False
) -> ssl.SSLContext:
    pair = ca.issue(hosts[0], hosts=hosts, usage="server")
    cert, key = pair.write(tmp_path, "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if clients_ca:
        context.load_verify_locations(cadata=ca.pem.decode())
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def test_tls_is_verified_against_the_identitys_ca(
    clients: Clients, ca: CertificateAuthority, tmp_path: Path
) -> None:
    tls = server_tls(ca, tmp_path, hosts=["localhost", "127.0.0.1"])
    trusted = HttpIdentity(ca_pem=ca.pem.decode())
    async with serving(answer_ok, tls=tls) as server:
        for host in ("localhost", "127.0.0.1", "localhost"):  # SNI by name; an IP SAN
            url = f"https://{host}:{server.port}/"
            assert await get(clients, url, trusted) == b'{"value": 1}'
        with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            await get(clients, f"https://localhost:{server.port}/")  # the system's CAs
        unverified = HttpIdentity(verify=False)
        assert await get(clients, f"https://localhost:{server.port}/", unverified)
    assert server.connections == 3  # one a host and identity, kept alive (a refused
    # handshake never reaches the server's handler)


async def test_a_certificate_for_another_host_is_refused(
    clients: Clients, ca: CertificateAuthority, tmp_path: Path
) -> None:
    tls = server_tls(ca, tmp_path, hosts=["elsewhere.example"])
    async with serving(answer_ok, tls=tls) as server:
        with pytest.raises(SourceUnreachable, match=r"TLS: .*(mismatch|doesn't match)"):
            await get(
                clients, f"https://127.0.0.1:{server.port}/", HttpIdentity(ca_pem=ca.pem.decode())
            )


async def test_mutual_tls_presents_the_identitys_pair(
    clients: Clients, ca: CertificateAuthority, tmp_path: Path
) -> None:
    tls = server_tls(ca, tmp_path, hosts=["127.0.0.1"], clients_ca=True)
    client: KeyPair = ca.issue("scaler")
    paired = HttpIdentity(
        ca_pem=ca.pem.decode(), cert_pem=client.cert_pem.decode(), key_pem=client.key_pem.decode()
    )
    async with serving(answer_ok, tls=tls) as server:
        url = f"https://127.0.0.1:{server.port}/"
        assert await get(clients, url, paired) == b'{"value": 1}'
        with pytest.raises(SourceUnreachable, match=r"TLS|closed|reset"):
            await get(clients, url, HttpIdentity(ca_pem=ca.pem.decode()))
