"""Who may read the adapter, decided as kube-apiserver would: the adapter follows the
cluster's published authentication settings and asks it TokenReview and SubjectAccessReview,
as its own ServiceAccount with deploy/rbac.yaml's permissions."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from typing import Any

import httpx
import pytest
from cryptography import x509

from metrics_adapter.api.auth.authz import ALLOW_TTL
from metrics_adapter.api.auth.identity import AuthConfig
from metrics_adapter.api.auth.sources import AuthSources
from metrics_adapter.kube.client import KubeClient
from tests.e2e.conftest import NAMESPACE, Registered
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    client_context,
    serving_pair,
    wait_for,
)
from tests.support.pki import CertificateAuthority, KeyPair

pytestmark = pytest.mark.e2e

MASTERS = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
REVOCATION_SLACK = 20.0
"""kube-apiserver's RBAC informer seeing a deletion, and a loaded 2-core machine: well
under the old 300 s memory this test exists to rule out."""


def direct(registered: Registered, pair: KeyPair | None = None) -> httpx.Client:
    """A client that calls the adapter itself, not through kube-apiserver."""
    return httpx.Client(
        base_url=registered.adapter.url,
        verify=client_context(registered.cp.ca.pem, pair),
        timeout=10,
    )


def test_the_front_proxy_ca_comes_from_the_published_config_map(registered: Registered) -> None:
    """The harness gives no --requestheader-client-ca-file: the adapter read it from
    kube-system/extension-apiserver-authentication, and the front proxy's cert is trusted."""
    proxy = KeyPair.read(registered.cp.pki, "front-proxy-client")
    with direct(registered, proxy) as client:
        response = client.get(registered.metric_path(registered.worker), headers=MASTERS)
    assert response.status_code == 200, response.text


def test_a_cluster_client_certificate_is_authorized_by_subject_access_review(
    registered: Registered,
) -> None:
    cp = registered.cp
    path = registered.metric_path(registered.worker)
    with direct(registered, cp.ca.issue("mallory", organizations=["interns"])) as client:
        refused = client.get(path)
    assert refused.status_code == 403, refused.text
    assert 'User "mallory" cannot list resource "s0-cron' in refused.json()["message"]
    with direct(registered, KeyPair.read(cp.pki, "admin")) as admin:  # system:masters
        assert admin.get(path).status_code == 200


READER_BINDING = "rbac.authorization.k8s.io/v1", "RoleBinding", "reader-reads-metrics", NAMESPACE


def reader_token(registered: Registered) -> str:
    """A token of the ServiceAccount e2e/reader, which no role grants anything yet."""
    cp = registered.cp
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": NAMESPACE},
        }
    )
    answer = cp.client.post(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/reader/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["status"]["token"])


def grant_reader(registered: Registered) -> None:
    """The HPA's own role for e2e/reader, in the e2e namespace."""
    registered.cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": READER_BINDING[2], "namespace": NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:controller:horizontal-pod-autoscaler",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NAMESPACE}],
        }
    )


