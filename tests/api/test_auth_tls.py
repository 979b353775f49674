"""Authentication through a real TLS socket: the verified client chain reaches the gate, the
front proxy alone may assert identity headers, certificates and CAs rotate without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from metrics_adapter.api.app import Health
from metrics_adapter.api.auth.gate import Gate, build_gate
from metrics_adapter.api.certificate import serving_tls
from metrics_adapter.api.tls import ServingTLS
from metrics_adapter.config.settings import Settings
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.server import Adapter, uvicorn_servers
from tests.support.pki import CertificateAuthority, KeyPair, client_context
from tests.support.servers import running
from tests.support.triggers import new_poller

METRIC = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s0-cron"
SELECTOR = {"labelSelector": "scaledobject.keda.sh/name=worker"}
HPA = {
    "X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "X-Remote-Group": "system:serviceaccounts",
}


@dataclass
class Secured:
    url: str
    state: Path
    serving_ca: CertificateAuthority
    front_proxy: CertificateAuthority
    clients: CertificateAuthority
    tls: ServingTLS
    gate: Gate

    def client(self, pair: KeyPair | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, verify=client_context(self.serving_ca.pem, pair), timeout=5
        )

    async def status(self, pair: KeyPair | None, headers: dict[str, str] | None = None) -> int:
        async with self.client(pair) as client:
            response = await client.get(METRIC, params=SELECTOR, headers=headers)
            return response.status_code


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    serving_ca = CertificateAuthority("serving-ca")
    front_proxy = CertificateAuthority("front-proxy-ca")
    clients = CertificateAuthority("client-ca")
    cert, key = serving_ca.issue("adapter", hosts=["127.0.0.1"], usage="server").write(
        tmp_path, "serving"
    )
    (tmp_path / "front-proxy-ca.crt").write_bytes(front_proxy.pem)
    (tmp_path / "client-ca.crt").write_bytes(clients.pem)
    settings = Settings(
        scaledobjects=tmp_path,
        tls_cert_file=cert,
        tls_private_key_file=key,
        cert_dir=tmp_path / "scratch",
        cert_reload_interval=0.05,
        client_ca_file=tmp_path / "client-ca.crt",
        requestheader_client_ca_file=tmp_path / "front-proxy-ca.crt",
        requestheader_allowed_names=("front-proxy-client",),
    )
    poller = new_poller()  # never run: the store is filled by hand
    ref = ObjectRef("ns", "worker")
    poller.store.register(ref, ["s0-cron"])
    poller.store.record_value(ref, "s0-cron", 7, True, datetime.now(UTC))
    health = Health(loaded=True, poller_running=lambda: True)
    adapter = Adapter(settings, poller.telemetry, poller.store, poller, health, inventory=None)
    tls, upkeep = await serving_tls(settings, None, "keda")
    gate = await build_gate(settings, None, tls, adapter.telemetry)
    api, *_ = uvicorn_servers(adapter, tls, gate)  # the API as serve runs it, not /metrics
    tasks = [asyncio.create_task(task()) for task in [*upkeep, gate.run]]
    try:
        async with running(api) as url:
            yield Secured(url, tmp_path, serving_ca, front_proxy, clients, tls, gate)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_front_proxy_reads_as_the_user_its_headers_name(secured: Secured) -> None:
    proxy = secured.front_proxy.issue("front-proxy-client")
    async with secured.client(proxy) as client:
        response = await client.get(METRIC, params=SELECTOR, headers=HPA)
    assert response.status_code == 200, response.text
    assert response.json()["items"][0]["value"] == "7"


async def test_forged_identity_headers_without_the_proxy_certificate_get_401(
    secured: Secured,
) -> None:
    forged = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    async with secured.client() as client:
        response = await client.get(METRIC, params=SELECTOR, headers=forged)
    assert response.status_code == 401
    assert (response.json()["kind"], response.json()["reason"]) == ("Status", "Unauthorized")
    assert response.json()["message"] == "Unauthorized"  # the reason is in our log only


async def test_the_proxy_certificate_without_a_user_header_gets_401(secured: Secured) -> None:
    assert await secured.status(secured.front_proxy.issue("front-proxy-client")) == 401


async def test_a_front_proxy_certificate_with_another_name_gets_401(secured: Secured) -> None:
    assert await secured.status(secured.front_proxy.issue("intruder"), HPA) == 401


async def test_a_client_certificate_from_the_client_ca_is_its_own_user(secured: Secured) -> None:
    alice = secured.clients.issue("alice", organizations=["ops"])
    assert await secured.status(alice) == 200
    assert await secured.status(alice, HPA) == 200  # the headers are ignored, not trusted


async def test_a_certificate_from_another_ca_is_refused_by_tls(secured: Secured) -> None:
    stranger = CertificateAuthority("elsewhere").issue("front-proxy-client")
    with pytest.raises(httpx.TransportError):
        await secured.status(stranger, HPA)


async def test_health_stays_open(secured: Secured) -> None:
    async with secured.client() as client:
        for path in ("/healthz", "/livez", "/readyz"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/apis")).status_code == 401


async def served_serial(secured: Secured) -> int:
    context = client_context(secured.serving_ca.pem)
    port = int(secured.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def test_a_rotated_serving_certificate_is_served_without_a_dropped_request(
    secured: Secured,
) -> None:
    proxy = secured.front_proxy.issue("front-proxy-client")
    before = await served_serial(secured)
    codes: list[int] = []
    rotated = asyncio.Event()

    async def keep_reading() -> None:
        async with secured.client(proxy) as keep_alive:
            while not rotated.is_set() or len(codes) < 50:
                codes.append(
                    (await keep_alive.get(METRIC, params=SELECTOR, headers=HPA)).status_code
                )
                async with secured.client(proxy) as fresh:  # and a new handshake each time
                    codes.append(
                        (await fresh.get(METRIC, params=SELECTOR, headers=HPA)).status_code
                    )

    async def rotate() -> None:
        await asyncio.sleep(0.2)
        renewed = secured.serving_ca.issue("adapter", hosts=["127.0.0.1"], usage="server")
        renewed.write(secured.state, "serving")
        for _ in range(100):
            if await served_serial(secured) != before:
                break
            await asyncio.sleep(0.05)
        rotated.set()

    await asyncio.gather(keep_reading(), rotate())
    assert await served_serial(secured) != before
    assert codes and set(codes) == {200}, codes


async def test_a_rotated_front_proxy_ca_is_followed_without_a_restart(secured: Secured) -> None:
    old_proxy = secured.front_proxy.issue("front-proxy-client")
    assert await secured.status(old_proxy, HPA) == 200
    rotated = CertificateAuthority("front-proxy-ca-2")
    (secured.state / "front-proxy-ca.crt").write_bytes(rotated.pem)
    new_proxy = rotated.issue("front-proxy-client")
    for _ in range(100):
        if await secured.status(old_proxy, HPA) == 401:
            break
        await asyncio.sleep(0.05)
    assert await secured.status(old_proxy, HPA) == 401
    assert await secured.status(new_proxy, HPA) == 200


async def test_an_intermediate_client_ca_is_an_anchor_of_its_own(secured: Secured) -> None:
    """As in Go's verification: trusting an intermediate CA, not its root, is enough."""
    root = CertificateAuthority("corporate-root", depth=1)
    issuing = CertificateAuthority("corporate-issuing", parent=root)
    (secured.state / "client-ca.crt").write_bytes(issuing.pem)  # the root is in no bundle
    bob = issuing.issue("bob", organizations=["ops"])
    for _ in range(100):
        if await secured.status(secured.clients.issue("alice")) == 401:
            break  # the old client CA is gone: the new file was read
        await asyncio.sleep(0.05)
    assert await secured.status(bob) == 200
