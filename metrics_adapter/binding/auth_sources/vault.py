"""KEDA's ``hashiCorpVault`` source: secrets read from HashiCorp Vault's HTTP API.

As KEDA (``pkg/scaling/resolver/hashicorpvault_handler.go``): ``authentication: token`` uses
``credential.token`` (looked up, and renewed when renewable); ``kubernetes`` logs in at
``auth/<mount>/login`` as ``role`` with a ServiceAccount JWT, from the file
``credential.serviceAccount`` (the pod's own token when no credential is given) or requested for
``credential.serviceAccountName`` through the TokenRequest API. ``namespace`` is sent as
``X-Vault-Namespace``. Secret types: ``secret`` (KV v1: the key of ``data``), ``secretV2`` (KV v2:
the key of ``data.data``), ``pki`` (a certificate issued by writing ``pkiData`` to the path;
``ca_chain`` joined by newlines) and KEDA's untyped read, which is v2 when ``data`` holds ``data``.
Secrets of one authentication with the same path, type and pkiData are one read, as KEDA groups
them (one certificate for its ``certificate``, ``private_key`` and ``ca_chain``).

Where this differs from KEDA, on purpose: a failed read is an error naming Vault, the path and
Vault's own words, never an empty parameter; values are read again before their lease, token
or certificate runs out (KEDA reads once per scaler build); a Kubernetes login is reused while
its token lives, by every read made as that role. TLS to Vault follows KEDA's process-wide
``VAULT_CACERT``, ``VAULT_SKIP_VERIFY``, ``VAULT_CLIENT_CERT`` and ``VAULT_CLIENT_KEY``; its
``VAULT_TOKEN``, which would stand in for every object's token, is not honoured.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metrics_adapter.binding.auth_sources.base import (
    DEFAULT_REFRESH,
    AuthSourceError,
    ParameterRead,
    ReadContext,
    SourceValues,
)
from metrics_adapter.binding.auth_sources.vault_api import (
    RENEW_AT,
    SA_TOKEN_FILE,
    Vault,
    VaultDenied,
    VaultError,
    VaultLogin,
    forget_login,
    token_for,
)

if TYPE_CHECKING:
    from metrics_adapter.binding.triggers import ObjectSource
    from metrics_adapter.model.authentication import (
        HashiCorpVault,
        TriggerAuthentication,
        VaultSecret,
    )

__all__ = ["RENEW_AT", "SA_TOKEN_FILE", "VaultLogin", "VaultRead", "parameter_reads"]

PKI_FIELDS = ("common_name", "alt_names", "ip_sans", "uri_sans", "other_sans", "ttl", "format")
"""``pkiData``'s fields as Vault's ``pki/issue`` names them; KEDA sends the non-empty ones."""


@dataclass(frozen=True, slots=True)
class VaultRead:
    """One path of one Vault read (GET) or, for ``pki``, written (POST ``pkiData``)."""

    login: VaultLogin
    path: str
    type: str
    pki_data: tuple[tuple[str, str], ...] = ()
    keys: frozenset[str] = frozenset()
    """The keys the authentication asks of this path; a missing one fails the read."""

    def describe(self) -> str:
        return f"Vault {self.login.address} {self.path}"

    async def read(self, context: ReadContext) -> SourceValues:
        try:
            return await self._read(context)
        except VaultError as exc:
            raise AuthSourceError(f"{self.describe()}: {exc}") from None

    async def _read(self, context: ReadContext) -> SourceValues:
        vault = await Vault.connect(self.login.address, context)
        token, token_ttl = await token_for(vault, self.login, context)
        try:
            answer = await self._fetch(vault, token)
        except VaultDenied:
            if self.login.method != "kubernetes":
                raise
            # The cached login may have been revoked: log in once more before giving up.
            await forget_login(self.login, context)
            token, token_ttl = await token_for(vault, self.login, context)
            answer = await self._fetch(vault, token)
        values = self._values(answer)
        return SourceValues(values, self._refresh_in(answer, token_ttl))

    async def _fetch(self, vault: Vault, token: str) -> Mapping[str, Any]:
        if self.type == "pki":
            return await vault.call("POST", self.path, token, self.login, dict(self.pki_data))
        return await vault.call("GET", self.path, token, self.login)

    def _values(self, answer: Mapping[str, Any]) -> dict[str, str]:
        data = answer.get("data")
        if not isinstance(data, Mapping):
            raise VaultError("the answer has no data")
        kind = self.type or ("secretV2" if "data" in data else "secret")
        if kind == "secretV2":
            data = data.get("data")
            if not isinstance(data, Mapping):
                raise VaultError(
                    "the answer has no data.data: is this a KV v2 path (<mount>/data/<name>)?"
                )
        values = {}
        for key in sorted(self.keys):
            if key not in data:
                raise VaultError(
                    f"key {key!r} not found (keys: {', '.join(sorted(map(str, data))) or 'none'})"
                )
            value = data[key]
            if kind == "pki" and key == "ca_chain" and isinstance(value, list):
                value = "\n".join(str(v) for v in value)
            if not isinstance(value, str):
                raise VaultError(f"key {key!r} is not a string (a {type(value).__name__})")
            values[key] = value
        return values

    def _refresh_in(self, answer: Mapping[str, Any], token_ttl: float) -> float:
        """Before a certificate expires (``pki``); else before the lease or the token does,
        and at least every DEFAULT_REFRESH so a changed secret is picked up."""
        data = answer.get("data")
        expiration = data.get("expiration") if isinstance(data, Mapping) else None
        if self.type == "pki" and isinstance(expiration, int | float):
            return max(1.0, RENEW_AT * (expiration - time.time()))
        lives = [DEFAULT_REFRESH]
        lease = answer.get("lease_duration")
        if isinstance(lease, int | float) and lease > 0:
            lives.append(RENEW_AT * lease)
        if token_ttl > 0:
            lives.append(RENEW_AT * token_ttl)
        return max(1.0, min(lives))


def parameter_reads(
    auth: TriggerAuthentication, namespace: str, objects: ObjectSource
) -> list[ParameterRead]:
    """The reads of ``auth``'s ``hashiCorpVault``, one per path, type and pkiData.
    ``namespace`` is where ``credential.serviceAccountName``'s token is requested (KEDA: the
    scaled object's). Nothing is read from ``objects``: Vault's credentials are in the object."""
    vault = auth.hashicorp_vault
    if vault is None:
        return []
    login = _login(vault, namespace)
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], set[str]] = {}
    for secret in vault.secrets:
        groups.setdefault(_group(secret), set()).add(secret.key)
    reads = {
        group: VaultRead(login, *group, keys=frozenset(keys)) for group, keys in groups.items()
    }
    return [ParameterRead(s.parameter, reads[_group(s)], s.key) for s in vault.secrets]


def _group(secret: VaultSecret) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """What makes two secrets one read: KEDA's SecretGroup (path, type, pkiData)."""
    pki = (
        tuple((n, v) for n in PKI_FIELDS if (v := getattr(secret.pki_data, n)))
        if secret.type == "pki"
        else ()
    )
    return secret.path.lstrip("/"), secret.type, pki


def _login(vault: HashiCorpVault, namespace: str) -> VaultLogin:
    credential = vault.credential
    address, vault_namespace = vault.address.rstrip("/"), vault.namespace
    if vault.authentication != "kubernetes":
        token = credential.token if credential else ""
        return VaultLogin(address, vault_namespace, vault.authentication, token=token)
    sa_file = SA_TOKEN_FILE if credential is None else credential.service_account
    sa_name = credential.service_account_name if credential else ""
    return VaultLogin(
        address,
        vault_namespace,
        "kubernetes",
        role=vault.role,
        mount=vault.mount,
        service_account_file="" if sa_name else sa_file,
        service_account=(namespace, sa_name) if sa_name else None,
    )
