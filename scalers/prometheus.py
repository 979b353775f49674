"""``prometheus``: the single value of an instant PromQL query, read from ``/api/v1/query``."""

from __future__ import annotations

import asyncio
import base64
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, SourceTimeout, quote
from scalers.params import Source, TriggerMetadata, param

_AUTH = (Source.AUTH,)
_TRIGGER_THEN_AUTH = (Source.TRIGGER, Source.AUTH)
AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
"""What KEDA's ``authModes`` accepts; of these the prometheus trigger applies only
:data:`SUPPORTED_AUTH_MODES` (KEDA silently sends ``apiKey`` and ``oauth`` without credentials)."""
SUPPORTED_AUTH_MODES = ("basic", "bearer", "custom", "tls")
_EXCLUSIVE_MODES = ("bearer", "basic", "oauth")


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    server_address: str = param("serverAddress", doc="base URL; the query goes to /api/v1/query")
    query: str = param("query", doc="PromQL that returns one series")
    threshold: float = param("threshold", gt=0)
    activation_threshold: float = param("activationThreshold", default="0")
    namespace: str | None = param(
        "namespace", optional=True, doc="sent as the namespace query parameter (Thanos)"
    )
    custom_headers: str | None = param("customHeaders", optional=True, doc="k1=v1,k2=v2")
    query_parameters: str | None = param("queryParameters", optional=True, doc="k1=v1,k2=v2")
    ignore_null_values: bool = param(
        "ignoreNullValues", default="true", doc="an empty, NaN or Inf answer reads as 0"
    )
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    timeout: str | None = param(
        "timeout", optional=True, doc="Go duration or milliseconds; bounded by the adapter's own"
    )
    auth_modes: tuple[str, ...] | None = param(
        "authModes", order=_TRIGGER_THEN_AUTH, optional=True, doc=", ".join(SUPPORTED_AUTH_MODES)
    )
    auth_mode: tuple[str, ...] | None = param(
        "authMode", order=_TRIGGER_THEN_AUTH, optional=True, doc="KEDA's alias of authModes"
    )
    bearer_token: str | None = param("bearerToken", order=_AUTH, optional=True, secret=True)
    token: str | None = param(
        "token", order=_AUTH, optional=True, doc="alias of bearerToken", secret=True
    )
    username: str | None = param("username", order=_AUTH, optional=True)
    password: str | None = param("password", order=_AUTH, optional=True, secret=True)
    ca: str | None = param("ca", order=_AUTH, optional=True, doc="PEM; trusted in any auth mode")
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    custom_auth_header: str | None = param("customAuthHeader", order=_AUTH, optional=True)
    custom_auth_value: str | None = param("customAuthValue", order=_AUTH, optional=True)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.auth_modes or self.auth_mode or ()

    @property
    def modes_name(self) -> str:
        return "authModes" if self.auth_modes else "authMode"

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.server_address.startswith(("http://", "https://")):
            yield (
                "serverAddress",
                f"{quote(self.server_address)} must start with http:// or https://",
            )
        for name, text in (
            ("customHeaders", self.custom_headers),
            ("queryParameters", self.query_parameters),
        ):
            try:
                parse_pairs(text)
            except ValueError as exc:
                yield name, str(exc)
        try:
            parse_duration(self.timeout)
        except ValueError as exc:
            yield "timeout", str(exc)
        yield from self._check_auth()

    def _check_auth(self) -> Iterator[tuple[str, str]]:
        modes, name = self.modes, self.modes_name
        unknown = [m for m in modes if m not in AUTH_MODES]
        if unknown:
            yield name, f"{quote(','.join(modes))} must be among: {', '.join(AUTH_MODES)}"
            return
        unsupported = [m for m in modes if m not in SUPPORTED_AUTH_MODES]
        if unsupported:
            yield (
                name,
                (
                    f"{quote(','.join(unsupported))} is not supported by the prometheus trigger "
                    f"(supported: {', '.join(SUPPORTED_AUTH_MODES)})"
                ),
            )
        if sum(m in _EXCLUSIVE_MODES for m in modes) > 1:
            yield name, f"{quote(','.join(modes))} may hold only one of bearer, basic, oauth"
        needed = {
            "bearer": (("bearerToken", self.bearer_token or self.token),),
            "basic": (("username", self.username),),
            "tls": (("cert", self.cert), ("key", self.key), ("ca", self.ca)),
            "custom": (
                ("customAuthHeader", self.custom_auth_header),
                ("customAuthValue", self.custom_auth_value),
            ),
        }
        for mode in modes:
            for param_name, value in needed.get(mode, ()):
                if not value:
                    yield param_name, f"is required by {name} {mode} (from the authentication)"


