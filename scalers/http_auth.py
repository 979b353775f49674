"""KEDA's ``authentication.Config``: how an HTTP trigger authenticates, declared once.

The ``metrics-api`` and ``prometheus`` triggers both embed it in KEDA, so they read the
same parameters from the same sources and refuse the same combinations. What each trigger
then *sends* differs, as in KEDA: metrics-api applies every enabled mode (an API key in a
header or the query, a custom header, basic or bearer), prometheus the first of bearer,
basic and custom; both check oauth and send no token, and prometheus sends no API key.
Those choices stay in each trigger's ``build``; the credentials are formatted here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

from scalers.clients import HttpIdentity
from scalers.params import Source, TriggerMetadata, param

_AUTH = (Source.AUTH,)
_EITHER = (Source.TRIGGER, Source.AUTH)
AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
_EXCLUSIVE = ("bearer", "basic", "oauth")
"""KEDA's ``exclusiveSet``: each of these sets the Authorization header, so one at most."""


@dataclass(frozen=True)
class HttpAuth(TriggerMetadata):
    """The parameters of KEDA's ``authentication.Config``; subclass it with the trigger's
    own and yield :meth:`auth_problems` from its ``check``. Secrets are kept out of reprs."""

    auth_modes: tuple[str, ...] | None = param(
        "authModes",
        aliases=("authMode",),
        order=_EITHER,
        optional=True,
        enum=AUTH_MODES,
        doc="comma-separated; each mode needs its parameters below",
    )
    method: str = param(
        "method", order=_EITHER, default="header", enum=("header", "query"), doc="of apiKey"
    )
    key_param_name: str | None = param(
        "keyParamName", order=_EITHER, optional=True, doc="the apiKey's header or query name"
    )
    api_key: str | None = param("apiKey", order=_EITHER, optional=True, secret=True)
    username: str | None = param("username", order=_AUTH, optional=True)
    password: str | None = param("password", order=_AUTH, optional=True, secret=True)
    bearer_token: str | None = param(
        "bearerToken", aliases=("token",), order=_AUTH, optional=True, secret=True
    )
    ca: str | None = param("ca", order=_AUTH, optional=True, doc="PEM; trusted in any auth mode")
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    custom_auth_header: str | None = param("customAuthHeader", order=_AUTH, optional=True)
    custom_auth_value: str | None = param(
        "customAuthValue", order=_AUTH, optional=True, secret=True
    )
    oauth_token_uri: str | None = param("oauthTokenURI", order=_AUTH, optional=True)
    client_id: str | None = param("clientID", order=_AUTH, optional=True)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.auth_modes or ()

    def enabled(self, mode: str) -> bool:
        return mode in self.modes

    def auth_problems(self) -> Iterator[tuple[str, str]]:
        """KEDA's ``Config.Validate`` and its ``exclusiveSet``, one problem per parameter."""
        exclusive = [m for m in _EXCLUSIVE if m in self.modes]
        if len(exclusive) > 1:
            yield (
                "authModes",
                f"may hold one of {', '.join(_EXCLUSIVE)}, not {' and '.join(exclusive)}",
            )
        needed = {
            "bearer": (("bearerToken", self.bearer_token),),
            "basic": (("username", self.username),),
            "tls": (("cert", self.cert), ("key", self.key)),
            "oauth": (("oauthTokenURI", self.oauth_token_uri), ("clientID", self.client_id)),
            "custom": (
                ("customAuthHeader", self.custom_auth_header),
                ("customAuthValue", self.custom_auth_value),
            ),
            "apiKey": (("apiKey", self.api_key),),
        }
        for mode in self.modes:
            for name, value in needed[mode]:
                if not value:
                    yield name, f"is required by authModes {mode} (from the authentication)"

    def basic_authorization(self) -> str:
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def bearer_authorization(self) -> str:
        return f"Bearer {self.bearer_token}"

    def custom_header(self) -> tuple[str, str] | None:
        if self.custom_auth_header and self.custom_auth_value:
            return self.custom_auth_header, self.custom_auth_value
        return None

    def http_identity(self, unsafe_ssl: bool) -> HttpIdentity:
        """The TLS side: ``ca`` is trusted in any mode, the client pair is sent with ``tls``."""
        tls = self.enabled("tls")
        return HttpIdentity(
            verify=not unsafe_ssl,
            ca_pem=self.ca,
            cert_pem=self.cert if tls else None,
            key_pem=self.key if tls else None,
        )
