"""The secure port exactly as ``serve`` builds it (``uvicorn_servers``: the guard, TLS, the
gate with a front-proxy CA, request metrics, the admission webhook), on a real loopback
socket, serving one value: ``ns/worker``'s ``s0-cron`` = 7, which the HPA reads through the
front proxy."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.api.app import Health
from metrics_adapter.api.auth.gate import build_gate
from metrics_adapter.api.certificate import serving_tls
from metrics_adapter.api.tls import self_signed_pair
from metrics_adapter.config.settings import Settings
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.server import Adapter, uvicorn_servers
from tests.support.pki import CertificateAuthority, KeyPair, client_context
from tests.support.servers import running
from tests.support.triggers import new_poller

METRIC = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s0-cron"
QUERY = "labelSelector=scaledobject.keda.sh%2Fname%3Dworker"
HPA = {"X-Remote-User": "hpa", "X-Remote-Group": "system:masters"}


@dataclass
class SecurePort:
    port: int
    server_ca: bytes
    proxy: KeyPair
    """The front proxy's client certificate: what kube-apiserver's aggregator presents."""
    telemetry: Telemetry

    def context(self, pair: KeyPair | None = None) -> ssl.SSLContext:
        return client_context(self.server_ca, pair)

    @property
    def value_url(self) -> str:
        return f"https://127.0.0.1:{self.port}{METRIC}?{QUERY}"

    def hpa(self, **options: Any) -> httpx.AsyncClient:
        """A client as the aggregator forwarding the HPA: the proxy's certificate, the
        HPA's identity in its headers, kept-alive connections."""
        return httpx.AsyncClient(verify=self.context(self.proxy), headers=HPA, **options)

    async def hpa_reads_the_value(self) -> None:
        async with self.hpa(timeout=5) as client:
            response = await client.get(self.value_url)
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["value"] == "7"


@contextlib.asynccontextmanager
async def secure_port(tmp_path: Path, **settings: Any) -> AsyncIterator[SecurePort]:
    """The port, with ``settings`` over the defaults."""
    front_proxy = CertificateAuthority("front-proxy-ca")
    (tmp_path / "front-proxy-ca.crt").write_bytes(front_proxy.pem)
    cert, key = self_signed_pair(tmp_path / "certs", ["127.0.0.1"])
    configured = Settings(
        scaledobjects=tmp_path,
        tls_cert_file=cert,
        tls_private_key_file=key,
        cert_dir=tmp_path / "scratch",
        requestheader_client_ca_file=tmp_path / "front-proxy-ca.crt",
        requestheader_allowed_names=("front-proxy-client",),
        metrics_port=0,
        **settings,
    )
    store, telemetry = MetricStore(), Telemetry()
    ref = ObjectRef("ns", "worker")
    store.register(ref, ["s0-cron"])
    store.record_value(ref, "s0-cron", 7, True, datetime.now(UTC))
    health = Health(loaded=True, poller_running=lambda: True)
    poller = new_poller(store=store, telemetry=telemetry)  # never run: the store is filled by hand
    admission = AdmissionWebhook(telemetry)
    adapter = Adapter(configured, telemetry, store, poller, health, None, admission)
    tls, _ = await serving_tls(configured, None, "keda")
    gate = await build_gate(configured, None, tls, telemetry)
    [server] = uvicorn_servers(adapter, tls, gate)
    async with running(server) as url:
        proxy = front_proxy.issue("front-proxy-client")
        yield SecurePort(int(url.rsplit(":", 1)[1]), cert.read_bytes(), proxy, telemetry)
