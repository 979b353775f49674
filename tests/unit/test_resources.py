"""ScaledObject and TriggerAuthentication parsing: KEDA's defaults and checks (§1, §6)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.model.authentication import (
    EnvRef,
    SecretTargetRef,
    parse_trigger_authentication,
)
from metrics_adapter.model.keda import (
    AuthenticationRef,
    ObjectRef,
    ScaledObject,
    parse_scaled_object,
    read_scaled_object,
)
from scalers.errors import ConfigError

NATS = {
    "type": "nats-jetstream",
    "metadata": {"natsServerMonitoringEndpoint": "nats:8222", "stream": "JOBS", "consumer": "w"},
}


def scaled_object(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"scaleTargetRef": {"name": "worker"}, "triggers": [NATS]}
    body.update(spec)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "echo", "namespace": "apps"},
        "spec": body,
    }


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_scaled_object(raw)
    return [str(p) for p in info.value.problems]


def test_defaults_follow_keda() -> None:
    raw = scaled_object()
    del raw["metadata"]["namespace"]
    so = parse_scaled_object(raw)
    assert so.ref == ObjectRef("default", "echo")
    assert (so.polling_interval, so.cooldown_period, so.initial_cooldown_period) == (30, 300, 0)
    assert (so.min_replica_count, so.max_replica_count, so.idle_replica_count) == (0, 100, None)
    assert so.scale_target_ref.api_version == "apps/v1"
    assert so.scale_target_ref.kind == "Deployment"
    assert so.scale_target_ref.env_source_container_name is None
    assert so.fallback is None
    assert so.hpa_name == "keda-hpa-echo"
    [trigger] = so.triggers
    assert (trigger.index, trigger.type, trigger.target_type) == (
        0,
        "nats-jetstream",
        "AverageValue",
    )
    assert trigger.use_cached_metrics is False
    assert trigger.authentication_ref is None
    assert dict(trigger.metadata) == NATS["metadata"]
    assert so.warnings == ()


def test_given_fields_are_kept() -> None:
    raw = scaled_object(
        pollingInterval=5,
        cooldownPeriod=60,
        initialCooldownPeriod=120,
        minReplicaCount=2,
        maxReplicaCount=5,
        idleReplicaCount=0,
        fallback={"failureThreshold": 3, "replicas": 4, "behavior": "currentReplicas"},
        advanced={
            "restoreToOriginalReplicaCount": True,
            "horizontalPodAutoscalerConfig": {
                "name": "custom-hpa",
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
            },
        },
    )
    raw["spec"]["scaleTargetRef"] = {"name": "db", "kind": "StatefulSet", "apiVersion": "apps/v1"}
    raw["spec"]["triggers"] = [
        {**NATS, "name": "jobs", "metricType": "Value", "authenticationRef": {"name": "auth"}}
    ]
    raw["metadata"]["creationTimestamp"] = "2026-01-02T03:04:05Z"
    so = parse_scaled_object(raw)
    assert (so.polling_interval, so.cooldown_period, so.initial_cooldown_period) == (5, 60, 120)
    assert (so.min_replica_count, so.max_replica_count, so.idle_replica_count) == (2, 5, 0)
    assert so.scale_target_ref.kind == "StatefulSet"
    assert so.fallback is not None
    assert (so.fallback.failure_threshold, so.fallback.replicas) == (3, 4)
    assert so.fallback.behavior == "currentReplicas"
    assert so.hpa_name == "custom-hpa"
    assert so.advanced.restore_to_original_replica_count is True
    assert so.advanced.hpa_behavior is not None
    assert so.advanced.hpa_behavior.to_json() == {"scaleDown": {"stabilizationWindowSeconds": 10}}
    assert so.triggers[0].name == "jobs"
    assert so.triggers[0].metric_type == "Value"
    assert so.triggers[0].authentication_ref == AuthenticationRef("auth", "TriggerAuthentication")
    assert so.meta.creation_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_unknown_fields_are_warnings_not_errors() -> None:
    raw = scaled_object(fallbacks=[{"failureType": "all", "replicas": 5}])
    raw["spec"]["triggers"] = [{**NATS, "authRef": "x"}]
    so = parse_scaled_object(raw)
    assert so.warnings == (
        "fallbacks: unknown field, ignored",
        "triggers[0].authRef: unknown field, ignored",
    )


CPU = {"type": "cpu", "metricType": "AverageValue", "metadata": {"value": "50"}}
ONE_OF = "is not one of: AverageValue, Value, Utilization"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"minReplicaCount": 5, "maxReplicaCount": 2},
            "minReplicaCount: 5 must not exceed maxReplicaCount 2",
        ),
        (
            {"minReplicaCount": 1, "idleReplicaCount": 1},
            "idleReplicaCount: 1 must be less than minReplicaCount 1",
        ),
        (
            {"idleReplicaCount": 0},
            "idleReplicaCount: 0 must be less than minReplicaCount (default 0)",
        ),
        ({"scaleTargetRef": {"kind": "Deployment"}}, "scaleTargetRef.name: is required"),
        ({"scaleTargetRef": None}, "scaleTargetRef.name: is required"),
        ({"pollingInterval": 0}, "pollingInterval: 0 must be at least 1"),
        ({"cooldownPeriod": "60"}, 'cooldownPeriod: "60" is not an integer'),
        ({"minReplicaCount": True}, "minReplicaCount: true is not an integer"),
        ({"maxReplicaCount": 0}, "maxReplicaCount: 0 must be at least 1"),
        ({"triggers": []}, "triggers: at least one trigger is required"),
        ({"triggers": [{"metadata": {}}]}, "triggers[0].type: is required"),
        (
            {"triggers": [{"type": "cron", "metadata": {"desiredReplicas": 3}}]},
            "triggers[0].metadata.desiredReplicas: 3 must be a string (quote it in YAML)",
        ),
        (
            {"triggers": [{**NATS, "metricType": "Average"}]},
            f'triggers[0].metricType: "Average" {ONE_OF}',
        ),
        (
            {"triggers": [{**NATS, "metricType": "Utilization"}]},
            'triggers[0].metricType: "Utilization" is valid only for cpu and memory',
        ),
        (
            {"triggers": [{"type": "cron", "useCachedMetrics": True}]},
            "triggers[0].useCachedMetrics: is not allowed for cron triggers",
        ),
        (
            {"triggers": [{**NATS, "authenticationRef": {"kind": "Secret", "name": "a"}}]},
            'triggers[0].authenticationRef.kind: "Secret" is not one of: '
            "TriggerAuthentication, ClusterTriggerAuthentication",
        ),
        (
            {"triggers": [{**NATS, "name": "a"}, CPU, {**NATS, "name": "a"}]},
            'triggers[2].name: "a" is already the name of triggers[0]',
        ),
        (
            {
                "triggers": [CPU],
                "minReplicaCount": 1,
                "fallback": {"failureThreshold": 3, "replicas": 2},
            },
            "fallback: needs at least one trigger that is not cpu or memory",
        ),
        ({"fallback": {"replicas": 2}}, "fallback.failureThreshold: is required"),
        ({"fallback": {"failureThreshold": 3}}, "fallback.replicas: is required"),
        (
            {"fallback": {"failureThreshold": -1, "replicas": 2}},
            "fallback.failureThreshold: -1 must be at least 0",
        ),
        (
            {"advanced": {"scalingModifiers": {"target": "2"}}},
            "advanced.scalingModifiers.formula: is required",
        ),
    ],
)
def test_each_problem_is_named_with_its_path(change: dict[str, Any], problem: str) -> None:
    assert problems_of(scaled_object(**change)) == [problem]


def test_triggers_must_be_a_list() -> None:
    assert problems_of(scaled_object(triggers="cron")) == [
        'triggers: must be a list, not "cron"',
        "triggers: at least one trigger is required",
    ]


def test_every_problem_at_once_in_one_message() -> None:
    raw = scaled_object(
        scaleTargetRef={},
        minReplicaCount=5,
        maxReplicaCount=2,
        fallback={"replicas": 1},
        triggers=[
            {"type": "cpu", "name": "t", "metricType": "Utilization", "metadata": {"value": 70}},
            {**NATS, "name": "t", "metricType": "Utilization"},
        ],
    )
    with pytest.raises(ConfigError) as info:
        parse_scaled_object(raw)
    error = info.value
    assert error.subject == "ScaledObject apps/echo"
    assert str(error).startswith("ScaledObject apps/echo: ")
    assert sorted(str(p) for p in error.problems) == sorted(
        [
            "scaleTargetRef.name: is required",
            "minReplicaCount: 5 must not exceed maxReplicaCount 2",
            "triggers[0].metadata.value: 70 must be a string (quote it in YAML)",
            'triggers[1].metricType: "Utilization" is valid only for cpu and memory',
            'triggers[1].name: "t" is already the name of triggers[0]',
            "fallback.failureThreshold: is required",
        ]
    )
    assert str(error) == "ScaledObject apps/echo: " + "; ".join(str(p) for p in error.problems)


def test_missing_metadata_and_spec() -> None:
    with pytest.raises(ConfigError) as info:
        parse_scaled_object({"kind": "ScaledObject"})
    assert str(info.value).startswith("ScaledObject default/<unnamed>: ")
    problems = [str(p) for p in info.value.problems]
    assert "metadata.name: is required" in problems
    assert "spec: is required and must be an object" in problems


def test_bad_creation_timestamp_is_a_problem() -> None:
    raw = scaled_object()
    raw["metadata"]["creationTimestamp"] = "yesterday"
    assert problems_of(raw) == ['metadata.creationTimestamp: "yesterday" is not an RFC 3339 time']


def test_parse_does_not_keep_references_to_the_input() -> None:
    raw = scaled_object()
    before = copy.deepcopy(raw)
    so: ScaledObject = parse_scaled_object(raw)
    raw["spec"]["triggers"][0]["metadata"]["stream"] = "CHANGED"
    assert raw != before
    assert so.triggers[0].metadata["stream"] == "JOBS"
    with pytest.raises(TypeError):
        so.triggers[0].metadata["stream"] = "x"  # type: ignore[index]


def test_trigger_authentication() -> None:
    auth = parse_trigger_authentication(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "nats-auth", "namespace": "apps"},
            "spec": {
                "secretTargetRef": [{"parameter": "token", "name": "creds", "key": "tok"}],
                "configMapTargetRef": [{"parameter": "account", "name": "cfg", "key": "acc"}],
                "env": [{"parameter": "user", "name": "USER", "containerName": "app"}],
                "podIdentity": {"provider": "none"},
            },
        }
    )
    assert auth.kind == "TriggerAuthentication"
    assert auth.cluster is False
    assert auth.meta.ref == ObjectRef("apps", "nats-auth")
    assert auth.secret_target_refs == (SecretTargetRef("token", "creds", "tok"),)
    assert auth.config_map_target_refs == (SecretTargetRef("account", "cfg", "acc"),)
    assert auth.env == (EnvRef("user", "USER", "app"),)
    assert auth.pod_identity_provider == "none"


def test_cluster_trigger_authentication_is_not_namespaced() -> None:
    auth = parse_trigger_authentication(
        {
            "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": "shared", "namespace": "ignored"},
            "spec": {"secretTargetRef": [{"parameter": "token", "name": "creds", "key": "tok"}]},
        }
    )
    assert auth.kind == "ClusterTriggerAuthentication"
    assert auth.cluster is True
    assert auth.meta.ref == ObjectRef("", "shared")
    assert auth.secret_target_refs == (SecretTargetRef("token", "creds", "tok"),)


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("TriggerAuthentication", "TriggerAuthentication apps/bad"),
        ("ClusterTriggerAuthentication", "ClusterTriggerAuthentication bad"),
    ],
)
def test_trigger_authentication_problems(kind: str, subject: str) -> None:
    raw = {
        "kind": kind,
        "metadata": {"name": "bad", "namespace": "apps"},
        "spec": {"secretTargetRef": [{"parameter": "token", "name": "creds"}], "env": [{}]},
    }
    with pytest.raises(ConfigError) as info:
        parse_trigger_authentication(raw)
    assert info.value.subject == subject
    assert [str(p) for p in info.value.problems] == [
        "secretTargetRef[0].key: is required",
        "env[0].parameter: is required",
        "env[0].name: is required",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("three", '"three" is not an integer'),
        (" 3", '" 3" is not an integer'),
        ("9" * 5000, "is not an integer"),
        ("-1", '"-1" must be at least 0'),
    ],
)
def test_paused_replicas_is_read_once_as_a_replica_count(value: str, problem: str) -> None:
    raw = scaled_object()
    raw["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": value}
    [found] = problems_of(raw)
    assert found.startswith("metadata.annotations.autoscaling.keda.sh/paused-replicas: ")
    assert problem in found
    raw["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": "+2"}
    assert parse_scaled_object(raw).paused_replicas == 2


def test_a_malformed_spec_keeps_its_metadata_and_status() -> None:
    """What Ready=False and finalizing need, from an object whose spec cannot be used."""
    raw = scaled_object(pollingInterval="often")
    raw["metadata"] |= {
        "uid": "u-1",
        "resourceVersion": "41",
        "generation": 3,
        "finalizers": ["finalizer.keda.sh"],
        "deletionTimestamp": "2026-01-02T03:04:05Z",
    }
    raw["status"] = {
        "originalReplicaCount": 4,
        "lastActiveTime": "2026-01-02T03:00:00Z",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ScaledObjectReady"}],
    }
    document = read_scaled_object(raw)
    assert document.scaled_object is None and document.error is not None
    assert (
        str(document.error) == 'ScaledObject apps/echo: pollingInterval: "often" is not an integer'
    )
    assert document.ref == ObjectRef("apps", "echo")
    assert (document.meta.uid, document.meta.resource_version, document.meta.generation) == (
        "u-1",
        "41",
        3,
    )
    assert document.meta.finalizers == ("finalizer.keda.sh",)
    assert document.meta.deletion_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert document.status.original_replica_count == 4
    assert document.status.last_active_time == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    ready = document.status.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True", "ScaledObjectReady")
    assert document.reference.uid == "u-1" and document.reference.kind == "ScaledObject"


def test_a_status_it_cannot_read_is_a_warning_not_a_reason_to_stop() -> None:
    raw = scaled_object()
    raw["status"] = {"originalReplicaCount": "three", "lastActiveTime": "soon"}
    so = parse_scaled_object(raw)
    assert so.status.original_replica_count is None and so.status.last_active_time is None
    assert so.warnings == (
        'status.originalReplicaCount: "three" is not an integer; ignored',
        'status.lastActiveTime: "soon" is not an RFC 3339 time; ignored',
    )


def test_a_malformed_hpa_behavior_is_a_field_of_the_scaled_object() -> None:
    behavior = {
        "scaleDown": {"selectPolicy": "Sometimes", "policies": [{"type": "Pods", "value": "1"}]},
        "scaleUp": {"tolerance": "lots"},
    }
    raw = scaled_object(advanced={"horizontalPodAutoscalerConfig": {"behavior": behavior}})
    where = "advanced.horizontalPodAutoscalerConfig.behavior"
    assert problems_of(raw) == [
        f'{where}.scaleUp.tolerance: "lots" is not a Kubernetes quantity',
        f'{where}.scaleDown.selectPolicy: "Sometimes" is not one of: Max, Min, Disabled',
        f'{where}.scaleDown.policies[0].value: "1" is not an integer',
        f"{where}.scaleDown.policies[0].periodSeconds: is required",
    ]
