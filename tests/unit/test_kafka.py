"""``kafka``: parsing the trigger metadata as KEDA does, metric names, and query identity."""

from __future__ import annotations

import pytest

from scalers import kafka
from scalers.errors import Problems
from scalers.kafka import PartitionLimitation
from scalers.kafka_client import KafkaBackend, OffsetsQuery
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
BASE = {"bootstrapServers": "broker-1:9092,broker-2:9092", "consumerGroup": "workers"}


def create(
    metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> tuple[kafka.KafkaScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, env or {}, auth or {}, path=P)
    scaler = kafka.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, kafka.KafkaScaler)
    return scaler, [str(p) for p in problems]


def built(auth: dict[str, str] | None = None, /, **metadata: str) -> kafka.KafkaScaler:
    scaler, problems = create({**BASE, **metadata}, auth)
    assert problems == []
    assert scaler is not None
    return scaler


def test_defaults_are_keda_s() -> None:
    meta = built().meta
    assert meta.bootstrap_servers == ("broker-1:9092", "broker-2:9092")
    assert (meta.topic, meta.partition_limitation) == (None, None)
    assert (meta.lag_threshold, meta.activation_lag_threshold) == (10, 0)
    assert meta.offset_reset_policy == "latest"
    assert not any(
        (
            meta.allow_idle_consumers,
            meta.exclude_persistent_lag,
            meta.scale_to_zero_on_invalid_offset,
            meta.limit_to_partitions_with_lag,
            meta.ensure_even_distribution_of_partitions,
            meta.unsafe_ssl,
        )
    )
    assert (meta.tls, meta.sasl) == ("disable", "none")
    scaler = built()
    assert (scaler.target, scaler.activation_target, scaler.value_label) == (10.0, 0.0, "lag")


@pytest.mark.parametrize(
    ("metadata", "name"),
    [
        ({"topic": "orders"}, "kafka-orders"),
        ({}, "kafka-workers-topics"),
        ({"topic": "eu.orders/v1"}, "kafka-eu-orders-v1"),
        ({"consumerGroup": "team:a(b)"}, "kafka-team-a-b--topics"),
    ],
)
def test_metric_name_is_keda_s(metadata: dict[str, str], name: str) -> None:
    assert built(**metadata).metric_name == name


def test_servers_group_and_topic_may_come_from_the_container_env() -> None:
    scaler, problems = create(
        {
            "bootstrapServersFromEnv": "KAFKA",
            "consumerGroupFromEnv": "GROUP",
            "topicFromEnv": "TOPIC",
        },
        env={"KAFKA": "k1:9092, k2:9093", "GROUP": "g", "TOPIC": "t"},
    )
    assert problems == []
    assert scaler is not None
    assert scaler.meta.bootstrap_servers == ("k1:9092", "k2:9093")
    assert (scaler.meta.consumer_group, scaler.meta.topic) == ("g", "t")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lagThreshold": "0"}, 'lagThreshold: "0" must be greater than 0'),
        ({"lagThreshold": "-5"}, 'lagThreshold: "-5" must be greater than 0'),
        ({"lagThreshold": "ten"}, 'lagThreshold: "ten" is not a number'),
        ({"lagThreshold": "1.5"}, 'lagThreshold: "1.5" is not a whole number'),
        ({"activationLagThreshold": "-1"}, 'activationLagThreshold: "-1" must be at least 0'),
        (
            {"offsetResetPolicy": "newest"},
            'offsetResetPolicy: "newest" is not one of: latest, earliest',
        ),
        (
            {"allowIdleConsumers": "maybe"},
            'allowIdleConsumers: "maybe" is not a boolean (expected true or false)',
        ),
        ({"tls": "on"}, 'tls: "on" is not one of: enable, disable'),
        ({"bootstrapServers": "kafka:ninety"}, 'bootstrapServers: "kafka:ninety" is not host:port'),
        ({"bootstrapServers": "kafka:70000"}, 'bootstrapServers: "kafka:70000" is not host:port'),
        ({"bootstrapServers": " , "}, "bootstrapServers: is required"),
        ({"version": "3.x"}, 'version: "3.x" is not a Kafka version like 3.6.0'),
        (
            {"partitionLimitation": "1,a"},
            'partitionLimitation: "a" is not a partition number or a range like 10-20',
        ),
        (
            {"limitToPartitionsWithLag": "true"},
            "topic: is required by limitToPartitionsWithLag",
        ),
        (
            {"ensureEvenDistributionOfPartitions": "true"},
            "topic: is required by ensureEvenDistributionOfPartitions",
        ),
        (
            {"topic": "t", "limitToPartitionsWithLag": "true", "allowIdleConsumers": "true"},
            "limitToPartitionsWithLag: cannot be combined with allowIdleConsumers",
        ),
        (
            {
                "topic": "t",
                "limitToPartitionsWithLag": "true",
                "ensureEvenDistributionOfPartitions": "true",
            },
            "ensureEvenDistributionOfPartitions: cannot be combined with limitToPartitionsWithLag",
        ),
        (
            {"sasl": "gssapi"},
            'sasl: "gssapi" is not supported yet '
            "(none, plaintext, scram_sha256, scram_sha512, oauthbearer)",
        ),
        (
            {"sasl": "kerberos"},
            'sasl: "kerberos" is not one of: none, plaintext, scram_sha256, scram_sha512, '
            "oauthbearer, gssapi",
        ),
    ],
)
def test_keda_error_cases(change: dict[str, str], message: str) -> None:
    scaler, problems = create({**BASE, **change})
    assert scaler is None
    assert problems == [f"{P}.{message}"]


