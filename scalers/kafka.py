"""``kafka``: consumer-group lag summed over partitions, as KEDA's ``kafkaScaler`` computes it.

Lag per partition is log end offset - committed offset. Without ``topic``, every topic the
group has committed to counts. The options that only change how one trigger reads the
offsets (``partitionLimitation``, the caps, ``excludePersistentLag``) live here, in
:meth:`KafkaScaler.lag`, so that every trigger asking one group about one topic of one
cluster shares one :class:`~scalers.kafka_client.OffsetsQuery`.

SASL ``oauthbearer`` (KEDA's ``saslTokenProvider: bearer``): ``username``/``password`` are
an OAuth2 client's id and secret, exchanged at ``oauthTokenEndpointUri`` for a token as
KEDA's x/oauth2 client-credentials source does (:mod:`scalers.oauth2`: ``scopes`` split at
commas, unset meaning one empty scope, as in KEDA), and ``oauthExtensions`` go beside it.
Where we differ: one token per client and endpoint serves every trigger and connection
(KEDA fetches one per scaler); aiokafka does not re-authenticate a live connection
(KIP-368), so a broker with ``connections.max.reauth.ms`` closes it when its token expires
and that poll fails, the next one connecting with a fresh token; ``aws_msk_iam`` is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka.conn import get_ip_port_afi

from scalers.base import Example, Measurement, Scaler, ScalerKind, normalize
from scalers.errors import SourceResponseError, quote
from scalers.kafka_client import NO_OFFSET, GroupOffsets, KafkaBackend, OffsetsQuery, TopicOffsets
from scalers.oauth2 import ClientCredentials
from scalers.params import Source, TriggerMetadata, param
from scalers.wake import Wake
from scalers.wake_kafka import GroupTopics, KafkaWatch

_FROM_ENV = (Source.TRIGGER, Source.ENV)
_FROM_AUTH = (Source.TRIGGER, Source.AUTH)
_AUTH = (Source.AUTH,)
_SASL_SUPPORTED = ("none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer")
_KAFKA_VERSION = re.compile(r"0\.[0-9]+\.[0-9]+\.[0-9]+|[1-9][0-9]*\.[0-9]+\.[0-9]+")
"""What sarama's ``ParseKafkaVersion`` accepts: ``0.10.2.0`` or ``2.8.0``."""
_PARTITION = re.compile(r"\+?[0-9]+")
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    bootstrap_servers: tuple[str, ...] = param(
        "bootstrapServers", order=_FROM_ENV, doc="comma-separated host:port list"
    )
    consumer_group: str = param("consumerGroup", order=_FROM_ENV)
    topic: str | None = param(
        "topic", order=_FROM_ENV, optional=True, doc="unset: every topic the group committed to"
    )
    partition_limitation: str | None = param(
        "partitionLimitation", optional=True, doc="partitions to count, e.g. 1,2,10-20 (with topic)"
    )
    lag_threshold: int = param("lagThreshold", default="10", gt=0)
    activation_lag_threshold: int = param("activationLagThreshold", default="0", ge=0)
    offset_reset_policy: str = param(
        "offsetResetPolicy", default="latest", enum=("latest", "earliest")
    )
    allow_idle_consumers: bool = param("allowIdleConsumers", default="false")
    exclude_persistent_lag: bool = param("excludePersistentLag", default="false")
    scale_to_zero_on_invalid_offset: bool = param("scaleToZeroOnInvalidOffset", default="false")
    limit_to_partitions_with_lag: bool = param("limitToPartitionsWithLag", default="false")
    ensure_even_distribution_of_partitions: bool = param(
        "ensureEvenDistributionOfPartitions", default="false"
    )
    version: str | None = param(
        "version", optional=True, doc="accepted for compatibility: versions are negotiated"
    )
    tls: str = param("tls", order=_FROM_AUTH, default="disable", enum=("enable", "disable"))
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    ca: str | None = param("ca", order=_AUTH, optional=True)
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)
    sasl: str = param(
        "sasl",
        order=_FROM_AUTH,
        default="none",
        enum=(*_SASL_SUPPORTED, "gssapi"),
    )
    username: str | None = param(
        "username", order=_AUTH, optional=True, doc="with oauthbearer: the OAuth2 client id"
    )
    password: str | None = param(
        "password", order=_AUTH, optional=True, secret=True, doc="oauthbearer: client secret"
    )
    sasl_token_provider: str | None = param(
        "saslTokenProvider", order=_FROM_AUTH, optional=True, enum=("bearer", "aws_msk_iam")
    )
    oauth_token_endpoint_uri: str | None = param(
        "oauthTokenEndpointUri", order=_AUTH, optional=True, doc="oauthbearer's token endpoint"
    )
    scopes: str | None = param(
        "scopes", order=_AUTH, optional=True, doc="comma-separated, asked of the token endpoint"
    )
    oauth_extensions: str | None = param(
        "oauthExtensions", order=_AUTH, optional=True, doc="key=value,... sent with the token"
    )

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.bootstrap_servers:
            yield "bootstrapServers", "is required"
        for server in self.bootstrap_servers:
            if not _valid_server(server):
                yield "bootstrapServers", f"{quote(server)} is not host:port"
        if self.partition_limitation is not None:
            try:
                PartitionLimitation.parse(self.partition_limitation)
            except ValueError as exc:
                yield "partitionLimitation", str(exc)
        if self.limit_to_partitions_with_lag:
            if self.allow_idle_consumers:
                yield "limitToPartitionsWithLag", "cannot be combined with allowIdleConsumers"
            if not self.topic:
                yield "topic", "is required by limitToPartitionsWithLag"
            if self.ensure_even_distribution_of_partitions:
                yield (
                    "ensureEvenDistributionOfPartitions",
                    "cannot be combined with limitToPartitionsWithLag",
                )
        if self.ensure_even_distribution_of_partitions and not self.topic:
            yield "topic", "is required by ensureEvenDistributionOfPartitions"
        if self.version is not None and not _KAFKA_VERSION.fullmatch(self.version):
            yield "version", f"{quote(self.version)} is not a Kafka version like 3.6.0"
        if self.tls == "enable" and bool(self.cert) != bool(self.key):
            have, need = ("cert", "key") if self.cert else ("key", "cert")
            yield need, f"is required with {have} when tls is enable (from the authentication)"
        if self.sasl not in _SASL_SUPPORTED:
            yield "sasl", f"{quote(self.sasl)} is not supported yet ({', '.join(_SASL_SUPPORTED)})"
        elif self.sasl == "oauthbearer" and self.sasl_token_provider == "aws_msk_iam":
            yield "saslTokenProvider", '"aws_msk_iam" is not supported yet (bearer)'
        elif self.sasl != "none":
            for name, value in (("username", self.username), ("password", self.password)):
                if not value:
                    yield name, f"is required by sasl {self.sasl} (from the authentication)"
            if self.sasl == "oauthbearer":
                yield from self._oauth_problems()

    def _oauth_problems(self) -> Iterator[tuple[str, str]]:
        if not self.oauth_token_endpoint_uri:
            yield (
                "oauthTokenEndpointUri",
                "is required by sasl oauthbearer (from the authentication)",
            )
        try:
            parse_extensions(self.oauth_extensions)
        except ValueError as exc:
            yield "oauthExtensions", str(exc)


