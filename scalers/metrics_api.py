"""``metrics-api``: a number read from any HTTP endpoint that answers JSON.

Parsed as KEDA's ``metricsAPIScaler`` parses it (its metadata and the shared
``authentication.Config``). What KEDA only finds out when it polls (a ``url`` it cannot
request, ``format: xml``) fails the trigger when we poll, never the object.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import HttpIdentity, JsonGet
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.jsonpath import PathNotFound, lookup
from scalers.params import Source, TriggerMetadata, param
from scalers.quantity import parse_quantity

if TYPE_CHECKING:
    from scalers.clients import Clients

_AUTH = (Source.AUTH,)
_EITHER = (Source.TRIGGER, Source.AUTH)
AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
_EXCLUSIVE = ("bearer", "basic", "oauth")
"""KEDA's ``exclusiveSet``: each of these sets the Authorization header, so one at most."""
_UNSUPPORTED_FORMATS = {
    "prometheus": "reading the Prometheus text exposition format",
    "yaml": "reading YAML answers",
}


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    url: str = param("url", doc="http(s) URL; any other fails the trigger when it is polled")
    value_location: str = param("valueLocation", doc="gjson path to the number")
    target_value: float | None = param(
        "targetValue", gt=0, target=True, doc="optional when it feeds a scalingModifiers formula"
    )
    activation_target_value: float = param("activationTargetValue", default="0")
    format: str = param("format", default="json", enum=("json", "prometheus", "xml", "yaml"))
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    aggregate_from_endpoints: bool = param(
        "aggregateFromKubeServiceEndpoints", default="false", doc="true is not supported"
    )
    aggregation_type: str = param(
        "aggregationType", default="average", enum=("average", "sum", "max", "min")
    )
    timeout: timedelta | None = param(  # noqa: RUF009 (a frozen value)
        "timeout", optional=True, doc="30s or milliseconds; bounded by the adapter's own"
    )
    auth_modes: tuple[str, ...] | None = param(
        "authModes",
        aliases=("authMode",),
        order=_EITHER,
        optional=True,
        enum=AUTH_MODES,
        doc="comma-separated: apiKey, basic, tls, bearer, custom",
    )
    method: str = param("method", order=_EITHER, default="header", enum=("header", "query"))
    key_param_name: str | None = param("keyParamName", order=_EITHER, optional=True)
    api_key: str | None = param("apiKey", order=_EITHER, optional=True, secret=True)
    username: str | None = param("username", order=_AUTH, optional=True)
    password: str | None = param("password", order=_AUTH, optional=True, secret=True)
    token: str | None = param(
        "bearerToken", aliases=("token",), order=_AUTH, optional=True, secret=True
    )
    ca: str | None = param("ca", order=_AUTH, optional=True)
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    custom_auth_header: str | None = param("customAuthHeader", order=_AUTH, optional=True)
    custom_auth_value: str | None = param(
        "customAuthValue", order=_AUTH, optional=True, secret=True
    )
    oauth_token_uri: str | None = param("oauthTokenURI", order=_AUTH, optional=True)
    client_id: str | None = param("clientID", order=_AUTH, optional=True)

    def enabled(self, mode: str) -> bool:
        return mode in (self.auth_modes or ())

    def check(self) -> Iterator[tuple[str, str]]:
        modes = self.auth_modes or ()
        exclusive = [m for m in _EXCLUSIVE if m in modes]
        if len(exclusive) > 1:
            yield (
                "authModes",
                f"may hold one of {', '.join(_EXCLUSIVE)}, not {' and '.join(exclusive)}",
            )
        required = {
            "bearer": (("token", self.token),),
            "basic": (("username", self.username),),
            "tls": (("cert", self.cert), ("key", self.key)),
            "oauth": (("oauthTokenURI", self.oauth_token_uri), ("clientID", self.client_id)),
            "custom": (
                ("customAuthHeader", self.custom_auth_header),
                ("customAuthValue", self.custom_auth_value),
            ),
            "apiKey": (("apiKey", self.api_key),),
        }
        for mode in modes:
            for name, value in required[mode]:
                if not value:
                    yield name, f"is required by authMode {mode} (from the authentication)"
        if self.format in _UNSUPPORTED_FORMATS:
            yield (
                "format",
                f"{self.format} is not supported by metrics-adapter yet: it would need "
                f"{_UNSUPPORTED_FORMATS[self.format]}; serve JSON (format json)",
            )
        if self.aggregate_from_endpoints:
            yield (
                "aggregateFromKubeServiceEndpoints",
                "true is not supported by metrics-adapter: it would need to list the "
                "Service's EndpointSlices and poll every ready endpoint; point url at one "
                "endpoint that serves the aggregate instead",
            )


