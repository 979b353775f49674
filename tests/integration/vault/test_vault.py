"""hashiCorpVault reads against a real Vault dev server: token auth, KV v1 and v2, PKI, Vault's
own refusals named with the address and path, and reads shared as the server counts them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from cryptography import x509

from metrics_adapter.binding.auth_sources.base import (
    DEFAULT_REFRESH,
    AuthSourceError,
    ParameterRead,
    ReadContext,
    SourceValues,
)
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.auth_sources.vault import RENEW_AT, parameter_reads
from metrics_adapter.model.authentication import (
    TriggerAuthentication,
    parse_trigger_authentication,
)
from tests.support.vault import PKI_DOMAIN, PKI_ROLE, VaultServer

pytestmark = pytest.mark.integration


def authentication(
    vault: VaultServer, token: str, *secrets: dict[str, Any]
) -> TriggerAuthentication:
    return parse_trigger_authentication(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "vault-auth", "namespace": "default"},
            "spec": {
                "hashiCorpVault": {
                    "address": vault.address,
                    "authentication": "token",
                    "credential": {"token": token},
                    "secrets": list(secrets),
                }
            },
        }
    )


def reads_of(auth: TriggerAuthentication) -> list[ParameterRead]:
    return parameter_reads(auth, "default", NO_OBJECTS)


async def resolve(reads: list[ParameterRead], context: ReadContext) -> dict[str, str]:
    """Each parameter's value, every distinct read made once."""
    made = {read: await read.read(context) for read in dict.fromkeys(r.read for r in reads)}
    return {r.parameter: made[r.read].values[r.key] for r in reads}


class _NoObjects:
    """Vault's reads need nothing from the cluster's objects."""

    cluster_object_namespace = "keda"


NO_OBJECTS: Any = _NoObjects()


async def test_token_auth_reads_kv_v1(vault_server: VaultServer, context: ReadContext) -> None:
    vault_server.put_kv1("app-v1", {"user": "alice", "password": "wonderland"})
    auth = authentication(
        vault_server,
        vault_server.token(),
        {"parameter": "username", "path": "kv1/app-v1", "key": "user", "type": "secret"},
        {"parameter": "password", "path": "kv1/app-v1", "key": "password", "type": "secret"},
    )
    reads = reads_of(auth)
    assert await resolve(reads, context) == {"username": "alice", "password": "wonderland"}
    assert len({r.read for r in reads}) == 1
    assert reads[0].read.describe() == f"Vault {vault_server.address} kv1/app-v1"


async def test_token_auth_reads_kv_v2_typed_and_untyped(
    vault_server: VaultServer, context: ReadContext
) -> None:
    vault_server.put_kv2("app-v2", {"connection": "postgres://db/app"})
    path = "secret/data/app-v2"
    auth = authentication(
        vault_server,
        vault_server.token(),
        {"parameter": "typed", "path": path, "key": "connection", "type": "secretV2"},
        {"parameter": "untyped", "path": path, "key": "connection"},
    )
    values = await resolve(reads_of(auth), context)
    assert values == {"typed": "postgres://db/app", "untyped": "postgres://db/app"}


async def test_pki_issues_one_certificate_for_its_keys(
    vault_server: VaultServer, context: ReadContext
) -> None:
    path = f"pki/issue/{PKI_ROLE}"
    pki = {"commonName": f"prometheus.{PKI_DOMAIN}", "ttl": "1h"}
    auth = authentication(
        vault_server,
        vault_server.token(),
        *(
            {"parameter": p, "path": path, "key": k, "type": "pki", "pkiData": pki}
            for p, k in (("ca", "ca_chain"), ("key", "private_key"), ("cert", "certificate"))
        ),
    )
    before = vault_server.requests_to(path, "update")
    reads = reads_of(auth)
    (read,) = {r.read for r in reads}
    result = await read.read(context)
    assert vault_server.requests_to(path, "update") == before + 1
    cert = x509.load_pem_x509_certificate(result.values["certificate"].encode())
    assert cert.subject.rfc4514_string() == f"CN=prometheus.{PKI_DOMAIN}"
    assert "PRIVATE KEY" in result.values["private_key"]
    issuer = x509.load_pem_x509_certificate(result.values["ca_chain"].encode())
    assert cert.issuer == issuer.subject
    life = cert.not_valid_after_utc.timestamp() - time.time()
    # Re-issued before the certificate expires, not on the default period of static secrets.
    assert DEFAULT_REFRESH < result.refresh_in <= RENEW_AT * life + 1