def parse_extensions(text: str | None) -> tuple[tuple[str, str], ...]:
    """``oauthExtensions`` as KEDA splits it: ``,`` between pairs, one ``=`` in each."""
    if not text:
        return ()
    pairs = []
    for pair in text.split(","):
        parts = pair.split("=")
        if len(parts) != 2:
            raise ValueError(f"{quote(pair)} is not key=value")
        if parts[0] == "auth":  # the token's own field in the SASL message (RFC 7628)
            raise ValueError('"auth" is reserved for the token itself')
        pairs.append((parts[0], parts[1]))
    return tuple(dict(pairs).items())  # the last of a repeated key wins, as in KEDA's map


def _valid_server(server: str) -> bool:
    try:
        host, port, _ = get_ip_port_afi(server)
    except ValueError:
        return False
    return bool(host) and 0 < port < 65536


@dataclass(frozen=True, slots=True)
class PartitionLimitation:
    """``partitionLimitation``: partition numbers and inclusive ranges, ``1,2,10-20``."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: str) -> PartitionLimitation:
        """KEDA's grammar; a range backwards (``5-3``) is empty, as in KEDA."""
        ranges = []
        for raw in text.split(","):
            part = raw.strip()
            bounds = [b.strip() for b in part.split("-")] if "-" in part else [part, part]
            if len(bounds) != 2 or not all(_PARTITION.fullmatch(b) for b in bounds):
                raise ValueError(f"{quote(part)} is not a partition number or a range like 10-20")
            low, high = int(bounds[0]), int(bounds[1])
            if max(low, high) > _INT32_MAX:
                raise ValueError(f"{quote(part)} is beyond the largest partition number")
            ranges.append((low, high))
        return cls(tuple(ranges))

    def __contains__(self, partition: object) -> bool:
        return isinstance(partition, int) and any(
            low <= partition <= high for low, high in self.ranges
        )


