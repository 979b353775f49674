"""``metrics-api``: a number read from any HTTP endpoint that answers JSON, YAML or the
Prometheus text format.

Parsed as KEDA's ``metricsAPIScaler`` parses it (its metadata and the shared
``authentication.Config``, :mod:`scalers.http_auth`), and ``valueLocation`` applied to
each format as KEDA's ``GetValueFromResponse`` does (:mod:`scalers.yaml_document`,
:mod:`scalers.prometheus_text`). What KEDA only finds out when it polls (a ``url`` it
cannot request, ``format: xml``) fails the trigger when we poll, never the object.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from scalers import prometheus_text, yaml_document
from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import JsonGet
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.http_auth import HttpAuth
from scalers.jsonpath import PathNotFound, lookup
from scalers.params import param
from scalers.quantity import parse_quantity

if TYPE_CHECKING:
    from scalers.clients import Clients

T = TypeVar("T")


@dataclass(frozen=True)
class Metadata(HttpAuth):
    url: str = param("url", doc="http(s) URL; any other fails the trigger when it is polled")
    value_location: str = param(
        "valueLocation",
        doc="json: a gjson path; yaml: keys and list indexes split at dots; "
        'prometheus: a metric selector, name{label="value"}',
    )
    target_value: float | None = param(
        "targetValue", gt=0, target=True, doc="optional when it feeds a scalingModifiers formula"
    )
    activation_target_value: float = param("activationTargetValue", default="0")
    format: str = param(
        "format",
        default="json",
        enum=("json", "prometheus", "xml", "yaml"),
        doc="xml fails when polled, as in KEDA",
    )
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

    def check(self) -> Iterator[tuple[str, str]]:
        yield from self.auth_problems()
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
    requestable: bool = field(default=True, compare=False)
    """Whether :attr:`url` can be requested at all: found once when built (parsing a URL
    costs ~12 us, on every poll of every trigger otherwise)."""

    async def run(self, clients: Clients) -> object:
        """The answer decoded by its format: a JSON or YAML document, or the families of
        a Prometheus exposition; an answer that does not decode fails the poll."""
        if not self.requestable:
            raise SourceUnreachable(
                f"url {quote(self.shown_url)} cannot be requested: "
                "it must start with http:// or https:// and name a host"
            )
        if self.format == "xml":  # KEDA's Go decoder has no map target: it always fails too
            raise SourceResponseError(
                "format xml: reading XML answers is not supported (KEDA v2.20.2 cannot "
                "decode them either); serve JSON (format json)"
            )
        if self.format == "json":
            return await self._bounded(clients, JsonGet.run(self, clients))
        body = await self._bounded(
            clients,
            clients.get_bytes(
                self.url,
                headers=dict(self.headers),
                identity=self.identity,
                shown=self.shown_url,
                sent=self.sent,
            ),
        )
        # Decoded as Go does: invalid UTF-8 is kept (as lone surrogates) for the parsers
        # to refuse where Go's would, and KEDA ends the exposition with a newline itself.
        text = body.decode("utf-8", "surrogateescape")
        try:
            if self.format == "yaml":
                return yaml_document.parse(text)
            return prometheus_text.parse_families(text.replace("\r\n", "\n"))
        except ValueError as exc:
            raise SourceResponseError(
                f"{self.describe()}: answer is not {_FORMAT_NAMES[self.format]}: {exc}"
            ) from exc

    async def _bounded(self, clients: Clients, call: Awaitable[T]) -> T:
        """``call`` within the trigger's ``timeout`` when it is shorter than the adapter's."""
        if self.timeout is None or self.timeout >= clients.timeout:
            return await call
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except TimeoutError as exc:
            raise SourceTimeout(
                f"{self.describe()}: no answer within the trigger's timeout {self.timeout:g}s"
            ) from exc


_FORMAT_NAMES = {"yaml": "YAML", "prometheus": "the Prometheus text format"}


@dataclass(frozen=True, kw_only=True)
class MetricsApiScaler(Scaler[object]):
    """Its answer is decoded by :class:`ApiGet`; ``valueLocation`` is applied to it as
    KEDA applies it to each format."""

    meta: Metadata
    query: ApiGet

    def measure(self, answer: object) -> float:
        location = self.meta.value_location
        if self.meta.format == "prometheus":
            return self._from_exposition(answer)
        if self.meta.format == "yaml":
            try:
                found = yaml_document.value_at(answer, location)  # type: ignore[arg-type]
            except yaml_document.PathError as exc:
                raise SourceResponseError(f"valueLocation {quote(location)}: {exc}") from exc
            if isinstance(found, int) and not isinstance(found, bool) and found >= 2**63:
                # yaml.v3 decodes it as a uint64, a type KEDA does not read
                raise SourceResponseError(
                    f"valueLocation {quote(location)} is {found}, beyond a 64-bit integer"
                )
        else:
            try:
                found = lookup(answer, location)
            except PathNotFound as exc:
                raise SourceResponseError(
                    f"valueLocation {quote(location)}: {exc} not found"
                ) from exc
        return _number(found, location)

    def _from_exposition(self, answer: object) -> float:
        location = self.meta.value_location
        try:
            selector = prometheus_text.parse_selector(location)
        except ValueError as exc:
            raise SourceResponseError(
                f"valueLocation {quote(location)} is not a Prometheus metric selector: {exc}"
            ) from exc
        assert isinstance(answer, dict)
        try:
            value = prometheus_text.find_value(answer, selector)
        except LookupError as exc:
            raise SourceResponseError(f"valueLocation {quote(location)}: {exc}") from exc
        return _number(value, location)


def _number(found: object, location: str) -> float:
    """A number as KEDA reads one: a string is a Kubernetes quantity; NaN and infinities
    are errors (KEDA would serve them)."""
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
    custom = meta.custom_header()
    if meta.enabled("custom") and custom is not None:
        headers[custom[0]] = custom[1]
    if meta.enabled("basic"):
        headers["Authorization"] = meta.basic_authorization()
    elif meta.enabled("bearer"):
        headers["Authorization"] = meta.bearer_authorization()
    identity = meta.http_identity(meta.unsafe_ssl)
    secret = (key_name or "api_key",) if meta.method == "query" else ()
    timeout = meta.timeout.total_seconds() if meta.timeout else None
    return MetricsApiScaler(
        meta=meta,
        query=ApiGet(
            url,
            tuple(sorted(headers.items())),
            identity,
            secret,
            meta.format,
            timeout,
            requestable=_requestable(url),
        ),
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
    summary="A number at valueLocation in the JSON, YAML or Prometheus text answer of an HTTP GET.",
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
