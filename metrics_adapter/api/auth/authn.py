"""Authentication as kube-apiserver delegates it to an aggregated server.

In order, the first that applies wins:

1. a client certificate chaining to the request-header CA, with an allowed common name, and
   a user header: the identity the headers give (the aggregator's front proxy);
2. a client certificate chaining to the client CA: its CN is the user, its O values the groups;
3. ``Authorization: Bearer``: whatever kube-apiserver's TokenReview says.

Identity headers on any other request are ignored, and a request none of these authenticate
is refused with 401: there is no anonymous access.
"""

from __future__ import annotations

import hashlib
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from metrics_adapter.api.auth.identity import (
    AUTHENTICATED,
    AuthConfig,
    User,
    common_name_and_organizations,
)
from metrics_adapter.api.auth.reviews import RememberedAnswers, Reviewer
from metrics_adapter.errors import KubeError, ServiceUnavailable, Unauthorized

Headers = Sequence[tuple[bytes, bytes]]
_CERT_MEMORY = 1024


@dataclass(frozen=True, slots=True)
class _Certificate:
    """What one verified chain proves, decided once per chain and configuration."""

    proxy: bool
    """Signed by the request-header CA with an allowed name: may assert identity headers."""
    user: User | None
    """Signed by the client CA: this user."""
    not_after: float
    refusal: str = ""


class Authenticator:
    """Turns a request's verified certificate chain and headers into a :class:`User`."""

    def __init__(
        self,
        config: AuthConfig,
        reviewer: Reviewer | None = None,
        *,
        token_ttl: float = 60.0,
        failed_token_ttl: float = 10.0,
    ) -> None:
        self.reviewer = reviewer
        self.tokens: RememberedAnswers[bytes, User | None] = RememberedAnswers(
            lambda user: token_ttl if user is not None else failed_token_ttl
        )
        self._certificates: dict[tuple[str, ...], _Certificate] = {}
        self.update(config)

    def update(self, config: AuthConfig) -> None:
        """Trust ``config`` from now on; what the previous one proved is forgotten."""
        self.config = config
        rh = config.requestheader
        self._user_headers = tuple(h.lower().encode() for h in rh.username_headers)
        self._group_headers = tuple(h.lower().encode() for h in rh.group_headers)
        self._uid_headers = tuple(h.lower().encode() for h in rh.uid_headers)
        self._extra_prefixes = tuple(p.lower().encode() for p in rh.extra_prefixes if p)
        self._wanted = frozenset((*self._user_headers, *self._group_headers, *self._uid_headers))
        self._certificates = {}

    async def authenticate(self, chain: Sequence[str], headers: Headers) -> User:
        """The caller, from its verified chain (PEM, leaf first) and request headers."""
        refusal = ""
        if chain:
            cert = self._certificate(tuple(chain))
            if cert.not_after < time.time():
                refusal = "the client certificate or its CA has expired"
            elif cert.proxy and (user := self._from_headers(headers)) is not None:
                return user
            elif cert.user is not None:
                return cert.user
            elif cert.proxy:
                names = ", ".join(self.config.requestheader.username_headers)
                refusal = f"the front proxy's request names no user ({names})"
            else:
                refusal = cert.refusal
        token = _bearer(headers)
        if token is not None and self.reviewer is not None:
            user = await self._review(token)
            if user is not None:
                return user
            refusal = "the bearer token was not accepted by TokenReview"
        raise Unauthorized(f"Unauthorized: {refusal}" if refusal else "Unauthorized")

    def _certificate(self, chain: tuple[str, ...]) -> _Certificate:
        known = self._certificates.get(chain)
        if known is None:
            if len(self._certificates) >= _CERT_MEMORY:
                self._certificates.clear()
            known = self._certificates[chain] = self._classify(chain)
        return known

    def _classify(self, chain: tuple[str, ...]) -> _Certificate:
        ders = [_der(pem) for pem in chain]
        parsed = [common_name_and_organizations(der) for der in ders]
        name, orgs, _ = parsed[0]
        # The whole chain's validity, as a per-request verification would see it.
        not_after = min(expires for _, _, expires in parsed).timestamp()
        rh = self.config.requestheader
        refusal = "the client certificate is not signed by a trusted authority"
        proxy = False
        if rh.ca.anchors(ders):
            proxy = not rh.allowed_names or name in rh.allowed_names
            if not proxy:
                allowed = ", ".join(rh.allowed_names)
                refusal = (
                    f'the front-proxy certificate CN "{name}" is not one of the '
                    f"requestheader-allowed-names [{allowed}]"
                )
        user = None
        if self.config.client_ca.anchors(ders) and name:
            user = User.of(name, (*orgs, AUTHENTICATED))
        return _Certificate(proxy, user, not_after, refusal)

    def _from_headers(self, headers: Headers) -> User | None:
        """The user the front proxy names, reading the configured headers in their order
        (the first with a value wins, as kube-apiserver's requestheader authenticator does);
        empty values are skipped."""
        values: dict[bytes, list[str]] = {}
        extra: dict[str, list[str]] = {}
        for key, value in headers:
            if not value:
                continue
            text = value.decode("latin-1")
            if key in self._wanted:
                values.setdefault(key, []).append(text)
                continue
            for prefix in self._extra_prefixes:
                if key.startswith(prefix) and len(key) > len(prefix):
                    extra_key = urllib.parse.unquote(key[len(prefix) :].decode("latin-1"))
                    extra.setdefault(extra_key, []).append(text)
                    break
        name = next((values[h][0] for h in self._user_headers if h in values), "")
        if not name:
            return None
        uid = next((values[h][0] for h in self._uid_headers if h in values), "")
        groups = [g for h in self._group_headers for g in values.get(h, ())]
        return User.of(name, groups, uid, extra, proxied=True)

    async def _review(self, token: str) -> User | None:
        assert self.reviewer is not None
        reviewer = self.reviewer
        key = hashlib.sha256(token.encode()).digest()  # the cache never holds a token
        try:
            return await self.tokens.get(key, lambda: reviewer.review_token(token))
        except KubeError as exc:
            raise ServiceUnavailable(f"cannot review the bearer token: {exc}") from exc


def _bearer(headers: Headers) -> str | None:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)
