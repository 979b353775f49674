"""Vault's HTTP API as the hashiCorpVault source uses it: one httpx client per address and TLS
identity (kept in :class:`scalers.clients.Clients`), every call bounded by the scaler timeout,
Vault's refusals in its own words, and the token a read is made with: the object's own
(looked up and renewed when renewable, as KEDA's client does) or one from a Kubernetes login,
shared by every read made as that login until two thirds of its life have passed.

Nothing here puts a token or a JWT in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from metrics_adapter.binding.auth_sources.base import ReadContext
from metrics_adapter.errors import KubeError
from scalers.clients import HttpIdentity, tls_context

log = logging.getLogger(__name__)

SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""KEDA's default JWT for ``authentication: kubernetes`` without a credential."""
MAX_SA_TOKEN_BYTES = 1 << 20
RENEW_AT = 2 / 3
"""Fraction of a token's, lease's or certificate's life after which it is replaced."""
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class VaultLogin:
    """Who reads are made as, at which Vault: equal logins share one Vault token."""

    address: str
    namespace: str
    method: str
    token: str = field(default="", repr=False)
    role: str = ""
    mount: str = ""
    service_account_file: str = ""
    service_account: tuple[str, str] | None = None
    """``(namespace, name)`` whose token is requested through the TokenRequest API."""


class VaultError(Exception):
    """What went wrong at Vault or on the way; :class:`VaultRead` prefixes its address and path."""


class VaultDenied(VaultError):
    """403: the token may not do this (or no longer exists)."""


@dataclass(frozen=True, slots=True)
class _Issued:
    """A token from a Kubernetes login, shared by every read made as that login."""

    token: str = field(repr=False)
    renew_at: float
    """``time.monotonic()`` after which the next read logs in again."""