@dataclass(frozen=True, slots=True)
class Lag:
    """One trigger's reading of one answer."""

    metric: int
    """The HPA's value: persistent lag excluded, capped as configured."""
    total: int
    """Every counted partition's lag, persistent lag included: what activation compares."""


class _Memory:
    """What one trigger remembers between polls (KEDA keeps it in its scaler object)."""

    __slots__ = ("answer", "lag", "previous")

    def __init__(self) -> None:
        self.previous: dict[tuple[str, int], int] = {}
        """(topic, partition) → committed offset at the last poll, for excludePersistentLag."""
        self.answer: GroupOffsets | None = None
        self.lag: Lag | None = None


@dataclass(frozen=True, kw_only=True)
class KafkaScaler(Scaler[GroupOffsets]):
    """One kafka trigger; it remembers the last poll's offsets, as KEDA's scaler object does."""

    meta: Metadata
    query: OffsetsQuery
    limitation: PartitionLimitation | None = None
    _memory: _Memory = field(default_factory=_Memory, init=False, compare=False, repr=False)

    def measure(self, answer: GroupOffsets) -> Measurement:
        """The HPA's value, and the total lag KEDA decides activity on (see :meth:`is_active`):
        they differ when persistent lag is excluded or the value capped."""
        lag = self.lag(answer)
        return Measurement(float(lag.metric), float(lag.total))

    def wake(self) -> Wake:
        """A long Fetch at the log end (:mod:`scalers.wake_kafka`) of the topic, or without
        one of every topic the group has committed to, on the trigger's brokers and identity."""
        topic = self.meta.topic or GroupTopics(self.meta.consumer_group)
        return Wake(KafkaWatch(self.query.backend), topic)

    def is_active(self, lag: Lag) -> bool:
        """KEDA's activity: total lag, persistent lag included, above activationLagThreshold."""
        return lag.total > self.meta.activation_lag_threshold

    def lag(self, answer: GroupOffsets) -> Lag:
        """This trigger's lag in ``answer``; reading one answer twice gives one result, as
        excludePersistentLag compares each poll with the one before."""
        memory = self._memory
        if memory.lag is not None and answer is memory.answer:
            return memory.lag
        if not isinstance(answer, GroupOffsets):  # typed so, but a wrong one must not read 0
            raise SourceResponseError(f"kafka answer is a {type(answer).__name__}, not offsets")
        total = total_with_persistent = counted = with_lag = 0
        for topic, offsets in answer.topics.items():
            partitions = self._partitions(topic, offsets)
            for partition in partitions:
                lag, lag_with_persistent = self._partition_lag(topic, partition, offsets)
                total += lag
                total_with_persistent += lag_with_persistent
                if lag > 0:
                    with_lag += 1
            counted += len(partitions)
        memory.answer, memory.lag = (
            answer,
            Lag(self._bounded(total, counted, with_lag), total_with_persistent),
        )
        return memory.lag

    def _partitions(self, topic: str, offsets: TopicOffsets) -> list[int]:
        """The partitions that count: limited by partitionLimitation (with a topic only); one
        missing from the log end answer counts as nothing, as in KEDA."""
        chosen = [p for p in offsets.partitions if self.limitation is None or p in self.limitation]
        if not chosen:
            raise SourceResponseError(
                f"topic {quote(topic)}: none of its partitions "
                f"({', '.join(map(str, offsets.partitions))}) is in partitionLimitation "
                f"{quote(self.meta.partition_limitation)}"
            )
        return [p for p in chosen if p in offsets.latest]

    def _partition_lag(self, topic: str, partition: int, offsets: TopicOffsets) -> tuple[int, int]:
        """(lag for the metric, lag for activation) of one partition: KEDA's getLagForPartition."""
        meta = self.meta
        committed = offsets.committed.get(partition)
        if committed is None:
            raise SourceResponseError(
                f"topic {quote(topic)} partition {partition}: no committed offset in the answer"
            )
        latest = offsets.latest[partition]
        if committed == NO_OFFSET:
            if meta.offset_reset_policy == "latest" or meta.scale_to_zero_on_invalid_offset:
                lag = 0 if meta.scale_to_zero_on_invalid_offset else 1
                return lag, lag
            # earliest: what a new consumer can still read, not what retention deleted
            # (KEDA #7937); without a log start offset, KEDA's fallback: the log end offset.
            lag = latest - offsets.earliest.get(partition, 0)
            return lag, lag
        if meta.exclude_persistent_lag:
            key = (topic, partition)
            previous = self._memory.previous.get(key)
            self._memory.previous[key] = committed
            if previous == committed:  # stuck since the last poll: not worth a replica
                return 0, latest - committed
        return latest - committed, latest - committed

    def _bounded(self, lag: int, partitions: int, with_lag: int) -> int:
        """KEDA's caps: never ask for more consumers than partitions (or partitions with lag),
        and with ensureEvenDistributionOfPartitions round up to a factor of the partitions."""
        meta = self.meta
        threshold = meta.lag_threshold
        if (
            meta.allow_idle_consumers
            and not meta.limit_to_partitions_with_lag
            and not meta.ensure_even_distribution_of_partitions
        ):
            return lag
        bound = with_lag if meta.limit_to_partitions_with_lag else partitions
        if meta.ensure_even_distribution_of_partitions:
            lag = _even_factor(lag, partitions, threshold) * threshold
        if _go_div(lag, threshold) > bound:
            lag = bound * threshold
        return lag


