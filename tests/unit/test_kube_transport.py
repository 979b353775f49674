"""The Kubernetes transport: the in-cluster ServiceAccount read as client-go reads it, and
requests to a real HTTPS server on loopback (aiohttp's), checked for what they send and how
an error status comes back."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from metrics_adapter.kube import transport
from metrics_adapter.kube.transport import ApiError, Connection, Transport, in_cluster
from scalers.errors import ConfigError
from tests.support.pki import CertificateAuthority
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("kube-ca")


def account(tmp_path: Path, ca: CertificateAuthority, token: str = "first") -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_bytes(ca.pem)
    return directory


ENV = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


async def test_in_cluster_reads_the_service_account_and_rereads_its_token(
    tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = account(tmp_path, ca)
    connection = in_cluster(ENV, directory)
    assert connection.server == "https://127.0.0.1:6443"
    assert await connection.token() == "Bearer first"
    (directory / "token").write_text("second")
    assert await connection.token() == "Bearer first"  # read again once a minute, not sooner
    monkeypatch.setattr(transport, "TOKEN_REREAD_SECONDS", 0.0)  # a minute has passed
    assert await connection.token() == "Bearer second"
    (directory / "token").unlink()  # kubelet replacing it: the last one read is kept
    assert await connection.token() == "Bearer second"


def test_in_cluster_brackets_an_ipv6_host(tmp_path: Path, ca: CertificateAuthority) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(env, account(tmp_path, ca)).server == "https://[fd00::1]:443"


@pytest.mark.parametrize(
    ("env", "remove", "says"),
    [
        ({}, None, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"),
        ({**ENV, "KUBERNETES_SERVICE_PORT": ""}, None, "are not set"),
        (ENV, "token", "serviceaccount/token"),
        (ENV, "ca.crt", "serviceaccount/ca.crt"),
    ],
)
def test_in_cluster_outside_a_pod_says_what_is_missing(
    tmp_path: Path, ca: CertificateAuthority, env: dict[str, str], remove: str | None, says: str
) -> None:
    directory = account(tmp_path, ca)
    if remove:
        (directory / remove).unlink()
    with pytest.raises(ConfigError, match="in-cluster configuration") as raised:
        in_cluster(env, directory)
    assert says in str(raised.value) and "pass --kubeconfig" in str(raised.value)


@pytest.fixture
async def apiserver(
    tmp_path: Path, ca: CertificateAuthority
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS server on 127.0.0.1 that records each request and answers by path."""
    seen: list[dict[str, Any]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )
        if request.path.endswith("/busy"):
            status = {"kind": "Status", "code": 429, "reason": "TooManyRequests"}
            return web.json_response(status, status=429, headers={"Retry-After": "2"})
        if request.path.endswith("/empty"):
            return web.Response(status=200)
        return web.json_response({"kind": "Thing"}, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = ca.issue("apiserver", hosts=["127.0.0.1"], usage="server").write(tmp_path, "srv")
    serving.load_cert_chain(cert, key)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=serving).start()
    try:
        yield f"https://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_requests_carry_the_token_json_and_query_and_errors_keep_their_status(
    apiserver: tuple[str, list[dict[str, Any]]], ca: CertificateAuthority
) -> None:
    server, seen = apiserver
    trusted = ssl.create_default_context(cadata=ca.pem.decode())

    async def token() -> str:
        return "Bearer sekret"

    api = Transport(Connection(server, trusted, token))
    try:
        answer, status, _ = await api.call(
            "POST",
            "/apis/x/v1/namespaces/a/things",
            query=[("labelSelector", "app=w,tier!=db"), ("limit", "500")],
            body={"spec": {"n": 1}},
            content_type="application/merge-patch+json",
            seconds=5,
        )
        assert (answer, status) == ({"kind": "Thing"}, 201)
        [sent] = seen
        assert sent["method"] == "POST" and sent["body"] == {"spec": {"n": 1}}
        assert (
            sent["path"]
            == "/apis/x/v1/namespaces/a/things?labelSelector=app%3Dw%2Ctier%21%3Ddb&limit=500"
        )
        assert sent["headers"]["Authorization"] == "Bearer sekret"
        assert sent["headers"]["Content-Type"] == "application/merge-patch+json"
        assert (await api.call("GET", "/empty", seconds=5))[:2] == (None, 200)
        with pytest.raises(ApiError) as raised:
            await api.call("PATCH", "/busy", body={}, seconds=5)
        assert raised.value.status == 429 and raised.value.headers["Retry-After"] == "2"
        assert json.loads(raised.value.body)["reason"] == "TooManyRequests"
    finally:
        await api.close()


async def test_a_server_it_does_not_trust_is_refused(
    apiserver: tuple[str, list[dict[str, Any]]],
) -> None:
    server, seen = apiserver
    other = ssl.create_default_context(cadata=CertificateAuthority("other").pem.decode())

    async def token() -> None:
        return None

    api = Transport(Connection(server, other, token))
    try:
        with pytest.raises(Exception, match="certificate verify failed"):
            await api.call("GET", "/x", seconds=5)
        assert seen == []
    finally:
        await api.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP CONNECT proxy on 127.0.0.1 that records each tunnel's target."""
    targets: list[str] = []

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split()[1].decode()
        targets.append(target)
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        both = (pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        await asyncio.gather(*both, return_exceptions=True)

    server = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", targets
    finally:
        server.close()


@pytest.mark.parametrize("bypassed", [False, True])
async def test_https_proxy_and_no_proxy_are_honoured(
    apiserver: tuple[str, list[dict[str, Any]]],
    proxy: tuple[str, list[str]],
    ca: CertificateAuthority,
    monkeypatch: pytest.MonkeyPatch,
    bypassed: bool,
) -> None:
    server, seen = apiserver
    address, targets = proxy
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", address)
    if bypassed:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    trusted = ssl.create_default_context(cadata=ca.pem.decode())

    async def token() -> None:
        return None

    api = Transport(Connection(server, trusted, token))
    try:
        for _ in range(2):
            answer, status, _ = await api.call("GET", "/apis/x/v1/things", seconds=5)
            assert (answer, status) == ({"kind": "Thing"}, 200)
    finally:
        await api.close()
    assert len(seen) == 2
    assert targets == ([] if bypassed else [server.removeprefix("https://")])
