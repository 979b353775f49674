"""``external``: a user's gRPC scaler speaking KEDA's ``externalscaler.ExternalScaler``.

KEDA hands the scaler the ScaledObject's name, namespace and the trigger's whole metadata
(``ScaledObjectRef``); the scaler names the metric and its HPA target (``GetMetricSpec``),
gives the value (``GetMetrics``) and says whether the target should be active
(``IsActive``). Metadata as KEDA's ``externalScalerMetadata``: ``scalerAddress``,
``enableTLS`` and ``unsafeSsl`` from the trigger, ``caCert``, ``tlsClientCert`` and
``tlsClientKey`` from the authentication only (never passed to the scaler); every trigger
metadata key is passed, ``<key>FromEnv`` with the variable's value (dropped when unset or
empty), as KEDA does.

Where we deliberately differ from KEDA:

- ``GetMetricSpec`` is asked once each time the trigger is built (:meth:`ExternalScaler.settle`,
  when the ScaledObject or what it reads changes), not before every poll as KEDA's scale loop
  does; the metric name and target of the HPA come from that answer.
- Only the first ``MetricSpec`` is used (KEDA makes one HPA metric of each): one trigger,
  one metric. An empty list, an empty name or a target not above zero is an error.
- Several ``MetricValue`` s are summed, as the HPA sums the items KEDA serves; none is an
  error, never a zero.
- ``unsafeSsl`` with TLS is refused: grpcio cannot skip certificate verification. Give the
  scaler's CA as ``caCert`` instead. Half a client pair is refused too (KEDA ignores it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from scalers.base import Example, Measurement, Scaler, ScalerKind
from scalers.clients import Clients
from scalers.errors import Problems, SourceResponseError, quote
from scalers.external_client import Endpoint, Ref, call
from scalers.params import Source, TriggerInputs, TriggerMetadata, param, parse_params
from scalers.protos import externalscaler_pb2 as pb

_AUTH = (Source.AUTH,)
UNSETTLED_TARGET = 1.0
"""The target of a trigger whose scaler was not asked for its spec yet (never served)."""


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    """KEDA's ``externalScalerMetadata``; the ScaledObject and the metadata passed on are
    added by :class:`Kind` (they are no parameters)."""

    PASSES_METADATA: ClassVar[bool] = True
    """Every metadata key goes to the scaler (``scalerMetadata``): none is ignored."""

    scaler_address: str = param("scalerAddress", doc="host:port of the gRPC scaler")
    enable_tls: bool = param("enableTLS", default="false")
    unsafe_ssl: bool = param("unsafeSsl", default="false", doc="refused with TLS")
    ca_cert: str | None = param("caCert", order=_AUTH, optional=True, doc="PEM; enables TLS")
    tls_client_cert: str | None = param(
        "tlsClientCert", order=_AUTH, optional=True, doc="PEM, with tlsClientKey; enables TLS"
    )
    tls_client_key: str | None = param(
        "tlsClientKey", order=_AUTH, optional=True, secret=True, doc="PEM, with tlsClientCert"
    )
    ref: Ref = dataclasses.field(default=Ref("", ""), repr=False)

    @property
    def uses_tls(self) -> bool:
        """KEDA's rule: ``enableTLS``, a client pair or a CA."""
        return self.enable_tls or bool(
            (self.tls_client_cert and self.tls_client_key) or self.ca_cert
        )

    def check(self) -> Iterator[tuple[str, str]]:
        if bool(self.tls_client_cert) != bool(self.tls_client_key):
            given, missing = (
                ("tlsClientCert", "tlsClientKey")
                if self.tls_client_cert
                else ("tlsClientKey", "tlsClientCert")
            )
            yield missing, f"is required with {given} (from the authentication)"
        if self.uses_tls and self.unsafe_ssl:
            yield (
                "unsafeSsl",
                "true is not supported with TLS: grpcio cannot skip certificate verification; "
                "give the scaler's CA as caCert (in the authentication)",
            )
        if any(c.isspace() for c in self.scaler_address):
            yield "scalerAddress", f"{quote(self.scaler_address)} is not host:port"

    def endpoint(self) -> Endpoint:
        if not self.uses_tls:
            return Endpoint(self.scaler_address)
        return Endpoint(
            self.scaler_address,
            tls=True,
            ca_pem=self.ca_cert,
            cert_pem=self.tls_client_cert,
            key_pem=self.tls_client_key,
        )


