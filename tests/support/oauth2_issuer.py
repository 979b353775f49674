"""A small OAuth2 identity provider on loopback: client credentials in, HS256 JWTs out.

It stands in for Keycloak in KEDA's own e2e test (``rabbitmq_queue_http_oauth2``): it is
not the server under test. RabbitMQ's ``rabbitmq_auth_backend_oauth2`` plugin validates
what it issues for real, with the same symmetric key (:meth:`TokenIssuer.jwk`). The
issuer counts the token requests it answers, so tests can see a token shared and renewed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from tests.support.servers import free_port

KEY_ID = "metrics-adapter-test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(claims: dict[str, Any], key: bytes, kid: str = KEY_ID) -> str:
    """RFC 7519 with RFC 7515's HMAC-SHA256 signature: three base64url parts."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    signed = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{b64url(hmac.new(key, signed, hashlib.sha256).digest())}"


def unsecured_jwt(claims: dict[str, Any]) -> str:
    """RFC 7519 §6: an unsecured JWT, ``alg: none`` and an empty signature."""
    header = b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


@dataclass
class TokenIssuer:
    audience: str
    """RabbitMQ's ``resource_server_id``: the token's ``aud``, and the prefix of its scopes."""
    clients: dict[str, str]
    """client_id → client_secret."""
    scopes: tuple[str, ...] = ("read:*/*", "tag:monitoring")
    """Granted to every client, prefixed with ``<audience>.``."""
    expires_in: int = 300
    key: bytes = field(default_factory=lambda: hashlib.sha256(str(time.time()).encode()).digest())
    port: int = field(default_factory=free_port)
    basic_only: bool = False
    """Refuse credentials in the form, as some providers do."""
    unsecured: bool = False
    """Issue unsecured JWTs (``alg: none``) holding ``sub``, ``scope`` (the scopes the client
    asked for) and ``exp``: what Kafka's default OAUTHBEARER validator
    (``OAuthBearerUnsecuredValidatorCallbackHandler``) accepts."""
    requests: list[dict[str, str]] = field(default_factory=list)
    """Every token request's form (secrets removed) and how the client authenticated."""
    tokens: list[str] = field(default_factory=list)
    """Every token issued, in order."""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/test/protocol/openid-connect/token"

    def jwk(self) -> dict[str, str]:
        return {"kty": "oct", "alg": "HS256", "k": b64url(self.key)}

    def token_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                status, answer = issuer.answer(form, self.headers.get("authorization"))
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret, style = self._client(form, authorization)
        with self._lock:
            seen = {k: v for k, v in form.items() if k != "client_secret"}
            self.requests.append(seen | {"auth_style": style})
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if style == "form" and self.basic_only:
            return 401, {"error": "invalid_client", "error_description": "use HTTP Basic"}
        if client_id not in self.clients or not hmac.compare_digest(
            self.clients[client_id], secret
        ):
            return 401, {"error": "invalid_client", "error_description": "bad credentials"}
        now = int(time.time())
        with self._lock:
            serial = len(self.tokens) + 1
        if self.unsecured:
            asked = form.get("scope", "").split()
            claims = {"sub": client_id, "scope": asked, "iat": now, "exp": now + self.expires_in}
            token = unsecured_jwt(claims | {"jti": f"token-{serial}"})
            with self._lock:
                self.tokens.append(token)
            answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
            return 200, answer
        claims = {
            "iss": self.url,
            "sub": client_id,
            "client_id": client_id,
            "aud": [self.audience],
            "scope": [f"{self.audience}.{s}" for s in self.scopes],
            "iat": now,
            "exp": now + self.expires_in,
            "jti": f"token-{serial}",
        }
        token = hs256_jwt(claims, self.key)
        with self._lock:
            self.tokens.append(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}

    @staticmethod
    def _client(form: dict[str, str], authorization: str | None) -> tuple[str, str, str]:
        """The client's credentials, from HTTP Basic (query-escaped parts, RFC 6749 §2.3.1)
        or from the form."""
        if authorization and authorization.startswith("Basic "):
            pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
            user, _, password = pair.partition(":")
            return unquote_plus(user), unquote_plus(password), "basic"
        return form.get("client_id", ""), form.get("client_secret", ""), "form"
