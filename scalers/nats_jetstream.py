"""``nats-jetstream``: consumer lag read from the server's ``/jsz`` monitoring endpoint.

``/jsz`` (and in a cluster ``/varz``) is decoded where it arrives, into frozen types named
as in nats-server; :meth:`NatsJetStreamScaler.measure` finds its consumer in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, TriggerMetadata, param
from scalers.wake import Wake
from scalers.wake_nats import NatsWatch, StreamTopic

_AUTH_FIRST = (Source.AUTH, Source.TRIGGER)


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
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


# /jsz and /varz, decoded at the edge: the names are nats-server's (server/monitor.go).


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    name: str
    num_pending: int | None
    num_ack_pending: int | None
    """The counts are ``None`` when missing or not a count: an error for the triggers that
    read this consumer, not for every trigger sharing the account's ``/jsz``."""
    leader: str | None
    """``cluster.leader``: the server that leads the consumer (in a cluster)."""

    @classmethod
    def read(cls, doc: _Object) -> ConsumerInfo:
        cluster = doc.optional_object("cluster")
        return cls(
            name=doc.text("name"),
            num_pending=doc.count("num_pending"),
            num_ack_pending=doc.count("num_ack_pending"),
            leader=cluster.optional_text("leader") if cluster else None,
        )


@dataclass(frozen=True, slots=True)
class StreamDetail:
    name: str
    consumers: tuple[ConsumerInfo, ...]

    @classmethod
    def read(cls, doc: _Object) -> StreamDetail:
        consumers = tuple(ConsumerInfo.read(c) for c in doc.objects("consumer_detail"))
        return cls(doc.text("name"), consumers)


@dataclass(frozen=True, slots=True)
class AccountDetail:
    id: str | None
    name: str | None
    streams: tuple[StreamDetail, ...]

    @classmethod
    def read(cls, doc: _Object) -> AccountDetail:
        streams = tuple(StreamDetail.read(s) for s in doc.objects("stream_detail"))
        return cls(doc.optional_text("id"), doc.optional_text("name"), streams)


@dataclass(frozen=True, slots=True)
class JSInfo:
    """What the scaler reads of one server's ``/jsz?acc=<account>&consumers=true``."""

    server_id: str | None
    cluster_size: int
    """``meta_cluster.cluster_size``: 0 or 1 when the server is not clustered."""
    accounts: tuple[AccountDetail, ...]
    """Empty for an account the server does not know (nats-server >= 2.10.14 omits it)."""

    @classmethod
    def from_json(cls, answer: object, host: str) -> JSInfo:
        """Raise SourceResponseError naming the host, the field and the value when the
        answer is not shaped like ``/jsz``."""
        doc = _Object.of(answer, f"/jsz at {host}")
        meta_cluster = doc.optional_object("meta_cluster")
        return cls(
            server_id=doc.optional_text("server_id"),
            cluster_size=meta_cluster.integer("cluster_size", 0) if meta_cluster else 0,
            accounts=tuple(AccountDetail.read(a) for a in doc.objects("account_details")),
        )


@dataclass(frozen=True, slots=True)
class Varz:
    """What the scaler reads of one server's ``/varz``: who it is and where its peers are."""

    server_id: str | None
    server_name: str | None
    connect_urls: tuple[str, ...]
    """The client URLs of the cluster's servers (``host:port``), this one's included."""
    route_urls: tuple[str, ...]
    """``cluster.urls``: the configured routes, when no client URL is advertised."""

    @classmethod
    def from_json(cls, answer: object, host: str) -> Varz:
        doc = _Object.of(answer, f"/varz at {host}")
        cluster = doc.optional_object("cluster")
        return cls(
            server_id=doc.optional_text("server_id"),
            server_name=doc.optional_text("server_name"),
            connect_urls=doc.texts("connect_urls"),
            route_urls=cluster.texts("urls") if cluster else (),
        )