def passed_metadata(metadata: Mapping[str, str], resolved_env: Mapping[str, str]) -> dict[str, str]:
    """What KEDA passes as ``scalerMetadata``: every trigger metadata key; a ``<key>FromEnv``
    key carries the variable's value instead of its name, and is left out when the
    variable is unset or empty."""
    passed: dict[str, str] = {}
    for key, value in metadata.items():
        if key.endswith("FromEnv"):
            if resolved_env.get(value):
                passed[key] = resolved_env[value]
        else:
            passed[key] = value
    return passed


@dataclass(frozen=True, slots=True)
class Spec:
    """The first ``MetricSpec`` of a ``GetMetricSpec`` answer."""

    metric_name: str
    target: float


@dataclass(frozen=True, slots=True)
class SpecQuery:
    """``GetMetricSpec`` for one ScaledObjectRef."""

    endpoint: Endpoint
    ref: Ref

    async def run(self, clients: Clients) -> Spec:
        what = f"GetMetricSpec for {self.ref} at {self.endpoint}"
        answer = await call(
            clients,
            self.endpoint,
            "GetMetricSpec",
            self.ref.message(),
            pb.GetMetricSpecResponse.FromString,
            what,
        )
        if not answer.metricSpecs:
            raise SourceResponseError(f"{what}: the answer has no metric spec")
        first = answer.metricSpecs[0]
        if not first.metricName:
            raise SourceResponseError(f"{what}: the metric spec has no metricName")
        target = first.targetSizeFloat if first.targetSizeFloat > 0 else float(first.targetSize)
        if not target > 0:
            raise SourceResponseError(
                f"{what}: metric {quote(first.metricName)}: the target must be above 0 "
                f"(targetSize {first.targetSize}, targetSizeFloat {first.targetSizeFloat:g})"
            )
        return Spec(first.metricName, target)

    def describe(self) -> str:
        return f"GetMetricSpec for {self.ref} at {self.endpoint}"


@dataclass(frozen=True, slots=True)
class Values:
    """A ``GetMetrics`` answer's values and the ``IsActive`` answer asked with it."""

    values: tuple[float, ...]
    active: bool


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """``GetMetrics`` then ``IsActive`` (as KEDA asks them), shared by every trigger with the
    same endpoint, ScaledObjectRef and metric. Before :meth:`ExternalScaler.settle` the
    metric is unknown (``None``) and ``GetMetricSpec`` is asked first, as KEDA asks it."""

    endpoint: Endpoint
    ref: Ref
    metric_name: str | None = None

    async def run(self, clients: Clients) -> Values:
        metric = self.metric_name
        if metric is None:
            metric = (await SpecQuery(self.endpoint, self.ref).run(clients)).metric_name
        what = f"GetMetrics {quote(metric)} for {self.ref} at {self.endpoint}"
        request = pb.GetMetricsRequest(scaledObjectRef=self.ref.message(), metricName=metric)
        metrics = await call(
            clients, self.endpoint, "GetMetrics", request, pb.GetMetricsResponse.FromString, what
        )
        if not metrics.metricValues:
            raise SourceResponseError(f"{what}: the answer has no metric value")
        values = tuple(
            v.metricValueFloat if v.metricValueFloat > 0 else float(v.metricValue)
            for v in metrics.metricValues
        )
        active = await call(
            clients,
            self.endpoint,
            "IsActive",
            self.ref.message(),
            pb.IsActiveResponse.FromString,
            f"IsActive for {self.ref} at {self.endpoint}",
        )
        return Values(values, active.result)

    def describe(self) -> str:
        metric = "(from GetMetricSpec)" if self.metric_name is None else quote(self.metric_name)
        return f"GetMetrics {metric} and IsActive for {self.ref} at {self.endpoint}"


