"""``metrics-api``: a number read from any HTTP endpoint that answers JSON."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import HttpIdentity, JsonGet
from scalers.errors import SourceResponseError, quote
from scalers.jsonpath import PathNotFound, lookup
from scalers.params import Source, TriggerMetadata, param
from scalers.quantity import parse_quantity

_AUTH = (Source.AUTH,)


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    url: str = param("url")
    value_location: str = param("valueLocation", doc="gjson path to the number")
    target_value: float | None = param(
        "targetValue", gt=0, target=True, doc="optional when it feeds a scalingModifiers formula"
    )
    activation_target_value: float = param("activationTargetValue", default="0")
    format: str = param("format", default="json", enum=("json",))
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    auth_mode: str | None = param(
        "authMode",
        order=(Source.TRIGGER, Source.AUTH),
        optional=True,
        enum=("apiKey", "basic", "bearer", "tls"),
    )
    method: str = param("method", default="header", enum=("header", "query"))
    key_param_name: str | None = param("keyParamName", optional=True)
    api_key: str | None = param("apiKey", order=_AUTH, optional=True, secret=True)
    username: str | None = param("username", order=_AUTH, optional=True)
    password: str | None = param("password", order=_AUTH, optional=True, secret=True)
    token: str | None = param("token", order=_AUTH, optional=True, secret=True)
    ca: str | None = param("ca", order=_AUTH, optional=True)
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.url.startswith(("http://", "https://")):
            yield "url", f"{quote(self.url)} must start with http:// or https://"
        required = {
            "apiKey": (("apiKey", self.api_key),),
            "basic": (("username", self.username),),
            "bearer": (("token", self.token),),
            "tls": (("cert", self.cert), ("key", self.key)),
        }
        for name, value in required.get(self.auth_mode or "", ()):
            if not value:
                yield name, f"is required by authMode {self.auth_mode} (from the authentication)"


@dataclass(frozen=True, kw_only=True)
class MetricsApiScaler(Scaler[object]):
    """Its answer is any JSON document: ``valueLocation`` walks it as gjson would."""

    meta: Metadata
    query: JsonGet

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


def build(meta: Metadata) -> MetricsApiScaler:
    url, headers = meta.url, {}
    if meta.auth_mode == "apiKey" and meta.api_key:
        if meta.method == "query":
            parts = urlsplit(url)
            params = [
                *parse_qsl(parts.query, keep_blank_values=True),
                (meta.key_param_name or "api_key", meta.api_key),
            ]
            url = urlunsplit(parts._replace(query=urlencode(params)))
        else:
            headers[meta.key_param_name or "X-API-KEY"] = meta.api_key
    elif meta.auth_mode == "basic":
        pair = f"{meta.username}:{meta.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif meta.auth_mode == "bearer":
        headers["Authorization"] = f"Bearer {meta.token}"
    identity = HttpIdentity(
        verify=not meta.unsafe_ssl,
        ca_pem=meta.ca,
        cert_pem=meta.cert if meta.auth_mode == "tls" else None,
        key_pem=meta.key if meta.auth_mode == "tls" else None,
    )
    secret = (meta.key_param_name or "api_key",) if meta.method == "query" else ()
    return MetricsApiScaler(
        meta=meta,
        query=JsonGet(url, tuple(sorted(headers.items())), identity, secret),
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