async def test_a_wrong_token_names_vault_and_the_path(
    vault_server: VaultServer, context: ReadContext
) -> None:
    vault_server.put_kv1("guarded", {"k": "v"})
    wrong = "hvs.not-a-token-vault-knows"
    auth = authentication(
        vault_server, wrong, {"parameter": "p", "path": "kv1/guarded", "key": "k"}
    )
    with pytest.raises(AuthSourceError) as caught:
        await resolve(reads_of(auth), context)
    message = str(caught.value)
    assert message.startswith(f"Vault {vault_server.address} kv1/guarded: ")
    assert "permission denied" in message and "403" in message
    assert wrong not in message and wrong not in repr(reads_of(auth))


async def test_a_token_without_the_policy_is_refused_at_the_path(
    vault_server: VaultServer, context: ReadContext
) -> None:
    vault_server.api("POST", "sys/mounts/kv-other", {"type": "kv", "options": {"version": "1"}})
    vault_server.api("POST", "kv-other/secret", {"k": "v"})
    auth = authentication(
        vault_server,
        vault_server.token(),
        {"parameter": "p", "path": "kv-other/secret", "key": "k"},
    )
    with pytest.raises(AuthSourceError, match=r"kv-other/secret: HTTP 403: .*permission denied"):
        await resolve(reads_of(auth), context)


async def test_a_missing_key_or_secret_is_an_error_not_an_empty_value(
    vault_server: VaultServer, context: ReadContext
) -> None:
    vault_server.put_kv2("has-one", {"present": "yes"})
    token = vault_server.token()
    missing_key = authentication(
        vault_server, token, {"parameter": "p", "path": "secret/data/has-one", "key": "absent"}
    )
    with pytest.raises(AuthSourceError) as caught:
        await resolve(reads_of(missing_key), context)
    assert str(caught.value) == (
        f"Vault {vault_server.address} secret/data/has-one: key 'absent' not found (keys: present)"
    )
    missing_path = authentication(
        vault_server, token, {"parameter": "p", "path": "kv1/nothing-here", "key": "k"}
    )
    with pytest.raises(
        AuthSourceError, match=r"kv1/nothing-here: HTTP 404: no secret at this path"
    ):
        await resolve(reads_of(missing_path), context)


async def test_a_changed_secret_is_picked_up_after_its_refresh(
    vault_server: VaultServer, context: ReadContext
) -> None:
    """Through the cache binding reads with: a KV v1 secret's ``ttl`` is its lease, and the
    read is made again within it, so the new value reaches its owners."""
    vault_server.put_kv1("rotating", {"password": "first", "ttl": "3s"})
    token = vault_server.token()
    secret = {"parameter": "p", "path": "kv1/rotating", "key": "password", "type": "secret"}
    (read,) = {r.read for r in reads_of(authentication(vault_server, token, secret))}
    changed = asyncio.Event()
    cache = SourceCache(context, on_change=lambda _: changed.set())
    try:
        await cache.settle("owner", [read], within=10)
        first = cache.get(read)
        assert isinstance(first, SourceValues) and first.values == {"password": "first"}
        assert first.refresh_in <= RENEW_AT * 3
        changed.clear()
        vault_server.put_kv1("rotating", {"password": "second", "ttl": "3s"})
        # Several refresh periods, for a loaded machine; the refresh itself takes 2 s.
        await asyncio.wait_for(changed.wait(), timeout=30)
        second = cache.get(read)
        assert isinstance(second, SourceValues) and second.values == {"password": "second"}
    finally:
        await cache.aclose()