_PAIR_SEPARATOR = "="


def parse_pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    """KEDA's map parameters: ``k1=v1,k2=v2``; each item holds exactly one ``=``."""
    if not text:
        return ()
    pairs = []
    for item in text.split(","):
        parts = item.strip().split(_PAIR_SEPARATOR)
        if len(parts) != 2:
            raise ValueError(f"{quote(item.strip())} is not of the form key=value")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return tuple(pairs)


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | None) -> float | None:
    """KEDA's duration parameters: a Go duration (``1m30s``, ``500ms``) or milliseconds."""
    if text is None:
        return None
    if text.isdigit():
        seconds = int(text) / 1000
    else:
        parts = _GO_DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"{quote(text)} is not a duration (e.g. 5s, 1m30s, or 3000 for ms)")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return seconds or None  # KEDA: 0 means the default timeout


@dataclass(frozen=True, slots=True)
class InstantQuery:
    """``GET <server>/api/v1/query``: the same query, server, parameters and credentials
    make one request whatever the trigger; ``time`` is added when the request is made."""

    server_address: str
    promql: str
    parameters: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    identity: HttpIdentity = field(default_factory=HttpIdentity, repr=False)
    timeout: float | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.server_address.rstrip('/')}/api/v1/query"

    def url(self, now: datetime) -> str:
        # KEDA's time: RFC 3339 in UTC, whole seconds.
        query = [("query", self.promql), ("time", now.strftime("%Y-%m-%dT%H:%M:%SZ"))]
        return f"{self.endpoint}?{urlencode([*query, *self.parameters])}"

    @property
    def subject(self) -> str:
        """What messages about the answer start with: the endpoint and the query."""
        return f"{self.endpoint}: query {quote(self.promql)}"

    async def run(self, clients: Clients) -> InstantValue:
        url, headers = self.url(datetime.now(UTC)), dict(self.headers)
        try:
            async with asyncio.timeout(self.timeout):
                answer = await clients.get_json(url, headers=headers, identity=self.identity)
        except TimeoutError:
            if self.timeout is None:
                raise
            raise SourceTimeout(
                f"{self.describe()}: no answer within the trigger's timeout {self.timeout:g}s"
            ) from None
        return self.read(answer)

    def read(self, answer: object) -> InstantValue:
        """``result[0].value[1]`` of a one-series vector, as KEDA reads it; an answer with
        anything else than one series, or a sample that is not a number, is an error."""
        fields = answer if isinstance(answer, dict) else {}
        data = fields.get("data")
        if not isinstance(data, dict) or fields.get("status") == "error":
            raise self._error(f"answered without data: {str(answer)[:120]}")
        kind, result = data.get("resultType"), data.get("result")
        if kind in ("scalar", "string"):
            # KEDA decodes result as a list of series and fails on [time, value].
            raise self._error(f"returned a {kind}; wrap the query in vector() to get one series")
        if not isinstance(result, list):
            raise self._error(f"returned a result that is not a list: {str(result)[:120]}")
        if not result:
            return InstantValue(None, "returned no series")
        if len(result) > 1:
            raise self._error(f"returned {len(result)} series, expected one (aggregate it)")
        series = result[0]
        value = series.get("value") if isinstance(series, dict) else None
        if not value:  # a range vector has "values" and no "value": empty, as in KEDA
            return InstantValue(None, "returned a series without a value")
        if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], str):
            raise self._error(f"returned a malformed sample: {str(value)[:120]}")
        try:
            number = float(value[1])
        except ValueError:
            raise self._error(f"returned {quote(value[1])}, not a number") from None
        if not math.isfinite(number):
            return InstantValue(None, f"returned {value[1]}")
        return InstantValue(number)

    def _error(self, what: str) -> SourceResponseError:
        return SourceResponseError(f"{self.subject} {what}")

    def describe(self) -> str:
        return f"GET {self.endpoint}?query={self.promql}"