@dataclass(frozen=True, slots=True, repr=False)  # JsonGet's repr hides API keys
class ApiGet(JsonGet):
    """The GET of one trigger: a URL KEDA could not request either fails when polled (the
    trigger fails, the object stays Ready), and a per-trigger ``timeout`` bounds the call
    within the adapter's own."""

    format: str = "json"
    timeout: float | None = None

    async def run(self, clients: Clients) -> object:
        if not _requestable(self.url):
            raise SourceUnreachable(
                f"url {quote(self.shown_url)} cannot be requested: "
                "it must start with http:// or https:// and name a host"
            )
        if self.format == "xml":  # KEDA's Go decoder has no map target: it always fails too
            raise SourceResponseError(
                "format xml: reading XML answers is not supported (KEDA v2.20.2 cannot "
                "decode them either); serve JSON (format json)"
            )
        if self.timeout is None or self.timeout >= clients.timeout:
            return await JsonGet.run(self, clients)
        try:
            async with asyncio.timeout(self.timeout):
                return await JsonGet.run(self, clients)
        except TimeoutError as exc:
            raise SourceTimeout(
                f"{self.describe()}: no answer within the trigger's timeout {self.timeout:g}s"
            ) from exc


@dataclass(frozen=True, kw_only=True)
class MetricsApiScaler(Scaler[object]):
    """Its answer is any JSON document: ``valueLocation`` walks it as gjson would."""

    meta: Metadata
    query: ApiGet

    def measure(self, answer: object) -> float:
        location = self.meta.value_location
        try:
            found = lookup(answer, location)
        except PathNotFound as exc:
            raise SourceResponseError(f"valueLocation {quote(location)}: {exc} not found") from exc
        if isinstance(found, bool) or not isinstance(found, int | float | str):
            raise SourceResponseError(
                f"valueLocation {quote(location)} is a {type(found).__name__}, expected a number"
            )
        if isinstance(found, str):
            try:
                return parse_quantity(found)
            except ValueError as exc:
                raise SourceResponseError(f"valueLocation {quote(location)}: {exc}") from exc
        if not math.isfinite(found):
            raise SourceResponseError(f"valueLocation {quote(location)} is {found}, not a number")
        return float(found)


def _requestable(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _with_query_key(url: str, name: str, value: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: the poll says so (ApiGet.run)
        return url
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*pairs, (name, value)])))


def build(meta: Metadata) -> MetricsApiScaler:
    """The request KEDA makes: each enabled mode adds its credential. ``oauth`` adds none:
    KEDA's metrics-api scaler checks its parameters and sends no token either. ``custom``
    adds its header, which KEDA accepts but does not send (harmless where it is not needed)."""
    url, headers = meta.url, {}
    key_name = meta.key_param_name
    if meta.enabled("apiKey") and meta.api_key:
        if meta.method == "query":
            url = _with_query_key(url, key_name or "api_key", meta.api_key)
        else:
            headers[key_name or "X-API-KEY"] = meta.api_key
    if meta.enabled("custom") and meta.custom_auth_header and meta.custom_auth_value:
        headers[meta.custom_auth_header] = meta.custom_auth_value
    if meta.enabled("basic"):
        pair = f"{meta.username}:{meta.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif meta.enabled("bearer"):
        headers["Authorization"] = f"Bearer {meta.token}"
    tls = meta.enabled("tls")
    identity = HttpIdentity(
        verify=not meta.unsafe_ssl,
        ca_pem=meta.ca,
        cert_pem=meta.cert if tls else None,
        key_pem=meta.key if tls else None,
    )
    secret = (key_name or "api_key",) if meta.method == "query" else ()
    timeout = meta.timeout.total_seconds() if meta.timeout else None
    return MetricsApiScaler(
        meta=meta,
        query=ApiGet(url, tuple(sorted(headers.items())), identity, secret, meta.format, timeout),
        metric_name=normalize(f"metric-api-{meta.value_location}"),
        target=meta.target_value or 0.0,  # unset only under scalingModifiers, as in KEDA
        activation_target=meta.activation_target_value,
        value_label="value",
    )


KIND = ScalerKind(
    type_name="metrics-api",
    keda_name="metricsAPIScaler",
    metadata=Metadata,
    build=build,
    summary="A number at valueLocation in the JSON answer of an HTTP GET.",
    example=Example(
        {
            "url": "http://queue-stats.default.svc:8080/stats",
            "valueLocation": "queue.depth",
            "targetValue": "10",
            "authMode": "bearer",
        },
        {"token": "api-token"},
        source="url",
    ),
)
