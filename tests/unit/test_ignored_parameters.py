"""A metadata key or authentication parameter that nothing reads is a warning naming it, and
why: KEDA reads it and we do not, another name for one we read, or not a parameter at all
(with the key probably meant). Never a value: an authentication's come from Secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.ignored import KEDA_ONLY, ignored_parameters, metadata_warnings
from metrics_adapter.binding.triggers import bind_all
from metrics_adapter.binding.warnings import object_warnings
from metrics_adapter.model.keda import AuthenticationRef, Trigger, parse_scaled_object
from scalers.external import Metadata as External
from scalers.keda_parameters import KEDA_PARAMETERS, SOURCE_FILES
from scalers.params import Source, TriggerMetadata, param
from scalers.redis_streams import Metadata as Streams

AUTH = (Source.TRIGGER, Source.AUTH)


@dataclass(frozen=True)
class Kafka(TriggerMetadata):
    """A kafka trigger that reads less than KEDA's, whatever the real one grows to read."""

    bootstrap_servers: str = param("bootstrapServers", order=(Source.TRIGGER, Source.ENV))
    topic: str = param("topic")
    lag_threshold: int = param("lagThreshold", default="10")
    password: str | None = param("password", order=(Source.AUTH,), optional=True)


@dataclass(frozen=True)
class Redis(TriggerMetadata):
    address: str = param("address", order=AUTH)
    list_name: str = param("listName")


def warn(type_: str, declared: type, *auth: str, **metadata: str) -> list[str]:
    ref = AuthenticationRef("creds") if auth else None
    return ignored_parameters(Trigger(0, type_, metadata, authentication_ref=ref), declared, auth)


def test_what_we_read_is_no_warning() -> None:
    assert warn("kafka", Kafka, "password", bootstrapServersFromEnv="BROKERS", topic="t") == []


def test_a_key_keda_reads_and_we_do_not() -> None:
    assert warn("kafka", Kafka, topic="t", offsetResetPolicy="earliest") == [
        f"triggers[0].metadata.offsetResetPolicy: {KEDA_ONLY}"
    ]
    assert KEDA_ONLY == "KEDA reads this parameter; metrics-adapter does not and ignores it"


def test_a_from_env_key_keda_reads_and_we_do_not() -> None:
    assert warn("kafka", Kafka, topicFromEnv="TOPIC") == [
        f"triggers[0].metadata.topicFromEnv: {KEDA_ONLY}"
    ]


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("lagThreshhold", "not a parameter of kafka; ignored (a typo of lagThreshold?)"),
        ("bootstrapServer", "not a parameter of kafka; ignored (a typo of bootstrapServers?)"),
        ("bootstrapServersFromEnvv", "not a parameter of kafka; ignored (a typo of "),
        ("colour", "not a parameter of kafka; ignored"),
    ],
)
def test_a_key_nothing_reads_suggests_the_one_meant(key: str, says: str) -> None:
    [warning] = warn("kafka", Kafka, **{key: "x"})
    assert warning.startswith(f"triggers[0].metadata.{key}: {says}")
    if "typo" not in says:
        assert warning.endswith("; ignored")


def test_a_parameter_set_where_no_one_reads_it() -> None:
    assert warn("kafka", Kafka, password="x", lagThresholdFromEnv="LAG") == [
        "triggers[0].metadata.lagThresholdFromEnv: lagThreshold cannot come from the environment "
        "(no lagThresholdFromEnv); ignored",
        "triggers[0].metadata.password: password is read from the authentication's parameters, "
        "not from metadata, by KEDA too; ignored",
    ]


def test_another_name_keda_accepts_says_which_one_we_read() -> None:
    assert warn("redis", Redis, "addresses", listName="l", hosts="h") == [
        "triggers[0].metadata.hosts: KEDA reads this parameter; metrics-adapter does not and "
        "ignores it",
        "triggers[0].authenticationRef (TriggerAuthentication creds): parameter addresses: "
        "KEDA reads this as another name for address; metrics-adapter reads only address and "
        "ignores it: rename it",
    ]


def test_a_known_reason_replaces_the_generic_one() -> None:
    [warning] = warn("redis", Redis, listName="l", sentinelMaster="m")
    assert warning == (
        "triggers[0].metadata.sentinelMaster: used only by KEDA's sentinel trigger types; "
        "ignored, as in KEDA"
    )


def test_authentication_parameters_name_the_authentication() -> None:
    assert warn("kafka", Kafka, "password", "passwrd", "keytab", topic="t") == [
        "triggers[0].authenticationRef (TriggerAuthentication creds): parameter keytab: used by "
        "KEDA only with sasl gssapi or saslTokenProvider aws_msk_iam, which metrics-adapter "
        "refuses; ignored",
        "triggers[0].authenticationRef (TriggerAuthentication creds): parameter passwrd: not a "
        "parameter of kafka; ignored (a typo of password?)",
    ]