def test_a_service_account_token_is_reviewed_then_authorized(registered: Registered) -> None:
    token = reader_token(registered)
    path = registered.metric_path(registered.worker)
    bearer = {"Authorization": f"Bearer {token}"}
    with direct(registered) as client:
        assert client.get(path, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        refused = client.get(path, headers=bearer)
        assert refused.status_code == 403, refused.text
        assert f"system:serviceaccount:{NAMESPACE}:reader" in refused.json()["message"]
        grant_reader(registered)
        try:
            # The denial is remembered --authorization-deny-ttl (1 s in the harness).
            wait_for("the grant", lambda: client.get(path, headers=bearer).status_code == 200, 15)
        finally:
            registered.cp.delete(*READER_BINDING)


def test_a_revoked_role_binding_refuses_a_direct_caller_within_the_allow_ttl(
    registered: Registered,
) -> None:
    """An allowed decision for a direct caller is remembered ALLOW_TTL (10 s, as
    k8s.io/apiserver): once its RoleBinding is gone, it is refused within that, plus what
    kube-apiserver's RBAC informer takes to see the deletion and the machine's slack."""
    token = reader_token(registered)
    path = registered.metric_path(registered.worker)
    bearer = {"Authorization": f"Bearer {token}"}
    grant_reader(registered)
    try:
        with direct(registered) as client:
            wait_for("the grant", lambda: client.get(path, headers=bearer).status_code == 200, 15)
            registered.cp.delete(*READER_BINDING)
            wait_for(
                "the revocation",
                lambda: client.get(path, headers=bearer).status_code == 403,
                ALLOW_TTL + REVOCATION_SLACK,
            )
    finally:
        registered.cp.delete(*READER_BINDING)


def test_anonymous_callers_get_401_but_health_is_open(registered: Registered) -> None:
    with direct(registered) as client:
        assert client.get("/apis/external.metrics.k8s.io/v1beta1").status_code == 401
        assert client.get(registered.metric_path(registered.worker)).status_code == 401
        for path in ("/healthz", "/livez", "/readyz"):
            assert client.get(path).status_code == 200, path


def test_a_certificate_from_another_ca_is_refused(registered: Registered) -> None:
    stranger = CertificateAuthority("front-proxy-ca").issue("front-proxy-client")
    with direct(registered, stranger) as client, pytest.raises(httpx.TransportError):
        client.get(registered.metric_path(registered.worker), headers=MASTERS)


def served_serial(registered: Registered) -> int:
    with direct(registered) as client:
        response = client.get("/livez")
        stream = response.extensions["network_stream"]
        der = stream.get_extra_info("ssl_object").getpeercert(True)
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_a_rotated_serving_certificate_is_picked_up_while_the_aggregator_reads(
    registered: Registered,
) -> None:
    """The aggregator (the HPA's path) keeps reading while the files change under it."""
    cp, adapter = registered.cp, registered.adapter
    path = registered.metric_path(registered.worker)
    before = served_serial(registered)
    codes: list[int] = []
    done = threading.Event()

    def read() -> None:
        with cp.client_for(KeyPair.read(cp.pki, "admin")) as reader:
            while not done.is_set():
                codes.append(reader.get(path).status_code)
                time.sleep(0.02)

    reader = threading.Thread(target=read)
    reader.start()
    # Reads before the rotation and after it, counted rather than given half a second each:
    # each ends within the admin client's timeout (30 s), or ends the reader.
    reads, within = 6, 6 * 30.0
    try:
        wait_for("reads before", lambda: len(codes) >= reads or not reader.is_alive(), within)
        serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca).write(
            adapter.state / "pki", ADAPTER_SERVICE
        )
        wait_for("the new certificate", lambda: served_serial(registered) != before, 10)
        rotated = len(codes)
        after = lambda: len(codes) >= rotated + reads or not reader.is_alive()  # noqa: E731
        wait_for("reads after", after, within)
    finally:
        done.set()
        reader.join()
    assert len(codes) > 10 and set(codes) == {200}, codes


async def test_a_rotated_ca_in_the_published_config_map_is_followed(
    registered: Registered,
) -> None:
    """The watch behind kube-system/extension-apiserver-authentication, on a copy of it in a
    namespace of its own (kube-apiserver rewrites the real one, and every test relies on it)."""
    cp = registered.cp
    cp.ensure_namespace("auth-config")
    first, second = CertificateAuthority("client-ca-1"), CertificateAuthority("client-ca-2")
    published: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "published", "namespace": "auth-config"},
        "data": {
            "client-ca-file": first.pem.decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
        },
    }
    cp.apply(published)
    seen: list[AuthConfig] = []
    alice, bob = first.issue("alice"), second.issue("bob")
    async with await KubeClient.connect(cp.kubeconfig) as kube:
        sources = AuthSources(kube=kube, config_map=("auth-config", "published"))
        rotated = asyncio.Event()

        def listen(config: AuthConfig) -> None:
            seen.append(config)
            if config.client_ca.anchors([der(bob.cert_pem), der(second.pem)]):
                rotated.set()

        sources.listeners.append(listen)
        await sources.load()
        assert seen[-1].client_ca.anchors([der(alice.cert_pem), der(first.pem)])
        assert seen[-1].requestheader.allowed_names == ("front-proxy-client",)
        following = asyncio.create_task(sources.follow())
        try:
            published["data"]["client-ca-file"] = second.pem.decode()
            await asyncio.to_thread(cp.apply, published)
            async with asyncio.timeout(15):
                await rotated.wait()
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
    assert not seen[-1].client_ca.anchors([der(alice.cert_pem), der(first.pem)])


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())
