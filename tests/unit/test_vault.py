"""hashiCorpVault's reads as binding sees them: grouped as KEDA groups them, equal across
objects, secrets kept out of reprs. The HTTP side is tested against a real Vault
(tests/integration/vault/, tests/e2e/test_vault_kubernetes_auth.py)."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.base import AuthSourceError, ReadContext
from metrics_adapter.binding.auth_sources.vault import SA_TOKEN_FILE, VaultRead, parameter_reads
from metrics_adapter.binding.auth_sources.vault_api import _plain
from metrics_adapter.model.authentication import (
    TriggerAuthentication,
    parse_trigger_authentication,
)
from scalers.clients import Clients

TOKEN = "hvs.secret-token-value"


def auth(vault: dict[str, Any], name: str = "a") -> TriggerAuthentication:
    spec = {"address": "http://vault:8200/", "authentication": "token"} | vault
    raw = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"hashiCorpVault": spec},
    }
    return parse_trigger_authentication(raw)


def reads(vault: dict[str, Any], name: str = "a") -> list[Any]:
    return parameter_reads(auth(vault, name), "ns", None)  # type: ignore[arg-type]


PKI = {"commonName": "x.svc"}


def test_secrets_of_one_path_type_and_pki_data_are_one_read() -> None:
    found = reads(
        {
            "credential": {"token": TOKEN},
            "secrets": [
                {
                    "parameter": "ca",
                    "path": "pki/issue/r",
                    "key": "ca_chain",
                    "type": "pki",
                    "pkiData": PKI,
                },
                {
                    "parameter": "cert",
                    "path": "pki/issue/r",
                    "key": "certificate",
                    "type": "pki",
                    "pkiData": PKI,
                },
                {
                    "parameter": "other",
                    "path": "pki/issue/r",
                    "key": "certificate",
                    "type": "pki",
                    "pkiData": {"commonName": "y.svc"},
                },
                {"parameter": "user", "path": "/kv/app", "key": "user", "type": "secret"},
                {"parameter": "pass", "path": "kv/app", "key": "pass", "type": "secret"},
            ],
        }
    )
    assert [r.parameter for r in found] == ["ca", "cert", "other", "user", "pass"]
    assert found[0].read is found[1].read and found[1].read != found[2].read
    assert found[0].read.keys == {"ca_chain", "certificate"}
    assert found[0].read.pki_data == (("common_name", "x.svc"),)
    assert found[3].read is found[4].read
    assert found[3].read.path == "kv/app" and found[3].read.keys == {"user", "pass"}


def test_equal_reads_across_authentications_are_equal() -> None:
    vault = {
        "credential": {"token": TOKEN},
        "secrets": [{"parameter": "p", "path": "kv/a", "key": "k"}],
    }
    (one,), (two,) = reads(vault, "first"), reads(vault, "second")
    assert one.read == two.read and hash(one.read) == hash(two.read)
    other_token = vault | {"credential": {"token": "another"}}
    assert reads(other_token)[0].read != one.read


def test_the_token_stays_out_of_reprs_and_descriptions() -> None:
    (found,) = reads(
        {
            "credential": {"token": TOKEN},
            "secrets": [{"parameter": "p", "path": "kv/a", "key": "k"}],
        }
    )
    assert TOKEN not in repr(found) and TOKEN not in found.read.describe()
    assert found.read.describe() == "Vault http://vault:8200 kv/a"


def test_kubernetes_auth_defaults_to_the_pods_own_token_file() -> None:
    secrets = [{"parameter": "p", "path": "kv/a", "key": "k"}]
    kube = {
        "authentication": "kubernetes",
        "role": "keda",
        "mount": "kubernetes",
        "secrets": secrets,
    }
    (default,) = reads(kube)
    assert default.read.login.service_account_file == SA_TOKEN_FILE
    assert default.read.login.service_account is None
    (named,) = reads(kube | {"credential": {"serviceAccountName": "app"}})
    assert named.read.login.service_account == ("ns", "app")
    assert named.read.login.service_account_file == ""


async def _fail(read: VaultRead) -> str:
    clients = Clients(timeout=1.0)
    try:
        with pytest.raises(AuthSourceError) as caught:
            await read.read(ReadContext(clients))
    finally:
        await clients.aclose()
    return str(caught.value)


async def test_kubernetes_auth_needs_mount_role_and_a_jwt_as_keda() -> None:
    """KEDA's own messages, before any request leaves."""
    secrets = [{"parameter": "p", "path": "kv/a", "key": "k"}]
    base = {"address": "http://127.0.0.1:9", "authentication": "kubernetes", "secrets": secrets}
    (no_mount,) = reads(base | {"role": "r"})
    assert "auth mount not in config" in await _fail(no_mount.read)
    (no_role,) = reads(base | {"mount": "kubernetes"})
    assert "k8s role not in config" in await _fail(no_role.read)
    (standalone,) = reads(
        base | {"mount": "k", "role": "r", "credential": {"serviceAccountName": "app"}}
    )
    message = await _fail(standalone.read)
    assert message.startswith(
        "Vault http://127.0.0.1:9 kv/a: requesting a token for ServiceAccount ns/app"
    )
    assert "needs cluster mode" in message


async def test_an_address_without_a_scheme_is_named() -> None:
    (found,) = reads(
        {
            "address": "vault:8200",
            "credential": {"token": TOKEN},
            "secrets": [{"parameter": "p", "path": "kv/a", "key": "k"}],
        }
    )
    assert await _fail(found.read) == (
        "Vault vault:8200 kv/a: address 'vault:8200' must start with http:// or https://"
    )


def test_go_multierror_text_becomes_one_line() -> None:
    assert _plain("1 error occurred:\n\t* permission denied\n\n") == "permission denied"
    assert _plain("2 errors occurred:\n\t* a\n\t* b\n\n") == "a; b"
    assert _plain("Vault is sealed") == "Vault is sealed"
