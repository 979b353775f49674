"""``nats-jetstream``: consumer lag read from the server's ``/jsz`` monitoring endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from scalers.base import ScalerKind, normalize
from scalers.clients import HttpIdentity, JsonGet
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

_AUTH_FIRST = (Source.AUTH, Source.TRIGGER)


@dataclass(frozen=True)
class Metadata:
    endpoint: str = param(
        "natsServerMonitoringEndpoint", order=_AUTH_FIRST, doc="host:port of the monitoring port"
    )
    account: str | None = param("account", order=_AUTH_FIRST, optional=True)
    account_id: str | None = param("accountID", order=_AUTH_FIRST, optional=True)
    stream: str = param("stream")
    consumer: str = param("consumer")
    lag_threshold: int = param("lagThreshold", default="10", gt=0)
    activation_lag_threshold: int = param("activationLagThreshold", default="0")
    use_https: bool = param("useHttps", default="false")

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.account and not self.account_id:
            yield "account", "is required (or accountID); without accounts configured it is $G"


@dataclass(frozen=True)
class NatsJetStreamScaler:
    meta: Metadata
    query: JsonGet

    @property
    def metric_name(self) -> str:
        return normalize(f"nats-jetstream-{self.meta.stream}")

    @property
    def target(self) -> float:
        return float(self.meta.lag_threshold)

    @property
    def activation_target(self) -> float:
        return float(self.meta.activation_lag_threshold)

    @property
    def value_label(self) -> str:
        return "lag"

    def measure(self, answer: Any) -> float:
        """``num_pending + num_ack_pending`` of the consumer, as KEDA computes lag."""
        consumer = _find_consumer(answer, self.meta)
        try:
            return float(int(consumer["num_pending"]) + int(consumer["num_ack_pending"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceResponseError(
                f"consumer {quote(self.meta.consumer)}: /jsz lacks num_pending/num_ack_pending"
            ) from exc


def _find_consumer(answer: Any, meta: Metadata) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise SourceResponseError("/jsz answer is not a JSON object")
    account_id = meta.account_id or meta.account
    # nats-server >= 2.10.14 omits account_details for an unknown account: not found, not zero.
    for account in _dicts(answer.get("account_details")):
        if account.get("id") == account_id or account.get("name") == meta.account:
            for stream in _dicts(account.get("stream_detail")):
                if stream.get("name") == meta.stream:
                    for consumer in _dicts(stream.get("consumer_detail")):
                        if consumer.get("name") == meta.consumer:
                            return consumer
                    raise SourceResponseError(
                        f"consumer {quote(meta.consumer)} not found in stream {quote(meta.stream)}"
                    )
            raise SourceResponseError(
                f"stream {quote(meta.stream)} not found in account {quote(account_id)}"
            )
    raise SourceResponseError(f"account {quote(account_id)} not found at {meta.endpoint}")


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def build(meta: Metadata) -> NatsJetStreamScaler:
    scheme = "https" if meta.use_https else "http"
    account = meta.account_id or meta.account or ""
    query = urlencode({"acc": account, "config": "true", "consumers": "true"})
    url = f"{scheme}://{meta.endpoint}/jsz?{query}"
    return NatsJetStreamScaler(meta, JsonGet(url, identity=HttpIdentity()))


KIND = ScalerKind(
    type_name="nats-jetstream",
    keda_name="natsJetStreamScaler",
    metadata=Metadata,
    build=build,
    summary="Consumer lag (num_pending + num_ack_pending) of a NATS JetStream consumer.",
)