@dataclass(frozen=True, slots=True)
class _Object:
    """One JSON object of an answer and where it sits, read field by field; a field of the
    wrong type raises SourceResponseError naming the answer, the path and the value."""

    fields: dict[str, object]
    source: str
    """The answer: ``/jsz at nats-0:8222``."""
    path: str = ""

    @classmethod
    def of(cls, value: object, source: str, path: str = "") -> _Object:
        if not isinstance(value, dict):
            where = f"{source}: {path}" if path else f"{source}: the answer"
            raise SourceResponseError(f"{where} is {quote(value)}, not a JSON object")
        return cls(value, source, path)

    def _wrong(self, key: str, expected: str) -> SourceResponseError:
        path = f"{self.path}.{key}" if self.path else key
        return SourceResponseError(
            f"{self.source}: {path} is {quote(self.fields[key])}, not {expected}"
        )

    def optional_text(self, key: str) -> str | None:
        value = self.fields.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._wrong(key, "a string")

    def text(self, key: str) -> str:
        value = self.optional_text(key)
        if value is None:
            path = f"{self.path}.{key}" if self.path else key
            raise SourceResponseError(f"{self.source}: {path} is missing")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.fields.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._wrong(key, "an integer")

    def count(self, key: str) -> int | None:
        value = self.fields.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def optional_object(self, key: str) -> _Object | None:
        value = self.fields.get(key)
        return None if value is None else _Object.of(value, self.source, self._child(key))

    def objects(self, key: str) -> Iterator[_Object]:
        """The objects of a list field; a missing or null list is empty."""
        items = self.fields.get(key)
        if items is None:
            return
        if not isinstance(items, list):
            raise self._wrong(key, "a list")
        for i, item in enumerate(items):
            yield _Object.of(item, self.source, f"{self._child(key)}[{i}]")

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.fields.get(key)
        if items is None:
            return ()
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self._wrong(key, "a list of strings")
        return tuple(items)

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


@dataclass(frozen=True, slots=True)
class JszAnswer:
    """``/jsz`` of the endpoint, and in a cluster of every node, by server name."""

    docs: dict[str, JSInfo]
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

    def _jsz_url(self, host: str) -> str:
        query = urlencode({"acc": self.account, "config": "true", "consumers": "true"})
        return f"{self.scheme}://{host}/jsz?{query}"

    async def _jsz(self, clients: Clients, host: str) -> JSInfo:
        return JSInfo.from_json(await self._get(clients, self._jsz_url(host)), host)

    async def _varz(self, clients: Clients, host: str) -> Varz:
        return Varz.from_json(await self._get(clients, f"{self.scheme}://{host}/varz"), host)

    async def _get(self, clients: Clients, url: str) -> object:
        return await clients.get_json(url, headers={}, identity=HttpIdentity())

    async def run(self, clients: Clients) -> JszAnswer:
        own = await self._jsz(clients, self.endpoint)
        if own.cluster_size <= 1:
            return JszAnswer({"": own}, clustered=False)
        varz = await self._varz(clients, self.endpoint)
        peers = _peer_hosts(varz, self.endpoint)
        # A TaskGroup, not gather: when one peer fails, the others' requests end with the poll,
        # whose error is that peer's.
        try:
            async with asyncio.TaskGroup() as group:
                asks = [group.create_task(self._jsz(clients, host)) for host in peers]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        found = [ask.result() for ask in asks]
        docs = {await self._name(clients, self.endpoint, own, varz): own}
        for host, info in zip(peers, found, strict=True):
            docs[await self._name(clients, host, info, None)] = info
        return JszAnswer(docs, clustered=True)

    async def _name(self, clients: Clients, host: str, info: JSInfo, varz: Varz | None) -> str:
        """The server name behind ``info``, matched by server_id, so a load-balanced endpoint
        that answered /jsz and /varz from two nodes cannot mislabel a follower as leader."""
        server_id = info.server_id
        if server_id is None:
            raise SourceResponseError(f"/jsz at {host} has no server_id")
        if server_id not in self._names:
            if varz is None or varz.server_id != server_id:
                varz = await self._varz(clients, host)
            if varz.server_id != server_id:
                raise SourceResponseError(f"{host} answered /jsz and /varz from different servers")
            self._names[server_id] = varz.server_name or server_id
        return self._names[server_id]

    def describe(self) -> str:
        return f"GET {self._jsz_url(self.endpoint)}"