class Vault:
    """The client of one Vault address."""

    def __init__(self, address: str, client: httpx.AsyncClient, timeout: float) -> None:
        self.address, self.client, self.timeout = address, client, timeout

    @classmethod
    async def connect(cls, address: str, context: ReadContext) -> Vault:
        """The shared client of ``address`` for the TLS settings in force now: a changed
        ``VAULT_CACERT`` file makes a new identity, hence a new client, on the next read."""
        if not address.startswith(("http://", "https://")):
            raise VaultError(f"address {address!r} must start with http:// or https://")
        identity = await asyncio.to_thread(_tls_identity)
        timeout = context.clients.timeout

        async def open_client() -> httpx.AsyncClient:
            return httpx.AsyncClient(
                verify=tls_context(identity),
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                trust_env=False,
            )

        async def close_client(client: httpx.AsyncClient) -> None:
            await client.aclose()

        key = ("vault", address, identity)
        client = await context.clients.shared(key, open_client, close_client)
        return cls(address, client, timeout)

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        login: VaultLogin,
        body: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        """One call of Vault's API and its JSON answer; raise VaultError in Vault's words."""
        headers = {"X-Vault-Request": "true"}
        if token:
            headers["X-Vault-Token"] = token
        if login.namespace:
            headers["X-Vault-Namespace"] = login.namespace
        url = f"{self.address}/v1/{quote(path, safe='/')}"
        try:
            # httpx's own timeout, per phase (never a cancellation, which can leak a pool slot).
            response = await self.client.request(method, url, headers=headers, json=body)
        except httpx.TimeoutException:
            raise VaultError(f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise VaultError(f"unreachable: {exc or type(exc).__name__}") from None
        except ssl.SSLError as exc:
            raise VaultError(f"TLS: {exc}") from None
        if len(response.content) > MAX_BODY_BYTES:
            raise VaultError(f"answer larger than {MAX_BODY_BYTES} bytes")
        if response.status_code != 200:
            error = VaultDenied if response.status_code == 403 else VaultError
            raise error(_vault_says(response))
        try:
            answer = json.loads(response.content)
        except ValueError:
            raise VaultError(f"answer is not JSON: {response.text[:80]!r}") from None
        if not isinstance(answer, Mapping):
            raise VaultError("answer is not a JSON object")
        return answer


def _vault_says(response: httpx.Response) -> str:
    """A refusal in Vault's own words (its ``errors``), or what its status means when it gives
    none: a KV read of nothing is a bare 404, a sealed Vault a 503."""
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    text = "; ".join(_plain(str(e)) for e in errors) if isinstance(errors, list) else ""
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        text = f"redirected to {where} (a standby node?); address must name the active one"
    elif not text:
        fallback = {404: "no secret at this path", 503: "Vault is sealed or not ready"}
        text = fallback.get(status) or response.text[:200] or "no message"
    return f"HTTP {status}: {text[:300]}"


def _plain(error: str) -> str:
    """One line from Go's multierror text ("1 error occurred:\\n\\t* permission denied")."""
    lines = (line.strip().removeprefix("* ").strip() for line in error.splitlines())
    return "; ".join(x for x in lines if x and not _MULTIERROR_HEAD.fullmatch(x))


_MULTIERROR_HEAD = re.compile(r"\d+ errors? occurred:")


async def token_for(vault: Vault, login: VaultLogin, context: ReadContext) -> tuple[str, float]:
    """The token reads are made with, and its remaining life in seconds (0: not limited by
    it, or looked after here)."""
    if login.method == "kubernetes":
        key = _login_key(login)

        async def issue() -> _Issued:
            return await _kubernetes_login(vault, login, context)

        issued = await context.clients.shared(key, issue, _forget)
        if time.monotonic() >= issued.renew_at:
            await context.clients.discard(key)
            issued = await context.clients.shared(key, issue, _forget)
        return issued.token, 0.0
    if login.method != "token":
        raise VaultError(f"vault auth method {login.method} is not supported")
    if not login.token:
        raise VaultError("could not get Vault token: credential.token is empty")
    try:
        lookup = await vault.call("GET", "auth/token/lookup-self", login.token, login)
    except VaultError as exc:
        raise type(exc)(f"looking up the token (auth/token/lookup-self): {exc}") from None
    data = lookup.get("data")
    data = data if isinstance(data, Mapping) else {}
    ttl = _seconds(data.get("ttl"))
    if data.get("renewable") is True and ttl > 0:
        try:
            renewed = await vault.call("POST", "auth/token/renew-self", login.token, login, {})
        except VaultError as exc:  # KEDA logs a failed renewal and reads with the token anyway
            log.warning("Vault %s: renewing the token failed: %s", login.address, exc)
        else:
            auth = renewed.get("auth")
            ttl = _seconds(auth.get("lease_duration")) if isinstance(auth, Mapping) else ttl
    return login.token, ttl


async def forget_login(login: VaultLogin, context: ReadContext) -> None:
    """Log in afresh next time: the shared token was refused (revoked, or its role changed)."""
    await context.clients.discard(_login_key(login))


def _login_key(login: VaultLogin) -> tuple[str, VaultLogin]:
    return ("vault-login", login)


async def _forget(issued: _Issued) -> None:
    """Nothing to close: the token expires at Vault on its own."""


async def _kubernetes_login(vault: Vault, login: VaultLogin, context: ReadContext) -> _Issued:
    """KEDA's checks, then ``auth/<mount>/login``: Vault reviews the JWT with the cluster's
    TokenReview and answers a token of the role's policies and TTL."""
    if not login.mount:
        raise VaultError("auth mount not in config (hashiCorpVault.mount)")
    if not login.role:
        raise VaultError("k8s role not in config (hashiCorpVault.role)")
    jwt = await _service_account_jwt(login, context)
    where = f"logging in at auth/{login.mount}/login as role {login.role!r}"
    body = {"jwt": jwt, "role": login.role}
    try:
        answer = await vault.call("POST", f"auth/{login.mount}/login", "", login, body)
    except VaultError as exc:  # never VaultDenied: a refused login is not a stale token
        raise VaultError(f"{where}: {exc}") from None
    auth = answer.get("auth")
    token = auth.get("client_token") if isinstance(auth, Mapping) else None
    if not isinstance(token, str) or not token:
        raise VaultError(f"{where}: the answer has no auth.client_token")
    lease = _seconds(auth.get("lease_duration")) if isinstance(auth, Mapping) else 0.0
    log.info(
        "Vault %s: logged in at auth/%s/login as role %s", login.address, login.mount, login.role
    )
    return _Issued(token, time.monotonic() + RENEW_AT * lease if lease > 0 else math.inf)


async def _service_account_jwt(login: VaultLogin, context: ReadContext) -> str:
    """A fresh JWT for each login: a requested one (``serviceAccountName``, cluster mode only,
    living ``bound_token_expiry``) or the file's, re-read since kubelet rotates it."""
    if login.service_account is None:
        if not login.service_account_file:
            raise VaultError(
                "k8s SA file not in config or serviceAccountName not supplied "
                "(credential.serviceAccount or credential.serviceAccountName)"
            )
        return await asyncio.to_thread(_read_token_file, login.service_account_file)
    namespace, name = login.service_account
    what = f"requesting a token for ServiceAccount {namespace}/{name}"
    if context.kube is None:
        raise VaultError(f"{what}: credential.serviceAccountName needs cluster mode")
    try:
        bound = await context.kube.create_token(namespace, name, context.bound_token_expiry)
    except KubeError as exc:
        raise VaultError(f"{what}: {exc}") from None
    return bound.token


def _read_token_file(path: str) -> str:
    """KEDA's checks: a regular file of at most 1 MiB (not a FIFO or a device that blocks)."""
    try:
        if not os.path.isfile(path):
            raise VaultError(f"service account token path {path} is not a regular file")
        with open(path, "rb") as fh:
            jwt = fh.read(MAX_SA_TOKEN_BYTES + 1)
    except OSError as exc:
        raise VaultError(f"reading the service account token {path}: {exc.strerror}") from None
    if len(jwt) > MAX_SA_TOKEN_BYTES:
        raise VaultError(f"service account token file {path} exceeds {MAX_SA_TOKEN_BYTES} bytes")
    return jwt.decode("utf-8", "replace").strip()


def _tls_identity() -> HttpIdentity:
    """KEDA's Vault client takes its TLS settings from the process environment."""

    def pem(variable: str) -> str | None:
        path = os.environ.get(variable)
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise VaultError(f"{variable}={path}: {exc}") from None

    skip = os.environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "t", "true")
    return HttpIdentity(
        verify=not skip,
        ca_pem=pem("VAULT_CACERT"),
        cert_pem=pem("VAULT_CLIENT_CERT"),
        key_pem=pem("VAULT_CLIENT_KEY"),
    )


def _seconds(value: object) -> float:
    """A TTL from Vault's JSON; anything else (absent, a bool) counts as no limit."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