async def test_equal_reads_of_two_authentications_are_made_once(
    vault_server: VaultServer, context: ReadContext
) -> None:
    """Two TriggerAuthentications naming the same Vault, token and path, needed by two
    owners of the cache binding reads with: the server logs one request for the path."""
    vault_server.put_kv1("shared", {"a": "1"})
    token = vault_server.token()
    secret = {"parameter": "p", "path": "kv1/shared", "key": "a", "type": "secret"}
    first, second = (reads_of(authentication(vault_server, token, secret)) for _ in range(2))
    before = vault_server.requests_to("kv1/shared", "read")
    cache = SourceCache(context)
    try:
        await cache.settle("first", [r.read for r in first], within=10)
        await cache.settle("second", [r.read for r in second], within=10)
        assert cache.get(second[0].read) == cache.get(first[0].read)
    finally:
        await cache.aclose()
    assert vault_server.requests_to("kv1/shared", "read") == before + 1


async def test_a_renewable_token_is_renewed_and_bounds_the_refresh(
    vault_server: VaultServer, context: ReadContext
) -> None:
    vault_server.put_kv1("renewed", {"k": "v"})
    token = vault_server.token(ttl="90s", renewable=True, explicit_max_ttl="24h")
    auth = authentication(
        vault_server, token, {"parameter": "p", "path": "kv1/renewed", "key": "k"}
    )
    (read,) = {r.read for r in reads_of(auth)}
    before = vault_server.requests_to("auth/token/renew-self")
    result = await read.read(context)
    assert vault_server.requests_to("auth/token/renew-self") == before + 1
    assert result.refresh_in <= RENEW_AT * 90


async def test_a_sealed_vault_says_so(fresh_vault: VaultServer, context: ReadContext) -> None:
    fresh_vault.put_kv1("x", {"k": "v"})
    auth = authentication(
        fresh_vault, fresh_vault.token(), {"parameter": "p", "path": "kv1/x", "key": "k"}
    )
    fresh_vault.api("PUT", "sys/seal")
    with pytest.raises(AuthSourceError, match=r"kv1/x: .*HTTP 503: Vault is sealed"):
        await resolve(reads_of(auth), context)


async def test_a_frozen_vault_fails_within_the_timeout(
    fresh_vault: VaultServer, context: ReadContext
) -> None:
    fresh_vault.put_kv1("x", {"k": "v"})
    auth = authentication(
        fresh_vault, fresh_vault.token(), {"parameter": "p", "path": "kv1/x", "key": "k"}
    )
    fresh_vault.pause()
    try:
        with pytest.raises(AuthSourceError, match=r"kv1/x: .*no answer within 3s"):
            await resolve(reads_of(auth), context)
    finally:
        fresh_vault.resume()


async def test_tls_is_verified_with_the_ca_of_vault_cacert(
    tls_vault: VaultServer, context: ReadContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As KEDA's Vault client, the adapter's VAULT_CACERT names the CA; without it the
    system's CAs refuse Vault's own."""
    tls_vault.put_kv1("tls", {"k": "v"})
    auth = authentication(
        tls_vault, tls_vault.token(), {"parameter": "p", "path": "kv1/tls", "key": "k"}
    )
    monkeypatch.delenv("VAULT_CACERT", raising=False)
    with pytest.raises(AuthSourceError, match=r"kv1/tls: .*CERTIFICATE_VERIFY_FAILED"):
        await resolve(reads_of(auth), context)
    monkeypatch.setenv("VAULT_CACERT", str(tls_vault.ca_file))
    assert await resolve(reads_of(auth), context) == {"p": "v"}