@dataclass(frozen=True, slots=True)
class InstantValue:
    """The one sample of an instant query's answer; or, when the answer holds none, what
    it held instead, which each trigger reads as 0 or as an error (``ignoreNullValues``)."""

    value: float | None
    instead: str = ""
    """Why there is no value: ``returned no series``, ``returned NaN``."""


@dataclass(frozen=True, kw_only=True)
class PrometheusScaler(Scaler[InstantValue]):
    meta: Metadata
    query: InstantQuery

    def measure(self, answer: InstantValue) -> float:
        if answer.value is not None:
            return answer.value
        if self.meta.ignore_null_values:
            return 0.0
        raise SourceResponseError(
            f"{self.query.subject} {answer.instead} (is the target lost?) "
            "and ignoreNullValues is false"
        )


def _headers(meta: Metadata) -> tuple[tuple[str, str], ...]:
    """customHeaders, then the credentials of the first auth mode among bearer, basic, custom
    (KEDA applies one); names are case-insensitive, so a later one replaces an earlier one."""
    headers = {name.lower(): (name, value) for name, value in parse_pairs(meta.custom_headers)}
    modes = meta.modes
    credentials: tuple[str, str] | None = None
    if "bearer" in modes:
        credentials = ("Authorization", f"Bearer {meta.bearer_token or meta.token}")
    elif "basic" in modes:
        pair = f"{meta.username}:{meta.password or ''}".encode()
        credentials = ("Authorization", "Basic " + base64.b64encode(pair).decode())
    elif "custom" in modes and meta.custom_auth_header and meta.custom_auth_value:
        credentials = (meta.custom_auth_header, meta.custom_auth_value)
    if credentials is not None:
        headers[credentials[0].lower()] = credentials
    return tuple(sorted(headers.values()))


def build(meta: Metadata) -> PrometheusScaler:
    parameters = parse_pairs(meta.query_parameters)
    if meta.namespace:
        parameters = (("namespace", meta.namespace), *parameters)
    tls = "tls" in meta.modes
    identity = HttpIdentity(
        verify=not meta.unsafe_ssl,
        ca_pem=meta.ca,
        cert_pem=meta.cert if tls else None,
        key_pem=meta.key if tls else None,
    )
    query = InstantQuery(
        server_address=meta.server_address,
        promql=meta.query,
        parameters=parameters,
        headers=_headers(meta),
        identity=identity,
        timeout=parse_duration(meta.timeout),
    )
    return PrometheusScaler(
        meta=meta,
        query=query,
        metric_name=normalize("prometheus"),
        target=meta.threshold,
        activation_target=meta.activation_threshold,
        value_label="value",
    )


KIND = ScalerKind(
    type_name="prometheus",
    keda_name="prometheusScaler",
    metadata=Metadata,
    build=build,
    summary="The one value of an instant PromQL query against Prometheus' HTTP API.",
    example=Example(
        {
            "serverAddress": "http://prometheus.monitoring.svc:9090",
            "query": 'sum(rate(http_requests_total{app="web"}[2m]))',
            "threshold": "100",
            "authModes": "bearer",
        },
        {"bearerToken": "prometheus-token"},
        source="serverAddress",
    ),
)
