"""``prometheus``: the single value of an instant PromQL query, read from ``/api/v1/query``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from scalers import aws_auth
from scalers.aws_sigv4 import SigV4, canonical_query
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable, quote
from scalers.http_auth import HttpAuth
from scalers.params import Source, param

_EITHER = (Source.TRIGGER, Source.AUTH)


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth, HttpAuth):
    """KEDA's ``prometheusMetadata`` with its ``authentication.Config``, and the AWS
    identity (``awsRegion``, ``identityOwner``, keys, role) that signs for Amazon Managed
    Prometheus when no authModes are given."""

    server_address: str = param(
        "serverAddress",
        doc="http(s) base URL (any other fails when polled); queries go to /api/v1/query",
    )
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
    timeout: timedelta | None = param(  # noqa: RUF009 (a frozen value)
        "timeout", optional=True, doc="Go duration or milliseconds; bounded by the adapter's own"
    )
    aws_region: str | None = param(
        "awsRegion",
        order=_EITHER,
        optional=True,
        doc="with an AWS identity and no authModes: SigV4 (Amazon Managed Prometheus)",
    )

    def check(self) -> Iterator[tuple[str, str]]:
        for name, text in (
            ("customHeaders", self.custom_headers),
            ("queryParameters", self.query_parameters),
        ):
            try:
                parse_pairs(text)
            except ValueError as exc:
                yield name, str(exc)
        yield from self.auth_problems()

    def identity_problems(self) -> Iterator[tuple[str, str]]:
        """KEDA's ``checkAuthConfigWithPodIdentity``; an AWS identity is never required."""
        pod = self.pod_identity
        if pod is not None and self.modes:
            yield (
                "authModes",
                f"{quote(','.join(self.modes))} cannot be used with the authentication's "
                f"podIdentity (provider {pod.provider}): give one or the other",
            )


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
    signer: SigV4 | None = None
    """Amazon Managed Prometheus: each request signed with SigV4, as its identity."""

    @property
    def endpoint(self) -> str:
        return f"{self.server_address.rstrip('/')}/api/v1/query"

    def url(self, now: datetime) -> str:
        # KEDA's time: RFC 3339 in UTC, whole seconds.
        query = [("query", self.promql), ("time", now.strftime("%Y-%m-%dT%H:%M:%SZ"))]
        pairs = [*query, *self.parameters]
        encoded = canonical_query(pairs) if self.signer else urlencode(pairs)
        return f"{self.endpoint}?{encoded}"

    @property
    def subject(self) -> str:
        """What messages about the answer start with: the endpoint and the query."""
        return f"{self.endpoint}: query {quote(self.promql)}"

    async def run(self, clients: Clients) -> InstantValue:
        if not self.server_address.startswith(("http://", "https://")):
            # KEDA builds the trigger and fails each request: the object stays ready.
            raise SourceUnreachable(
                f"{self.describe()}: serverAddress {quote(self.server_address)} must start "
                "with http:// or https://"
            )
        url, headers = self.url(datetime.now(UTC)), dict(self.headers)
        try:
            async with asyncio.timeout(self.timeout):
                if self.signer is not None:
                    headers = await self.signer.headers(clients, "GET", url, headers)
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
    credentials: tuple[str, str] | None = None
    if meta.enabled("bearer"):
        credentials = ("Authorization", meta.bearer_authorization())
    elif meta.enabled("basic"):
        credentials = ("Authorization", meta.basic_authorization())
    elif meta.enabled("custom"):
        credentials = meta.custom_header()
    if credentials is not None:
        headers[credentials[0].lower()] = credentials
    return tuple(sorted(headers.values()))


def _signer(meta: Metadata) -> SigV4 | None:
    """KEDA signs with SigV4 when no authModes are given and its ``GetAwsAuthorization``
    finds an AWS identity: a podIdentity aws, a role, keys, or an identityOwner other than
    pod (``operator``): the region is ``awsRegion``, needed when a request is signed."""
    if meta.modes:
        return None
    authorization = meta.authorization()
    if authorization is None:
        return None
    return SigV4(authorization.identity(meta.aws_region or ""))


def build(meta: Metadata) -> PrometheusScaler:
    parameters = parse_pairs(meta.query_parameters)
    if meta.namespace:
        parameters = (("namespace", meta.namespace), *parameters)
    query = InstantQuery(
        server_address=meta.server_address,
        promql=meta.query,
        parameters=parameters,
        headers=_headers(meta),
        identity=meta.http_identity(meta.unsafe_ssl),
        timeout=meta.timeout.total_seconds() if meta.timeout else None,
        signer=_signer(meta),
    )
    return PrometheusScaler(
        meta=meta,
        query=query,
        metric_name=normalize("prometheus"),
        target=meta.threshold,
        activation_target=meta.activation_threshold,
        value_label="value",
    )


KIND = aws_auth.AwsKind(
    type_name="prometheus",
    keda_name="prometheusScaler",
    metadata=Metadata,
    build=build,
    summary="The one value of an instant PromQL query against Prometheus' HTTP API; "
    "authModes apiKey and oauth are checked and send nothing, as in KEDA.",
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