def test_every_problem_is_reported_at_once() -> None:
    scaler, problems = create(
        {
            "lagThreshold": "0",
            "offsetResetPolicy": "oldest",
            "limitToPartitionsWithLag": "true",
            "allowIdleConsumers": "true",
            "sasl": "plaintext",
        }
    )
    assert scaler is None
    assert problems == [
        f"{P}.bootstrapServers: is required",
        f"{P}.consumerGroup: is required",
        f'{P}.lagThreshold: "0" must be greater than 0',
        f'{P}.offsetResetPolicy: "oldest" is not one of: latest, earliest',
    ]
    # Cross-field rules run once every field parses, and report together too.
    scaler, problems = create(
        {
            **BASE,
            "limitToPartitionsWithLag": "true",
            "allowIdleConsumers": "true",
            "sasl": "plaintext",
        }
    )
    assert problems == [
        f"{P}.limitToPartitionsWithLag: cannot be combined with allowIdleConsumers",
        f"{P}.topic: is required by limitToPartitionsWithLag",
        f"{P}.username: is required by sasl plaintext (from the authentication)",
        f"{P}.password: is required by sasl plaintext (from the authentication)",
    ]


# Authentication: sasl and tls from the trigger or authParams (the trigger wins), secrets only
# from authParams.

PAIR = {"cert": "CERT", "key": "KEY"}


@pytest.mark.parametrize(
    ("metadata", "auth", "message"),
    [
        ({"tls": "enable"}, {"cert": "CERT"}, "key: is required with cert"),
        ({}, {"tls": "enable", "key": "KEY"}, "cert: is required with key"),
        ({"sasl": "scram_sha256"}, {"username": "u"}, "password: is required by sasl scram_sha256"),
        ({"username": "u", "password": "p"}, {"sasl": "plaintext"}, "username: is required"),
    ],
)
def test_authentication_errors(
    metadata: dict[str, str], auth: dict[str, str], message: str
) -> None:
    scaler, problems = create({**BASE, **metadata}, auth)
    assert scaler is None
    assert len(problems) == 1 + ("username" in metadata)
    assert problems[0].startswith(f"{P}.{message}")


def test_a_cert_without_tls_is_ignored_as_in_keda() -> None:
    assert built({"cert": "CERT"}).query.backend == KafkaBackend(("broker-1:9092", "broker-2:9092"))


def test_sasl_and_tls_from_the_trigger_win_over_the_authentication() -> None:
    scaler = built(
        {"sasl": "scram_sha512", "tls": "enable", "username": "u", "password": "p"},
        sasl="plaintext",
        tls="disable",
    )
    backend = scaler.query.backend
    assert (backend.sasl, backend.tls, backend.security_protocol) == (
        "plaintext",
        False,
        "SASL_PLAINTEXT",
    )