@dataclass(frozen=True, kw_only=True)
class ExternalScaler(Scaler[Values]):
    """Active when the scaler's ``IsActive`` says so (KEDA's rule for this type, whatever the
    value): the activity is 1 or 0 against an activation target of 0."""

    meta: Metadata
    query: MetricsQuery

    def measure(self, answer: Values) -> Measurement:
        return Measurement(sum(answer.values), 1.0 if answer.active else 0.0)

    @property
    def settled(self) -> bool:
        return self.query.metric_name is not None

    async def settle(self, clients: Clients) -> Self:
        """This trigger with its metric name and target from the scaler's ``GetMetricSpec``:
        asked once per build, so its answer names the HPA's metric and sets its target."""
        spec = await SpecQuery(self.query.endpoint, self.query.ref).run(clients)
        return dataclasses.replace(
            self,
            metric_name=spec.metric_name,
            target=spec.target,
            query=dataclasses.replace(self.query, metric_name=spec.metric_name),
        )


def build(meta: Metadata) -> ExternalScaler:
    return ExternalScaler(
        meta=meta,
        query=MetricsQuery(meta.endpoint(), meta.ref),
        metric_name="external",  # KEDA's name is the scaler's: settle() sets it
        target=UNSETTLED_TARGET,
        activation_target=0.0,
        value_label="value",
    )


@dataclass(frozen=True, slots=True)
class Kind(ScalerKind[Metadata]):
    """Adds what KEDA puts in the ``ScaledObjectRef`` beside the parsed parameters: the
    object's name and namespace, and the trigger's metadata."""

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        meta = parse_params(self.metadata, inputs, problems)
        if meta is None:
            return None
        passed = passed_metadata(inputs.metadata, inputs.resolved_env)
        ref = Ref.of(inputs.name or "", inputs.namespace or "", passed)
        return self.build(dataclasses.replace(meta, ref=ref))


EXAMPLE = Example(
    {"scalerAddress": "external-scaler.default.svc:6000", "queue": "orders"},
    source="scalerAddress",
)

GUIDE = """
### Pointing an existing external scaler at metrics-adapter

Nothing changes on the scaler's side: it keeps serving KEDA's `externalscaler.ExternalScaler`
(our `scalers/protos/externalscaler.proto` has KEDA's package, service, messages and field
numbers), and the trigger keeps its YAML.

1. Leave the scaler's Deployment and Service as they are. Its `scalerAddress`
   (`<service>.<namespace>.svc:<port>`) must be reachable from the adapter's pods: allow that
   egress where a NetworkPolicy restricts them.
2. TLS stays as in KEDA: `caCert`, `tlsClientCert` and `tlsClientKey` from the trigger's
   TriggerAuthentication (one of them, or `enableTLS: "true"`, turns TLS on; with
   `enableTLS` alone the system's roots verify the scaler). `unsafeSsl` with TLS is refused:
   give the scaler's CA as `caCert` instead.
3. Check it before the switch: `metrics-adapter explain --namespace <ns> --poll`, run where
   the scaler can be reached, asks it as the adapter will and prints each trigger's value
   and activity, or the scaler's error, by object.

What the scaler sees, compared with KEDA:

- every call carries the same `ScaledObjectRef`: the ScaledObject's name and namespace and
  the trigger's metadata, `<key>FromEnv` keys with the variable's value;
- `GetMetricSpec` is called when the object (or what it reads) changes, not before every
  poll; its first `MetricSpec` names the HPA's metric and sets its target;
- `GetMetrics` then `IsActive` once per `pollingInterval` per ScaledObject and metric, however
  many reads of the HPA there are; every call has a deadline (`--scaler-timeout`), and an
  error is the trigger's error, never a zero;
- `external-push`: `StreamIsActive` is held open while the target is idle (at zero or below
  activation) and reopened with backoff when it drops; a `true` polls the trigger at once
  and its `IsActive` answer activates the target, a `false` changes nothing (as in KEDA, only
  a poll deactivates);
- one gRPC channel per `scalerAddress` and TLS identity, shared by every trigger on it.
"""

KIND = Kind(
    type_name="external",
    keda_name="externalScaler",
    metadata=Metadata,
    build=build,
    summary="A gRPC scaler of your own (KEDA's external scaler protocol): its metric and "
    "target from GetMetricSpec, its value from GetMetrics, activity from IsActive.",
    example=EXAMPLE,
    guide=GUIDE,
)