def _peer_hosts(varz: Varz, endpoint: str) -> list[str]:
    """Monitoring host:port of every other node, found as KEDA finds them: the hosts of
    ``connect_urls`` with the endpoint's monitoring port, else ``<node>.<endpoint>`` for the
    first DNS label of each route URL (nodes behind a headless Service)."""
    own, _, port = endpoint.rpartition(":")
    if varz.connect_urls:
        hosts = {u.rpartition(":")[0] for u in varz.connect_urls} - {own}
        return sorted(f"{host}:{port}" for host in hosts)
    return sorted({f"{route.split('.')[0]}.{endpoint}" for route in varz.route_urls})


@dataclass(frozen=True, kw_only=True)
class NatsJetStreamScaler(Scaler[JszAnswer]):
    meta: Metadata
    query: JszQuery

    def measure(self, answer: JszAnswer) -> float:
        """``num_pending + num_ack_pending`` of the consumer, read from its leader."""
        consumer = self._leaders_view(answer)
        if consumer.num_pending is None or consumer.num_ack_pending is None:
            raise SourceResponseError(
                f"consumer {quote(self.meta.consumer)}: /jsz lacks num_pending/num_ack_pending"
            )
        return float(consumer.num_pending + consumer.num_ack_pending)

    def wake(self) -> Wake:
        """A core subscription to the stream's subjects, on the server behind the endpoint."""
        return Wake(
            NatsWatch(self.meta.endpoint, self.meta.use_https),
            StreamTopic(self.query.account, self.meta.stream),
        )

    def _leaders_view(self, answer: JszAnswer) -> ConsumerInfo:
        first = _find_consumer(next(iter(answer.docs.values())), self.meta)
        if not answer.clustered:
            return first
        leader = first.leader
        if leader is None or leader not in answer.docs:
            raise SourceResponseError(
                f"leader node {quote(leader)} not found for consumer {quote(self.meta.consumer)}"
                f" (nodes the endpoint routes to: {', '.join(sorted(answer.docs))})"
            )
        view = _find_consumer(answer.docs[leader], self.meta)
        # During a handover a follower may already name the new leader while the new
        # leader's own state is not settled: only a leader that agrees it leads is read.
        if view.leader != leader:
            raise SourceResponseError(
                f"leadership of consumer {quote(self.meta.consumer)} is moving to "
                f"{quote(leader)}, which does not lead it yet"
            )
        return view


def _find_consumer(info: JSInfo, meta: Metadata) -> ConsumerInfo:
    account_id = meta.account_id or meta.account
    for account in info.accounts:
        if account.id == account_id or account.name == meta.account:
            for stream in account.streams:
                if stream.name == meta.stream:
                    for consumer in stream.consumers:
                        if consumer.name == meta.consumer:
                            return consumer
                    raise SourceResponseError(
                        f"consumer {quote(meta.consumer)} not found in stream {quote(meta.stream)}"
                    )
            raise SourceResponseError(
                f"stream {quote(meta.stream)} not found in account {quote(account_id)}"
            )
    raise SourceResponseError(f"account {quote(account_id)} not found at {meta.endpoint}")


def build(meta: Metadata) -> NatsJetStreamScaler:
    account = meta.account_id or meta.account or ""
    return NatsJetStreamScaler(
        meta=meta,
        query=JszQuery(meta.endpoint, account, meta.use_https),
        metric_name=normalize(f"nats-jetstream-{meta.stream}"),
        target=float(meta.lag_threshold),
        activation_target=float(meta.activation_lag_threshold),
        value_label="lag",
    )


KIND = ScalerKind(
    type_name="nats-jetstream",
    keda_name="natsJetStreamScaler",
    metadata=Metadata,
    build=build,
    summary="Consumer lag (num_pending + num_ack_pending) of a NATS JetStream consumer.",
    example=Example(
        {
            "natsServerMonitoringEndpoint": "nats.nats.svc:8222",
            "account": "$G",
            "stream": "JOBS",
            "consumer": "workers",
            "lagThreshold": "10",
        },
        source="natsServerMonitoringEndpoint",
    ),
)