def test_backend_identity_holds_the_authentication() -> None:
    auth = {
        "sasl": "scram_sha512",
        "tls": "enable",
        "username": "alice",
        "password": "s3cret",
        "ca": "CA",
        **PAIR,
        "keyPassword": "kp",
    }
    backend = built(auth, unsafeSsl="true").query.backend
    assert backend == KafkaBackend(
        ("broker-1:9092", "broker-2:9092"),
        sasl="scram_sha512",
        username="alice",
        password="s3cret",
        tls=True,
        unsafe_ssl=True,
        ca="CA",
        cert="CERT",
        key="KEY",
        key_password="kp",
    )
    assert backend.security_protocol == "SASL_SSL"
    assert backend.describe() == (
        "kafka broker-1:9092,broker-2:9092 (SASL_SSL, SCRAM-SHA-512 as alice)"
    )
    shown = repr(backend) + repr(built(auth).query) + built(auth).query.describe()
    assert "s3cret" not in shown and "KEY" not in shown and "kp" not in shown


def test_triggers_asking_the_same_thing_share_one_query() -> None:
    """Per-trigger options never change the request: one query per group, topic and backend."""
    a = built(topic="orders")
    b = built(
        topic="orders",
        bootstrapServers="broker-2:9092,broker-1:9092",
        lagThreshold="3",
        activationLagThreshold="7",
        partitionLimitation="0-1",
        offsetResetPolicy="earliest",
        allowIdleConsumers="true",
        excludePersistentLag="true",
        scaleToZeroOnInvalidOffset="true",
        version="2.8.0",
    )
    assert a.query == b.query
    assert hash(a.query) == hash(b.query)
    assert a.query == OffsetsQuery(
        KafkaBackend(("broker-1:9092", "broker-2:9092")), "workers", "orders"
    )
    assert a.query != built(topic="payments").query
    assert a.query != built(topic="orders", consumerGroup="other").query
    assert built().query.topic is None
    with_user = built({"sasl": "plaintext", "username": "u", "password": "p"}, topic="orders")
    assert a.query != with_user.query
    assert a.query.describe() == (
        'kafka broker-1:9092,broker-2:9092: offsets of group "workers" on topic "orders"'
    )
    assert built().query.describe().endswith('offsets of group "workers" on all its topics')


def test_scalers_with_state_are_still_comparable() -> None:
    a, b = built(topic="t"), built(topic="t")
    assert a == b  # the remembered offsets are not part of a trigger's identity


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("1,2,10-20,31", [1, 2, 10, 15, 20, 31], [0, 3, 9, 21, 30, 32]),
        (" 3 - 4 , 7 ", [3, 4, 7], [2, 5, 6, 8]),
        ("+5", [5], [4, 6]),
        ("5-3", [], [3, 4, 5]),  # backwards: empty, as in KEDA
        ("0-2147483647", [0, 2147483647], [-1]),
    ],
)
def test_partition_limitation(text: str, inside: list[int], outside: list[int]) -> None:
    limitation = PartitionLimitation.parse(text)
    assert all(p in limitation for p in inside)
    assert not any(p in limitation for p in outside)


@pytest.mark.parametrize("text", ["1-", "-1", "a", "1-2-3", "1,,2", "2147483648", "1_0", "0x1"])
def test_partition_limitation_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a partition number|beyond the largest"):
        PartitionLimitation.parse(text)


def test_partition_limitation_needs_a_topic_as_in_keda() -> None:
    assert built(topic="t", partitionLimitation="1-2").limitation == PartitionLimitation(((1, 2),))
    assert built(partitionLimitation="1-2").limitation is None
    # ...but a malformed one is an error either way, as KEDA parses it first.
    assert create({**BASE, "partitionLimitation": "x"})[0] is None


def test_kind() -> None:
    assert (kafka.KIND.type_name, kafka.KIND.keda_name) == ("kafka", "kafkaScaler")