def _go_div(a: int, b: int) -> int:
    """Go's integer division: truncates toward zero (a lag can be negative)."""
    quotient = abs(a) // b
    return quotient if a >= 0 else -quotient


def _even_factor(lag: int, partitions: int, threshold: int) -> int:
    """The smallest factor f of ``partitions`` with f * threshold >= lag, else ``partitions``."""
    for factor in _factors(partitions):
        if factor * threshold >= lag:
            return factor
    return partitions


def _factors(n: int) -> list[int]:
    if n < 1:
        return []
    small = [i for i in range(1, math.isqrt(n) + 1) if n % i == 0]
    return sorted({*small, *(n // i for i in small)})


def build(meta: Metadata) -> KafkaScaler:
    tls, sasl = meta.tls == "enable", meta.sasl != "none"
    oauth = None
    if meta.sasl == "oauthbearer" and meta.username and meta.password:
        oauth = ClientCredentials(
            token_url=meta.oauth_token_endpoint_uri or "",
            client_id=meta.username,
            client_secret=meta.password,
            # KEDA's strings.Split: an unset scopes is one empty scope, so ``scope=`` is sent
            scopes=tuple((meta.scopes or "").split(",")),
        )
    backend = KafkaBackend(
        bootstrap_servers=tuple(sorted(set(meta.bootstrap_servers))),
        sasl=meta.sasl,
        username=meta.username if sasl else None,
        password=meta.password if sasl else None,
        tls=tls,
        unsafe_ssl=meta.unsafe_ssl and tls,
        ca=meta.ca if tls else None,
        cert=meta.cert if tls else None,
        key=meta.key if tls else None,
        key_password=meta.key_password if tls else None,
        oauth=oauth,
        oauth_extensions=parse_extensions(meta.oauth_extensions) if oauth else (),
    )
    limitation = (
        PartitionLimitation.parse(meta.partition_limitation)
        if meta.topic and meta.partition_limitation
        else None  # KEDA ignores partitionLimitation without a topic
    )
    name = f"kafka-{meta.topic}" if meta.topic else f"kafka-{meta.consumer_group}-topics"
    return KafkaScaler(
        meta=meta,
        query=OffsetsQuery(backend, meta.consumer_group, meta.topic),
        limitation=limitation,
        metric_name=normalize(name),
        target=float(meta.lag_threshold),
        activation_target=float(meta.activation_lag_threshold),
        value_label="lag",
    )


KIND = ScalerKind(
    type_name="kafka",
    keda_name="kafkaScaler",
    metadata=Metadata,
    build=build,
    summary="Consumer-group lag (log end - committed offset) summed over a topic's partitions.",
    example=Example(
        {
            "bootstrapServers": "kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9092",
            "consumerGroup": "workers",
            "topic": "jobs",
            "lagThreshold": "50",
        },
        {"sasl": "scram_sha512", "username": "workers", "password": "kafka-password"},
        source="bootstrapServers",
    ),
)
