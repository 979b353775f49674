"""OAuth2 client credentials (RFC 6749 §4.4): the token KEDA's ``rabbitmq`` trigger sends
to the management API, fetched as ``golang.org/x/oauth2/clientcredentials`` fetches it.

What carries over from that library, so an identity provider KEDA works with works here:

- the form: ``grant_type=client_credentials``, ``scope`` (the scopes joined by spaces),
  then ``endpointParams``, which may replace ``grant_type`` but no other field already set;
- the client's credentials: HTTP Basic (each part query-escaped) first and, when the
  endpoint refuses that, in the form (``client_id``, ``client_secret``); the way that worked
  is kept for the endpoint;
- the answer: JSON, or a form when its Content-Type says so; a status outside 2xx or an
  ``error`` field is a refusal, no ``access_token`` an error; ``expires_in`` absent or 0
  never expires; the header's scheme is ``token_type``'s, ``Bearer`` when empty;
- renewal 10 s before ``expires_in``.

What differs: one token per endpoint, client and request is shared by every trigger (KEDA
holds one per scaler); a token living under 20 s is renewed at half its life (the fixed
10 s would fetch one for every request); a renewal that fails keeps the current token
until it expires; a connection failure is not retried with the other credential style (it
says nothing about the style). The secret and the token never
appear in a repr, a log line or an error.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus, unquote_plus, urlencode, urlsplit

import httpx

from scalers.clients import Clients, HttpIdentity
from scalers.errors import ScalerError, SourceResponseError, SourceUnreachable
from scalers.errors import quote as q
from scalers.flight import SingleFlight

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 10.0
"""Seconds before ``expires_in`` a token is renewed (x/oauth2's ``defaultExpiryDelta``)."""
MAX_LIFETIME = 2**31 - 1
"""x/oauth2 reads ``expires_in`` as an int32, capped here."""
IN_HEADER, IN_PARAMS = "header", "params"
_FORM_TYPES = ("application/x-www-form-urlencoded", "text/plain")


@dataclass(frozen=True)
class ClientCredentials:
    """One token request: equal requests share one token (see :meth:`authorization`)."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    endpoint_params: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Extra form fields (``audience``, ``resource``); kept out of reprs, as one may be a
    client assertion."""
    identity: HttpIdentity = field(default_factory=HttpIdentity, repr=False)
    """TLS towards the endpoint: the trigger's, as KEDA uses one transport for both."""

    def describe(self) -> str:
        return f"OAuth2 token from {shown_url(self.token_url)} for client {q(self.client_id)}"

    async def authorization(self, clients: Clients) -> str:
        """The ``Authorization`` header: the cached token, or one fetched now."""

        async def open_source() -> TokenSource:
            return TokenSource(self)

        source = await clients.shared(("oauth2", self), open_source, _forget)
        return await source.authorization(clients)


async def _forget(source: TokenSource) -> None:
    """Nothing to close: a token source holds no connection."""


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    scheme: str
    renew_at: float | None
    """Monotonic time from which a new token is fetched; ``None``: never."""
    expires_at: float | None = None
    """Monotonic time the endpoint said it expires: until then a failed renewal keeps it."""

    @property
    def header(self) -> str:
        return f"{self.scheme} {self.access_token}"

    def due(self, now: float) -> bool:
        return self.renew_at is not None and now >= self.renew_at

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class TokenSource:
    """The token of one :class:`ClientCredentials`, renewed before it expires; concurrent
    callers share one request."""

    def __init__(
        self, credentials: ClientCredentials, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.credentials = credentials
        self.clock = clock
        self.requests = 0
        """Token requests sent, both credential styles counted."""
        self._token: Token | None = None
        self._style: str | None = None
        self._flight: SingleFlight[str, Token] = SingleFlight(cancel_abandoned=True)

    async def authorization(self, clients: Clients) -> str:
        token = self._token
        if token is None or token.due(self.clock()):
            try:
                token = await self._flight.do("token", lambda: self._renew(clients))
            except ScalerError as exc:
                # Renewal starts before expiry: a short outage of the endpoint costs nothing.
                if token is None or token.expired(self.clock()):
                    raise
                log.warning(
                    "%s: renewal failed, the current token serves on: %s",
                    self.credentials.describe(),
                    exc,
                )
        return token.header

    async def _renew(self, clients: Clients) -> Token:
        form = request_form(self.credentials)
        styles = (self._style,) if self._style else (IN_HEADER, IN_PARAMS)
        refused: SourceResponseError | None = None
        for style in styles:
            try:
                token = await self._request(clients, form, style)
            except SourceResponseError as exc:
                refused = exc  # perhaps the other style: x/oauth2 tries both
                continue
            self._style, self._token = style, token
            lifetime = "no expiry" if token.renew_at is None else "renewed before it expires"
            log.debug("%s: new token (%s)", self.credentials.describe(), lifetime)
            return token
        assert refused is not None
        raise refused

    async def _request(self, clients: Clients, form: list[tuple[str, str]], style: str) -> Token:
        c = self.credentials
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        }
        if style == IN_HEADER:
            pair = f"{quote_plus(c.client_id, safe='')}:{quote_plus(c.client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form = [(k, v) for k, v in form if k not in ("client_id", "client_secret")]
            form.append(("client_id", c.client_id))
            if c.client_secret:
                form.append(("client_secret", c.client_secret))
        self.requests += 1
        try:
            response = await clients.post(
                c.token_url,
                content=urlencode(sorted(form)).encode(),
                headers=headers,
                identity=c.identity,
                shown=shown_url(c.token_url),
            )
        except SourceUnreachable as exc:  # and SourceTimeout: say whose request it was
            raise type(exc)(f"{c.describe()}: {exc}") from exc
        return parse_token(response, self.clock(), c.describe())


def request_form(credentials: ClientCredentials) -> list[tuple[str, str]]:
    """The token request's fields before the client's credentials, as x/oauth2 builds them."""
    fields: dict[str, list[str]] = {"grant_type": ["client_credentials"]}
    if credentials.scopes:
        fields["scope"] = [" ".join(credentials.scopes)]
    extra: dict[str, list[str]] = {}
    for key, value in credentials.endpoint_params:
        extra.setdefault(key, []).append(value)
    for key, values in extra.items():
        if key in fields and key != "grant_type":
            raise SourceResponseError(
                f"{credentials.describe()}: endpointParams cannot set {q(key)}, "
                "which the request sets itself (from scopes)"
            )
        fields[key] = values
    return [(k, v) for k, values in fields.items() for v in values]


def parse_token(response: httpx.Response, now: float, what: str) -> Token:
    """A token endpoint's answer, checked; a refusal names the endpoint's own reason."""
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    failed = not 200 <= response.status_code <= 299
    status = f"HTTP {response.status_code}"
    if media in _FORM_TYPES:
        fields: dict[str, object] = {}
        for key, value in parse_form(response.text, strict=False):
            fields.setdefault(key, value)
    else:
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            if failed:
                raise SourceResponseError(f"{what}: refused: {status}: {_excerpt(response)}")
            raise SourceResponseError(f"{what}: {status}: the answer is not a JSON object")
        fields = document
    error = _text(fields, "error", what)
    if failed or error:
        reason = error or _excerpt(response)
        description = _text(fields, "error_description", what)
        detail = f"{reason}: {description}" if description else reason
        raise SourceResponseError(f"{what}: refused: {status}: {detail}")
    access_token = _text(fields, "access_token", what)
    if not access_token:
        raise SourceResponseError(f"{what}: {status}: the answer has no access_token")
    expires = _expires_in(fields.get("expires_in"), what, form=media in _FORM_TYPES)
    renew_at = expires_at = None
    if expires:
        lifetime = min(expires, MAX_LIFETIME)
        renew_at = now + lifetime - min(EXPIRY_MARGIN, max(lifetime, 0) / 2)
        expires_at = now + lifetime
    return Token(access_token, _scheme(_text(fields, "token_type", what)), renew_at, expires_at)


def _text(fields: dict[str, object], key: str, what: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SourceResponseError(f"{what}: {key} in the answer is not a string")
    return value


def _expires_in(value: object, what: str, *, form: bool) -> int:
    """x/oauth2: a form's unreadable ``expires_in`` counts as absent; JSON's must be a
    whole number, or a string holding one."""
    if value is None or value == "":
        return 0
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if form:
        return 0
    raise SourceResponseError(f"{what}: expires_in {q(value)} is not a whole number of seconds")


def _scheme(token_type: str) -> str:
    """x/oauth2's ``Token.Type``: the known schemes in their canonical case."""
    for known in ("Bearer", "MAC", "Basic"):
        if token_type.lower() == known.lower():
            return known
    return token_type or "Bearer"


def _excerpt(response: httpx.Response) -> str:
    """An error answer's text, for the message (a 2xx answer, which may hold a token, is
    never shown)."""
    return repr(response.text[:200]) if response.text.strip() else "(empty answer)"


_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_form(text: str, *, strict: bool = True) -> list[tuple[str, str]]:
    """Go's ``url.ParseQuery``, which KEDA reads ``endpointParams`` with: ``&``-separated
    ``key=value`` pairs, ``+`` a space; a bad ``%`` escape or a ``;`` is an error
    (ValueError) when ``strict``, else that pair is skipped."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        problem = None
        if ";" in part:
            problem = "invalid semicolon separator"
        elif _ESCAPE.search(key) or _ESCAPE.search(value):
            problem = "invalid URL escape"
        if problem is not None:
            if strict:
                raise ValueError(f"{problem} in the field {q(unquote_plus(key))}")
            continue
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def shown_url(url: str) -> str:
    """``url`` without any login in it, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
