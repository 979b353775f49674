"""hashiCorpVault's ``authentication: kubernetes`` end to end: a real Vault whose kubernetes
auth method asks the e2e kube-apiserver (its address and CA) to review the ServiceAccount
JWT the adapter presents, requested through the TokenRequest API (``serviceAccountName``)
or read from a file (``serviceAccount``), as KEDA does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.base import AuthSourceError, ReadContext
from metrics_adapter.binding.auth_sources.vault import parameter_reads
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.model.authentication import parse_trigger_authentication
from scalers.clients import Clients
from tests.support.controlplane import ControlPlane
from tests.support.vault import VaultServer, ensure_binary

pytestmark = pytest.mark.e2e

NAMESPACE = "vault-e2e"
REVIEWER = "vault-reviewer"
ALLOWED, OTHER = "app", "stranger"


def _token(cp: ControlPlane, account: str, seconds: int = 3600) -> str:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    response = cp.client.post(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token", json=body
    )
    response.raise_for_status()
    return str(response.json()["status"]["token"])


@pytest.fixture(scope="module")
def vault(control_plane: ControlPlane) -> Iterator[VaultServer]:
    """Vault with auth/kubernetes pointed at the e2e kube-apiserver; role ``keda`` admits
    ServiceAccount ``app`` of the test namespace with the reader policy."""
    cp = control_plane
    cp.ensure_namespace(NAMESPACE)
    for account in (REVIEWER, ALLOWED, OTHER):
        cp.apply(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": NAMESPACE},
            }
        )
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "vault-e2e-token-reviewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": REVIEWER, "namespace": NAMESPACE}],
        }
    )
    server = VaultServer(ensure_binary()).start()
    try:
        server.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
        config = {
            "kubernetes_host": cp.url,
            "kubernetes_ca_cert": cp.ca.pem.decode(),
            "token_reviewer_jwt": _token(cp, REVIEWER),
        }
        server.api("POST", "auth/kubernetes/config", config)
        role = {
            "bound_service_account_names": [ALLOWED],
            "bound_service_account_namespaces": [NAMESPACE],
            "policies": ["reader"],
            "ttl": "1h",
        }
        server.api("POST", "auth/kubernetes/role/keda", role)
        server.put_kv2("k8s-app", {"password": "from-vault"})
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def context(control_plane: ControlPlane) -> AsyncIterator[ReadContext]:
    clients = Clients(timeout=5.0)
    kube = await KubeClient.connect(control_plane.kubeconfig)
    try:
        yield ReadContext(clients, kube)
    finally:
        await kube.close()
        await clients.aclose()


def _reads(vault: VaultServer, credential: dict[str, Any]) -> list[Any]:
    raw = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "vault-k8s", "namespace": NAMESPACE},
        "spec": {
            "hashiCorpVault": {
                "address": vault.address,
                "authentication": "kubernetes",
                "role": "keda",
                "mount": "kubernetes",
                "credential": credential,
                "secrets": [
                    {"parameter": "password", "path": "secret/data/k8s-app", "key": "password"}
                ],
            }
        },
    }
    return parameter_reads(parse_trigger_authentication(raw), NAMESPACE, None)  # type: ignore[arg-type]


async def test_a_requested_service_account_token_logs_in_and_reads(
    vault: VaultServer, context: ReadContext, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own log lines; kubernetes_asyncio logs whole response bodies at DEBUG, the
    # TokenRequest's token among them (the adapter's logging must keep it at WARNING).
    caplog.set_level(logging.DEBUG, logger="metrics_adapter")
    (found,) = _reads(vault, {"serviceAccountName": ALLOWED})
    logins = vault.requests_to("auth/kubernetes/login")
    assert (await found.read.read(context)).values == {"password": "from-vault"}
    assert (await found.read.read(context)).values == {"password": "from-vault"}
    # The second read reuses the login's token while it lives.
    assert vault.requests_to("auth/kubernetes/login") == logins + 1
    assert "logged in at auth/kubernetes/login as role keda" in caplog.text
    # Neither the JWT nor Vault's token is logged (both are JWT-like or hvs.-prefixed).
    assert "eyJ" not in caplog.text and "hvs." not in caplog.text


async def test_a_token_file_logs_in_and_reads(
    vault: VaultServer, context: ReadContext, control_plane: ControlPlane, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_token(control_plane, ALLOWED))
    (found,) = _reads(vault, {"serviceAccount": str(token_file)})
    assert (await found.read.read(context)).values == {"password": "from-vault"}


async def test_a_service_account_the_role_does_not_bind_is_refused_by_vault(
    vault: VaultServer, context: ReadContext
) -> None:
    (found,) = _reads(vault, {"serviceAccountName": OTHER})
    with pytest.raises(AuthSourceError) as caught:
        await found.read.read(context)
    message = str(caught.value)
    login = "logging in at auth/kubernetes/login as role 'keda'"
    assert message.startswith(f"Vault {vault.address} secret/data/k8s-app: {login}: HTTP 403")
    assert "not authorized" in message


async def test_a_missing_service_account_is_named(vault: VaultServer, context: ReadContext) -> None:
    (found,) = _reads(vault, {"serviceAccountName": "nobody"})
    with pytest.raises(
        AuthSourceError, match=f"requesting a token for ServiceAccount {NAMESPACE}/nobody: .*404"
    ):
        await found.read.read(context)
