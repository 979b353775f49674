"""``nats-jetstream``: consumer lag read from the server's ``/jsz`` monitoring endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from scalers.base import ScalerKind, normalize
from scalers.clients import Clients, HttpIdentity
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
    query: JszQuery

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

    def measure(self, answer: JszAnswer) -> float:
        """``num_pending + num_ack_pending`` of the consumer, read from its leader."""
        consumer = self._leaders_view(answer)
        try:
            return float(int(consumer["num_pending"]) + int(consumer["num_ack_pending"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceResponseError(
                f"consumer {quote(self.meta.consumer)}: /jsz lacks num_pending/num_ack_pending"
            ) from exc

    def _leaders_view(self, answer: JszAnswer) -> dict[str, Any]:
        first = _find_consumer(next(iter(answer.docs.values())), self.meta)
        if not answer.clustered:
            return first
        leader = (first.get("cluster") or {}).get("leader")
        if leader not in answer.docs:
            raise SourceResponseError(
                f"leader node {quote(leader)} not found for consumer {quote(self.meta.consumer)}"
                f" (nodes answering: {', '.join(sorted(answer.docs))})"
            )
        view = _find_consumer(answer.docs[leader], self.meta)
        # During a handover a follower may already name the new leader while the new
        # leader's own state is not settled: only a leader that agrees it leads is read.
        if (view.get("cluster") or {}).get("leader") != leader:
            raise SourceResponseError(
                f"leadership of consumer {quote(self.meta.consumer)} is moving to "
                f"{quote(leader)}, which does not lead it yet"
            )
        return view


def _find_consumer(doc: Any, meta: Metadata) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SourceResponseError("/jsz answer is not a JSON object")
    account_id = meta.account_id or meta.account
    # nats-server >= 2.10.14 omits account_details for an unknown account: not found, not zero.
    for account in _dicts(doc.get("account_details")):
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


@dataclass(frozen=True, slots=True)
class JszAnswer:
    """``/jsz`` of the endpoint, and in a cluster of every node, by server name."""

    docs: dict[str, Any]
    clustered: bool


@dataclass(frozen=True)
class JszQuery:
    """One account's ``/jsz`` at one monitoring endpoint: shared by all its consumers.

    In a cluster only a consumer's leader reports its lag accurately (KEDA #3860), and
    each consumer may have a different leader, so a poll reads ``/jsz`` from every node
    (plus the endpoint's ``/varz`` for the membership): N + 1 requests for N nodes however
    many triggers, and a moved leader is followed on the next poll.
    """

    endpoint: str
    account: str
    use_https: bool = False
    _names: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """server_id -> server_name, learnt once from each node's /varz."""

    @property
    def scheme(self) -> str:
        return "https" if self.use_https else "http"

    def _jsz(self, host: str) -> str:
        query = urlencode({"acc": self.account, "config": "true", "consumers": "true"})
        return f"{self.scheme}://{host}/jsz?{query}"

    async def _get(self, clients: Clients, url: str) -> Any:
        return await clients.get_json(url, headers={}, identity=HttpIdentity())

    async def run(self, clients: Clients) -> JszAnswer:
        doc = await self._get(clients, self._jsz(self.endpoint))
        meta_cluster = doc.get("meta_cluster") if isinstance(doc, dict) else None
        size = meta_cluster.get("cluster_size", 0) if isinstance(meta_cluster, dict) else 0
        if not isinstance(size, int) or size <= 1:
            return JszAnswer({"": doc}, clustered=False)
        varz = await self._get(clients, f"{self.scheme}://{self.endpoint}/varz")
        peers = _peer_hosts(varz, self.endpoint)
        found = await asyncio.gather(*(self._get(clients, self._jsz(host)) for host in peers))
        docs: dict[str, Any] = {await self._name(clients, self.endpoint, doc, varz): doc}
        for host, node_doc in zip(peers, found, strict=True):
            docs[await self._name(clients, host, node_doc, None)] = node_doc
        return JszAnswer(docs, clustered=True)

    async def _name(self, clients: Clients, host: str, doc: Any, varz: Any) -> str:
        """The server name behind ``doc``, matched by server_id, so a load-balanced endpoint
        that answered /jsz and /varz from two nodes cannot mislabel a follower as leader."""
        server_id = doc.get("server_id") if isinstance(doc, dict) else None
        if not isinstance(server_id, str):
            raise SourceResponseError(f"/jsz at {host} has no server_id")
        if server_id not in self._names:
            if not isinstance(varz, dict) or varz.get("server_id") != server_id:
                varz = await self._get(clients, f"{self.scheme}://{host}/varz")
            if not isinstance(varz, dict) or varz.get("server_id") != server_id:
                raise SourceResponseError(f"{host} answered /jsz and /varz from different servers")
            self._names[server_id] = str(varz.get("server_name") or server_id)
        return self._names[server_id]

    def describe(self) -> str:
        return f"GET {self._jsz(self.endpoint)}"


def _peer_hosts(varz: Any, endpoint: str) -> list[str]:
    """Monitoring host:port of every other node, found as KEDA finds them: the hosts of
    ``connect_urls`` with the endpoint's monitoring port, else ``<node>.<endpoint>`` for the
    first DNS label of each route URL (nodes behind a headless Service)."""
    if not isinstance(varz, dict):
        raise SourceResponseError("/varz answer is not a JSON object")
    own, _, port = endpoint.rpartition(":")
    urls = [u for u in varz.get("connect_urls") or [] if isinstance(u, str)]
    if urls:
        hosts = {u.rpartition(":")[0] for u in urls} - {own}
        return sorted(f"{host}:{port}" for host in hosts)
    cluster = varz.get("cluster") if isinstance(varz.get("cluster"), dict) else {}
    routes = [str(u) for u in (cluster or {}).get("urls") or []]
    return sorted({f"{route.split('.')[0]}.{endpoint}" for route in routes})


def build(meta: Metadata) -> NatsJetStreamScaler:
    account = meta.account_id or meta.account or ""
    return NatsJetStreamScaler(meta, JszQuery(meta.endpoint, account, meta.use_https))


KIND = ScalerKind(
    type_name="nats-jetstream",
    keda_name="natsJetStreamScaler",
    metadata=Metadata,
    build=build,
    summary="Consumer lag (num_pending + num_ack_pending) of a NATS JetStream consumer.",
)
