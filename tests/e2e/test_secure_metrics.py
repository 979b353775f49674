"""``/metrics`` served with ``--metrics-secure``: over TLS with the API's certificate, to
callers that kube-apiserver authenticates (TokenReview) and allows ``get`` on the non-resource
URL ``/metrics`` (SubjectAccessReview), as controller-runtime's secure metrics serving; the
allowing role is deploy/metrics-reader.yaml's, bound as a user binds it to Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import NAMESPACE, Registered
from tests.e2e.test_authentication import reader_token
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    DEPLOY,
    Adapter,
    client_context,
    load_manifests,
    serving_pair,
    wait_for,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

READER = "metrics-adapter-metrics-reader"
BINDING = "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "e2e-reader-scrapes-metrics", None
GRANTED_WITHIN = 15.0
"""Denials are remembered 1 s in the harness; kube-apiserver's RBAC informer and a loaded
machine take the rest."""


@pytest.fixture(scope="module")
def secure(registered: Registered) -> Iterator[tuple[Adapter, str]]:
    """A second adapter beside the registered one, with /metrics secure; and its URL."""
    cp = registered.cp
    port = free_port()
    adapter = Adapter(
        objects=cp.state / "secure-metrics" / "objects",
        state=cp.state / "secure-metrics",
        pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),
        ca_pem=cp.ca.pem,
        auth_kubeconfig=registered.adapter.auth_kubeconfig,
        args=[f"--metrics-port={port}", "--metrics-secure"],
    )
    adapter.start()
    try:
        yield adapter, f"https://127.0.0.1:{port}/metrics"
    finally:
        adapter.stop()


def test_metrics_need_a_caller_allowed_get_on_the_metrics_url(
    registered: Registered, secure: tuple[Adapter, str]
) -> None:
    _, url = secure
    cp = registered.cp
    for reader in load_manifests(DEPLOY / "metrics-reader.yaml"):
        cp.apply(reader)
    bearer = {"Authorization": f"Bearer {reader_token(registered)}"}
    with httpx.Client(verify=client_context(cp.ca.pem), timeout=10) as client:
        assert client.get(url).status_code == 401  # anonymous
        assert client.get(url, headers={"Authorization": "Bearer forged"}).status_code == 401
        refused = client.get(url, headers=bearer)
        assert refused.status_code == 403, refused.text
        assert f"system:serviceaccount:{NAMESPACE}:reader" in refused.json()["message"]
        assert '"/metrics"' in refused.json()["message"]
        cp.apply(
            {
                "apiVersion": BINDING[0],
                "kind": BINDING[1],
                "metadata": {"name": BINDING[2]},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": READER,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NAMESPACE}],
            }
        )
        try:
            wait_for(
                "the grant",
                lambda: client.get(url, headers=bearer).status_code == 200,
                GRANTED_WITHIN,
            )
            scraped = client.get(url, headers=bearer)
            assert "keda_build_info{" in scraped.text
            assert scraped.headers["content-type"].startswith("text/plain")
        finally:
            cp.delete(*BINDING)


def test_the_secure_metrics_port_speaks_no_plain_http(secure: tuple[Adapter, str]) -> None:
    _, url = secure
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://"), timeout=10)
