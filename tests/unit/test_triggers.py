"""Binding a ScaledObject's triggers: auth resolution, env, metric names, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.model.keda import ObjectRef, ScaledObject, parse_scaled_object
from scalers.clients import JsonGet
from scalers.errors import ConfigError
from scalers.registry import KINDS

NS = "apps"
NATS_META = {
    "natsServerMonitoringEndpoint": "nats:8222",
    "account": "$G",
    "stream": "JOBS",
    "consumer": "worker",
}
CRON_META = {
    "timezone": "Europe/Paris",
    "start": "0 8 * * 1-5",
    "end": "0 20 * * 1-5",
    "desiredReplicas": "2",
}

SUPPORTED = ", ".join(sorted([*KINDS, "cpu", "memory"]))


def so(*triggers: dict[str, Any], **spec: Any) -> ScaledObject:
    return parse_scaled_object(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "echo", "namespace": NS},
            "spec": {"scaleTargetRef": {"name": "worker"}, "triggers": list(triggers), **spec},
        }
    )


def inventory(*docs: dict[str, Any]) -> Inventory:
    inv = Inventory(cluster_object_namespace="keda")
    for doc in docs:
        inv.add(doc, "test")
    assert inv.errors == []
    return inv


def problems_of(scaled: ScaledObject, objects: Inventory) -> list[str]:
    with pytest.raises(ConfigError) as info:
        bind(scaled, objects)
    assert info.value.subject == "ScaledObject apps/echo"
    return [str(p) for p in info.value.problems]


def auth(name: str, *, kind: str = "TriggerAuthentication", **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def secret(name: str, namespace: str = NS, **values: str) -> dict[str, Any]:
    return {
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": values,
    }


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": NS},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def authorization(bound: BoundTrigger) -> str | None:
    query = bound.scaler.query
    assert isinstance(query, JsonGet)
    return dict(query.headers).get("Authorization")


def bearer_trigger(auth_name: str, kind: str = "TriggerAuthentication") -> dict[str, Any]:
    metadata = {
        "url": "http://api/",
        "valueLocation": "v",
        "targetValue": "1",
        "authMode": "bearer",
    }
    return {
        "type": "metrics-api",
        "metadata": metadata,
        "authenticationRef": {"name": auth_name, "kind": kind},
    }


def test_bind_names_metrics_and_skips_resource_triggers() -> None:
    scaled = so(
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
        {"type": "nats-jetstream", "metadata": NATS_META},
        {"type": "memory", "metricType": "AverageValue", "metadata": {"value": "80"}},
        {"type": "cron", "name": "office", "metadata": CRON_META},
        pollingInterval=7,
    )
    bound = bind(scaled, inventory())
    assert [b.metric_name for b in bound] == [
        "s1-nats-jetstream-JOBS",
        "s3-cron-Europe-Paris-08xx1-5-020xx1-5",
    ]
    assert [b.trigger.index for b in bound] == [1, 3]
    assert all(b.so == ObjectRef(NS, "echo") for b in bound)
    assert all(b.polling_interval == 7.0 for b in bound)
    assert [b.scaler_label for b in bound] == ["natsJetStreamScaler", "office"]


def test_only_resource_triggers_bind_nothing() -> None:
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}
    assert bind(so(cpu, minReplicaCount=1), inventory()) == ()


def test_unsupported_trigger_type_lists_the_supported_ones() -> None:
    assert problems_of(so({"type": "gcp-pubsub", "metadata": {"topic": "t"}}), inventory()) == [
        f'triggers[0].type: "gcp-pubsub" is not a supported trigger type ({SUPPORTED})'
    ]


def test_auth_params_from_a_trigger_authentication_and_its_secret() -> None:
    objects = inventory(
        auth(
            "nats-auth",
            secretTargetRef=[
                {"parameter": "natsServerMonitoringEndpoint", "name": "creds", "key": "ep"}
            ],
        ),
        secret("creds", ep="secret-nats:8222"),
    )
    trigger = {
        "type": "nats-jetstream",
        "metadata": NATS_META,
        "authenticationRef": {"name": "nats-auth"},
    }
    [bound] = bind(so(trigger), objects)
    assert bound.scaler.query.describe().startswith("GET http://secret-nats:8222/jsz?")


def test_auth_params_from_a_cluster_trigger_authentication() -> None:
    objects = inventory(
        auth(
            "shared",
            kind="ClusterTriggerAuthentication",
            secretTargetRef=[{"parameter": "token", "name": "api", "key": "token"}],
        ),
        secret("api", namespace="keda", token="T0K"),
    )
    [bound] = bind(so(bearer_trigger("shared", "ClusterTriggerAuthentication")), objects)
    assert authorization(bound) == "Bearer T0K"


def test_later_auth_sources_win_env_then_config_map_then_secret() -> None:
    objects = inventory(
        auth(
            "a",
            env=[{"parameter": "token", "name": "TOKEN"}],
            configMapTargetRef=[{"parameter": "token", "name": "cfg", "key": "token"}],
            secretTargetRef=[{"parameter": "token", "name": "sec", "key": "token"}],
        ),
        {
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": NS},
            "data": {"token": "CM"},
        },
        secret("sec", token="SECRET"),
        deployment({"name": "app", "env": [{"name": "TOKEN", "value": "ENV"}]}),
    )
    trigger = bearer_trigger("a")
    [bound] = bind(so(trigger), objects)
    assert authorization(bound) == "Bearer SECRET"


def test_auth_env_reads_the_named_container_and_resolves_value_from() -> None:
    objects = inventory(
        auth("a", env=[{"parameter": "token", "name": "TOKEN", "containerName": "app"}]),
        secret("api", token="FROM-SECRET"),
        deployment(
            {"name": "sidecar", "env": [{"name": "TOKEN", "value": "SIDECAR"}]},
            {
                "name": "app",
                "env": [
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}},
                    }
                ],
            },
        ),
    )
    [bound] = bind(so(bearer_trigger("a")), objects)
    assert authorization(bound) == "Bearer FROM-SECRET"


def test_auth_env_without_container_name_uses_env_source_container_name() -> None:
    objects = inventory(
        auth("a", env=[{"parameter": "token", "name": "TOKEN"}]),
        deployment(
            {"name": "sidecar", "env": [{"name": "TOKEN", "value": "SIDECAR"}]},
            {"name": "app", "env": [{"name": "TOKEN", "value": "APP"}]},
        ),
    )
    trigger = bearer_trigger("a")
    scaled = so(trigger, scaleTargetRef={"name": "worker", "envSourceContainerName": "app"})
    [bound] = bind(scaled, objects)
    assert authorization(bound) == "Bearer APP"


def test_missing_trigger_authentication_is_a_problem() -> None:
    trigger = {
        "type": "nats-jetstream",
        "metadata": NATS_META,
        "authenticationRef": {"name": "gone"},
    }
    cluster = {
        **trigger,
        "authenticationRef": {"name": "gone", "kind": "ClusterTriggerAuthentication"},
    }
    assert problems_of(so(trigger, cluster), inventory()) == [
        'triggers[0].authenticationRef: TriggerAuthentication "gone" not found in namespace apps',
        'triggers[1].authenticationRef: ClusterTriggerAuthentication "gone" not found in '
        "namespace keda",
    ]


def test_missing_secret_key_is_a_problem() -> None:
    objects = inventory(
        auth("a", secretTargetRef=[{"parameter": "token", "name": "creds", "key": "tok"}]),
        secret("creds", other="x"),
    )
    trigger = {"type": "nats-jetstream", "metadata": NATS_META, "authenticationRef": {"name": "a"}}
    assert problems_of(so(trigger), objects) == [
        "triggers[0].authenticationRef (TriggerAuthentication a): Secret apps/creds has no key "
        '"tok" (for parameter token)'
    ]


def test_every_problem_of_the_object_at_once() -> None:
    scaled = so(
        {"type": "gcp-pubsub", "metadata": {}},
        {"type": "nats-jetstream", "metadata": {**NATS_META, "lagThreshold": "ten"}},
        {"type": "cron", "metadata": {**CRON_META, "desiredReplicas": "0"}},
        {"type": "nats-jetstream", "metadata": NATS_META, "authenticationRef": {"name": "gone"}},
        {"type": "cpu", "metricType": "AverageValue", "metadata": {"value": "50"}},
    )
    problems = problems_of(scaled, inventory())
    assert problems == [
        f'triggers[0].type: "gcp-pubsub" is not a supported trigger type ({SUPPORTED})',
        'triggers[1].metadata.lagThreshold: "ten" is not a number',
        'triggers[2].metadata.desiredReplicas: "0" is not a number of replicas to hold '
        "(expected 1 or more)",
        'triggers[3].authenticationRef: TriggerAuthentication "gone" not found in namespace apps',
    ]
    with pytest.raises(ConfigError) as info:
        bind(scaled, inventory())
    assert str(info.value).startswith(
        'ScaledObject apps/echo: triggers[0].type: "gcp-pubsub" is not a supported trigger type'
    )
    assert 'triggers[1].metadata.lagThreshold: "ten" is not a number' in str(info.value)