def test_a_type_keda_has_no_table_for_still_warns_of_typos() -> None:
    assert warn("made-up", Kafka, topik="t") == [
        "triggers[0].metadata.topik: not a parameter of made-up; ignored (a typo of topic?)"
    ]


def test_the_table_names_its_sources_for_every_type() -> None:
    assert set(KEDA_PARAMETERS) == set(SOURCE_FILES)
    assert KEDA_PARAMETERS["kafka"]["bootstrapServers"] == {Source.TRIGGER, Source.ENV}
    assert KEDA_PARAMETERS["aws-sqs-queue"]["awsRoleArn"] == {Source.AUTH}  # a direct map read


# Through the binder, with a real Secret.

SECRET = "hunter2-very-secret"


def documents(metadata: dict[str, str], auth: dict[str, str]) -> Inventory:
    inventory = Inventory()
    inventory.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "apps"},
            "stringData": dict.fromkeys(auth.values(), SECRET),
        },
        "secret.yaml",
    )
    refs = [{"parameter": p, "name": "creds", "key": k} for p, k in auth.items()]
    inventory.add(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "creds", "namespace": "apps"},
            "spec": {"secretTargetRef": refs},
        },
        "auth.yaml",
    )
    return inventory


def scaled_object(metadata: dict[str, str], **spec: Any) -> Any:
    return parse_scaled_object(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {
                "scaleTargetRef": {"name": "web"},
                "triggers": [
                    {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
                    {"type": "cron", "metadata": metadata, "authenticationRef": {"name": "creds"}},
                ],
                **spec,
            },
        }
    )


CRON = {"start": "0 * * * *", "end": "30 * * * *", "timezone": "UTC", "desiredReplicas": "2"}


def test_the_binding_carries_every_warning_and_never_a_value() -> None:
    inventory = documents(CRON, {"token": "tok", "timezon": "tz"})
    so = scaled_object({**CRON, "desiredReplica": "3"}, unknownField=1)
    binding = bind_all(so, inventory)
    assert binding.warnings == (
        "triggers[1].metadata.desiredReplica: not a parameter of cron; ignored (a typo of "
        "desiredReplicas?)",
        "triggers[1].authenticationRef (TriggerAuthentication creds): parameter timezon: not a "
        "parameter of cron; ignored",
        "triggers[1].authenticationRef (TriggerAuthentication creds): parameter token: not a "
        "parameter of cron; ignored",
    )
    assert object_warnings(so, inventory) == (
        "unknownField: unknown field, ignored",
        *binding.warnings,
    )
    assert not any(SECRET in w for w in object_warnings(so, inventory))


def test_a_cpu_trigger_is_checked_too() -> None:
    so = parse_scaled_object(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {
                "scaleTargetRef": {"name": "web"},
                "minReplicaCount": 1,
                "triggers": [
                    {
                        "type": "cpu",
                        "metricType": "Utilization",
                        "metadata": {"value": "50", "containerNmae": "app"},
                    }
                ],
            },
        }
    )
    assert bind_all(so, Inventory()).warnings == (
        "triggers[0].metadata.containerNmae: not a parameter of cpu; ignored (a typo of "
        "containerName?)",
    )


def test_an_object_that_does_not_bind_still_gets_its_metadata_warnings() -> None:
    so = scaled_object(
        {"start": "0 * * * *", "end": "30 * * * *", "timezone": "UTC", "desiredReplicaz": "2"}
    )
    expected = (
        "triggers[1].metadata.desiredReplicaz: not a parameter of cron; ignored (a typo of "
        "desiredReplicas?)"
    )
    assert metadata_warnings(so) == [expected]
    assert object_warnings(so, Inventory()) == (expected,)  # desiredReplicas is required


def test_a_parameter_only_we_read_from_the_authentication_does_not_speak_for_keda() -> None:
    assert warn("made-up", Kafka, password="x") == [
        "triggers[0].metadata.password: password is read from the authentication's "
        "parameters, not from metadata; ignored"
    ]


def test_metric_name_which_keda_stopped_reading_says_so() -> None:
    assert warn("kafka", Kafka, topic="t", metricName="lag") == [
        "triggers[0].metadata.metricName: KEDA no longer reads it for this type either (the "
        "metric's name is generated); ignored"
    ]


def test_an_external_scaler_reads_every_metadata_key_so_none_is_ignored() -> None:
    assert warn("external", External, scalerAddress="s:9090", queueDepth="5", anything="x") == []


def test_a_streams_trigger_names_the_sentinel_types_for_a_sentinel_key() -> None:
    [warning] = warn("redis-streams", Streams, stream="s", consumerGroup="g", sentinelMaster="m")
    assert warning.endswith("used only by KEDA's sentinel trigger types; ignored, as in KEDA")
