"""The admission webhook on the object alone: the review's wire, KEDA's rules 5 to 10 with
KEDA's exact messages, the parser's problems beside them in one stable message, warnings,
updates that change nothing checked, and the series. The cluster's rules are in
test_admission_cluster.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from metrics_adapter.admission import webhook as webhook_module
from metrics_adapter.admission.findings import MAX_MESSAGE, MAX_SHOWN
from metrics_adapter.admission.review import MAX_DEPTH
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.errors import BadRequest
from metrics_adapter.metrics.telemetry import WEBHOOK_NAMESPACES, Telemetry
from tests.support.admission import (
    NS,
    cron,
    decide,
    edited,
    message,
    resource,
    review,
    scaled_job,
    scaled_object,
    trigger_authentication,
)

PROBLEMS = re.compile(r"; (?=[\w.\[\]-]+: )")
"""Between two problems: KEDA's own messages hold "; " too, never followed by a field path."""


@pytest.fixture
def webhook() -> AdmissionWebhook:
    return AdmissionWebhook(Telemetry())


async def refused(webhook: AdmissionWebhook, obj: dict[str, Any], **how: Any) -> list[str]:
    """Each ``path: message`` of the refusal, in its order."""
    text = message(await decide(webhook, obj, **how))
    subject = f"{obj['kind']} {obj['metadata'].get('namespace', NS)}/{obj['metadata']['name']}: "
    if obj["kind"] == "ClusterTriggerAuthentication":
        subject = f"{obj['kind']} {obj['metadata']['name']}: "
    assert text.startswith(subject), text
    return PROBLEMS.split(text.removeprefix(subject))


# The review on the wire.


async def test_a_valid_object_is_allowed_with_its_uid(webhook: AdmissionWebhook) -> None:
    response = await decide(webhook, scaled_object(), uid="abc-123")
    assert response == {"uid": "abc-123", "allowed": True}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "must be an object"),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}',
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "request: is required",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"kind": {"kind": "ScaledObject"}, "operation": "CREATE", "object": {}}}',
            "request.uid: is required",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"uid": "u", "kind": {"kind": "ScaledObject"}, "operation": "CREATE"}}',
            "request.object: is required for CREATE",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"uid": "u", "kind": {"kind": "ScaledObject"}, "operation": "PATCH", "object": {}}}',
            'request.operation: "PATCH" is not one of',
        ),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b"[" * 10_000 + b"]" * 10_000, f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, f"nested deeper than {MAX_DEPTH} levels"),
        ("\u00e9".encode("latin-1"), "not JSON"),
    ],
)
async def test_a_malformed_review_is_a_bad_request_naming_why(
    webhook: AdmissionWebhook, body: bytes, says: str
) -> None:
    with pytest.raises(BadRequest, match="malformed AdmissionReview") as caught:
        await webhook.review("ScaledObject", body)
    assert says in str(caught.value)


async def test_an_update_needs_the_old_object(webhook: AdmissionWebhook) -> None:
    body = json.dumps(review(scaled_object(), operation="UPDATE")).encode()
    with pytest.raises(BadRequest, match=r"request\.oldObject: is required for UPDATE"):
        await webhook.review("ScaledObject", body)


async def test_a_review_of_another_kind_on_this_path_is_a_bad_request(
    webhook: AdmissionWebhook,
) -> None:
    body = json.dumps(review(scaled_job())).encode()
    with pytest.raises(BadRequest, match="this path validates ScaledObject, not ScaledJob"):
        await webhook.review("ScaledObject", body)


async def test_delete_and_connect_are_not_checked(webhook: AdmissionWebhook) -> None:
    broken = scaled_object(triggers=None, minReplicaCount="many")
    for operation in ("DELETE", "CONNECT"):
        assert await decide(webhook, broken, operation=operation) == {
            "uid": review(broken)["request"]["uid"],
            "allowed": True,
        }


# KEDA's rules on the object (§2.2 rules 5 to 10, §3.4), with KEDA's messages.


async def test_rule_5_only_cpu_and_memory_cannot_scale_to_zero(webhook: AdmissionWebhook) -> None:
    expected = [
        "minReplicaCount: scaledobject has only cpu/memory triggers AND minReplica is 0 "
        "(scale to zero doesn't work in this case)"
    ]
    assert await refused(webhook, scaled_object(triggers=[resource()])) == expected
    explicit = scaled_object(triggers=[resource(), resource("memory")], minReplicaCount=0)
    assert await refused(webhook, explicit) == expected
    assert (await decide(webhook, scaled_object(triggers=[resource()], minReplicaCount=1)))[
        "allowed"
    ]


async def test_rule_5_is_kedas_for_deployments_and_statefulsets_only_and_not_on_dry_run(
    webhook: AdmissionWebhook,
) -> None:
    """Where KEDA does not apply it, the parser still refuses, in its own words."""
    parser = [
        "minReplicaCount: 0 needs a trigger that is not cpu or memory: the HPA cannot scale "
        "from zero on resource usage"
    ]
    assert await refused(webhook, scaled_object(triggers=[resource()]), dry_run=True) == parser
    rollout = scaled_object(
        triggers=[resource()],
        scaleTargetRef={"name": "web", "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"},
    )
    assert await refused(webhook, rollout) == parser


async def test_rule_6_replica_bounds(webhook: AdmissionWebhook) -> None:
    obj = scaled_object(minReplicaCount=5, maxReplicaCount=3, idleReplicaCount=7)
    assert await refused(webhook, obj) == [
        "idleReplicaCount: IdleReplicaCount=7 must be less than MinReplicaCount=5",
        "minReplicaCount: MinReplicaCount=5 must be less than MaxReplicaCount=3",
    ]
    assert await refused(webhook, scaled_object(minReplicaCount=101)) == [
        "minReplicaCount: MinReplicaCount=101 must be less than MaxReplicaCount=100"
    ]
    assert await refused(webhook, scaled_object(idleReplicaCount=0)) == [
        "idleReplicaCount: IdleReplicaCount=0 must be less than MinReplicaCount=0"
    ]


async def test_rule_6_counts_an_explicit_zero_minimum_as_one_and_the_parser_does_not(
    webhook: AdmissionWebhook,
) -> None:
    """KEDA's quirk admits idle 0 with an explicit min 0; our parser refuses it (the idle
    count would equal the minimum), so the answer is the parser's."""
    assert await refused(webhook, scaled_object(minReplicaCount=0, idleReplicaCount=0)) == [
        "idleReplicaCount: 0 must be less than minReplicaCount 0"
    ]
    assert await refused(webhook, scaled_object(minReplicaCount=0, idleReplicaCount=1)) == [
        "idleReplicaCount: IdleReplicaCount=1 must be less than MinReplicaCount=1"
    ]


async def test_rule_7_fallback(webhook: AdmissionWebhook) -> None:
    negative = scaled_object(fallback={"failureThreshold": -1, "replicas": 2})
    assert await refused(webhook, negative) == [
        "fallback: FailureThreshold=-1 & Replicas=2 must both be greater than or equal to 0"
    ]
    cpu_only = scaled_object(
        triggers=[resource()], minReplicaCount=1, fallback={"failureThreshold": 3, "replicas": 2}
    )
    assert await refused(webhook, cpu_only) == [
        "fallback: at least one trigger (that is not cpu or memory) has to have the "
        "`AverageValue` type for the fallback to be enabled"
    ]
    value_metric = scaled_object(
        triggers=[cron(metricType="Value")], fallback={"failureThreshold": 3, "replicas": 2}
    )
    assert (await decide(webhook, value_metric))["allowed"]  # KEDA >= 2.18: any metric type


MODIFIERS = "advanced.scalingModifiers"


@pytest.mark.parametrize(
    ("modifiers", "expected"),
    [
        (
            {"target": "2"},
            f"{MODIFIERS}.formula: error ScalingModifiers.Formula is mandatory",
        ),
        (
            {"formula": "a"},
            f"{MODIFIERS}.target: error validating formula in ScalingModifiers: formula is "
            "given but target is empty",
        ),
        (
            {"formula": "a + cpu_metric", "target": "2"},
            f"{MODIFIERS}.formula: error validating formula in ScalingModifiers: unknown name "
            "cpu_metric (1:11)",
        ),
        (
            {"formula": "a", "target": "two"},
            f"{MODIFIERS}.target: error validating target in ScalingModifiers: error "
            "converting target for scalingModifiers (string->float) to valid target: "
            'strconv.ParseFloat: parsing "two": invalid syntax',
        ),
        (
            {"formula": "a", "target": "-1"},
            f"{MODIFIERS}.target: error validating target in ScalingModifiers: error "
            "converting target for scalingModifiers (string->float) to valid target: %!w(<nil>)",
        ),
        (
            {"formula": "a", "target": "2", "metricType": "Utilization"},
            f"{MODIFIERS}.metricType: error validating target in ScalingModifiers: error trigger "
            "type is Utilization, but it needs to be AverageValue or Value for external metrics",
        ),
    ],
)
async def test_rule_8_scaling_modifiers(
    webhook: AdmissionWebhook, modifiers: dict[str, str], expected: str
) -> None:
    obj = scaled_object(
        triggers=[cron(name="a"), resource(name="cpu_metric")],
        minReplicaCount=1,
        advanced={"scalingModifiers": modifiers},
    )
    assert await refused(webhook, obj) == [expected]


async def test_rule_8_a_formula_over_named_triggers_is_allowed(webhook: AdmissionWebhook) -> None:
    obj = scaled_object(
        triggers=[cron(name="a"), cron(name="b")],
        advanced={"scalingModifiers": {"formula": "(a + b) / 2", "target": "2.5"}},
    )
    assert (await decide(webhook, obj))["allowed"]


async def test_rule_8_scaling_modifiers_fallback_needs_a_formula(webhook: AdmissionWebhook) -> None:
    obj = scaled_object(
        fallback={"failureThreshold": 3, "replicas": 2, "behavior": "scalingModifiers"}
    )
    assert await refused(webhook, obj) == [
        "fallback.behavior: scalingModifiers fallback behavior requires "
        "scalingModifiers.formula to be defined"
    ]


async def test_rule_9_names_that_cannot_be_labels(webhook: AdmissionWebhook) -> None:
    long = "w" * 64
    assert await refused(webhook, scaled_object(long)) == [
        f'metadata.name: scaledobject name "{long}" is 64 characters long; must be no more '
        'than 63 characters because it is used as the "scaledobject.keda.sh/name" label value'
    ]
    hpa = "keda-hpa-" + "w" * 55
    assert await refused(webhook, scaled_object("w" * 55)) == [
        f'metadata.name: HPA name "{hpa}" derived from scaledobject is 64 characters long; '
        "must be no more than 63 characters; set spec.advanced.horizontalPodAutoscalerConfig."
        "name to a shorter name or shorten the scaledobject name"
    ]
    short = {"horizontalPodAutoscalerConfig": {"name": "web-hpa"}}
    assert (await decide(webhook, scaled_object("w" * 55, advanced=short)))["allowed"]


@pytest.mark.parametrize("build", [scaled_object, scaled_job])
async def test_rule_10_triggers_for_both_kinds(webhook: AdmissionWebhook, build: Any) -> None:
    assert await refused(webhook, build(triggers=[])) == [
        "triggers: no triggers defined in the ScaledObject/ScaledJob"
    ]
    assert await refused(webhook, build(triggers=None)) == [
        "triggers: no triggers defined in the ScaledObject/ScaledJob"
    ]
    cached = build(triggers=[cron(useCachedMetrics=True)])
    assert await refused(webhook, cached) == [
        'triggers[0].useCachedMetrics: property "useCachedMetrics" is not supported for '
        '"cron" scaler'
    ]
    twice = build(triggers=[cron(name="x"), cron(name="y"), cron(name="x")])
    assert await refused(webhook, twice) == [
        'triggers[2].name: triggerName "x" is defined multiple times in the '
        "ScaledObject/ScaledJob, but it must be unique"
    ]


# The parser's problems, in the same answer, in a stable order.


async def test_every_problem_in_one_message_sorted_by_rule_then_path(
    webhook: AdmissionWebhook,
) -> None:
    def replicas(text: str) -> dict[str, Any]:
        return cron(metadata={**cron()["metadata"], "desiredReplicas": text})

    triggers = [cron(name="a"), cron(name="a"), replicas("many"), *[cron()] * 7, replicas("few")]
    obj = scaled_object(
        triggers=triggers,
        minReplicaCount=5,
        maxReplicaCount=3,
        pollingInterval="often",
        fallback={"failureThreshold": -1, "replicas": 0},
    )
    assert await refused(webhook, obj) == [
        "minReplicaCount: MinReplicaCount=5 must be less than MaxReplicaCount=3",
        "fallback: FailureThreshold=-1 & Replicas=0 must both be greater than or equal to 0",
        'triggers[1].name: triggerName "a" is defined multiple times in the '
        "ScaledObject/ScaledJob, but it must be unique",
        'pollingInterval: "often" is not an integer',
        'triggers[2].metadata.desiredReplicas: "many" is not a number',
        'triggers[10].metadata.desiredReplicas: "few" is not a number',
    ]


async def test_the_order_does_not_depend_on_the_order_of_the_fields(
    webhook: AdmissionWebhook,
) -> None:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "web"},
        "triggers": [{"type": "nope", "metadata": {}}, cron(useCachedMetrics=True)],
        "minReplicaCount": 7,
        "maxReplicaCount": 2,
        "cooldownPeriod": -1,
    }
    forwards = scaled_object()
    forwards["spec"] = spec
    first = await refused(webhook, forwards)
    backwards = scaled_object()
    backwards["spec"] = dict(reversed(list(spec.items())))
    assert await refused(webhook, backwards) == first
    assert len(first) == 4, first


async def test_a_hostile_object_gets_a_bounded_answer(webhook: AdmissionWebhook) -> None:
    many = scaled_object(triggers=[{"type": "nope" * 100, "metadata": {}}] * 500)
    text = message(await decide(webhook, many))
    shown = text.count("is not a supported trigger type")
    assert 0 < shown <= MAX_SHOWN and len(text) <= MAX_MESSAGE + 1024
    assert text.endswith(f"; and {500 - shown} more")
    long_keys = {f"{i}{'k' * 4000}": 1 for i in range(40)}
    wide = scaled_object(triggers=[cron(metadata={**cron()["metadata"], **long_keys})])
    text = message(await decide(webhook, wide))
    assert 30_000 < len(text) <= 33 * 1024
    assert text.endswith(" more")


async def test_unknown_trigger_types_and_bad_metadata_refuse_as_invalid_spec(
    webhook: AdmissionWebhook,
) -> None:
    obj = scaled_object(triggers=[{"type": "gcp-pubsub", "metadata": {}}])
    [problem] = await refused(webhook, obj)
    assert problem.startswith('triggers[0].type: "gcp-pubsub" is not a supported trigger type (')


# Warnings: accepted, but not used.


async def test_warnings_for_what_is_accepted_but_ignored(webhook: AdmissionWebhook) -> None:
    obj = scaled_object(
        triggers=[
            {
                "type": "prometheus",
                "useCachedMetrics": True,
                "metadata": {"serverAddress": "http://prom:9090", "query": "q", "threshold": "5"},
            }
        ],
        minReplicaCount=2,
        cooldownPeriod=60,
        unknownField=True,
    )
    response = await decide(webhook, obj)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "unknownField: unknown field, ignored",
        "cooldownPeriod: CooldownPeriod is configured but is not relevant. CooldownPeriod is "
        "only relevant when minReplicaCount = 0 or idleReplicaCount is set",
        "triggers[0].useCachedMetrics: ignored: every read is answered from memory, polled "
        "once per pollingInterval",
    ]


async def test_cooldown_matters_with_scale_to_zero_or_an_idle_count(
    webhook: AdmissionWebhook,
) -> None:
    for low, idle in ((0, None), (2, 0)):
        response = await decide(
            webhook, scaled_object(cooldownPeriod=60, minReplicaCount=low, idleReplicaCount=idle)
        )
        assert response == {"uid": response["uid"], "allowed": True}


async def test_warnings_come_with_a_refusal_too(webhook: AdmissionWebhook) -> None:
    response = await decide(webhook, scaled_object(minReplicaCount=9, maxReplicaCount=1, x=1))
    assert response["warnings"] == ["x: unknown field, ignored"]


async def test_metadata_keys_nothing_reads_are_warnings(webhook: AdmissionWebhook) -> None:
    metadata = {**cron()["metadata"], "timezon": "UTC", "tlsFromEnv": "TLS"}
    response = await decide(webhook, scaled_object(triggers=[cron(metadata=metadata)]))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "triggers[0].metadata.timezon: not a parameter of cron; ignored (a typo of timezone?)",
        "triggers[0].metadata.tlsFromEnv: not a parameter of cron; ignored",
    ]


async def test_a_typo_is_warned_about_beside_the_refusal_it_causes(
    webhook: AdmissionWebhook,
) -> None:
    metadata = {k: v for k, v in cron()["metadata"].items() if k != "desiredReplicas"}
    response = await decide(
        webhook, scaled_object(triggers=[cron(metadata={**metadata, "desiredReplica": "2"})])
    )
    assert message(response).endswith("triggers[0].metadata.desiredReplicas: is required")
    assert response["warnings"] == [
        "triggers[0].metadata.desiredReplica: not a parameter of cron; ignored (a typo of "
        "desiredReplicas?)"
    ]


async def test_a_scaled_jobs_ignored_keys_are_warnings_too(webhook: AdmissionWebhook) -> None:
    metadata = {**cron()["metadata"], "starts": "x"}
    response = await decide(webhook, scaled_job(triggers=[cron(metadata=metadata)]))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "triggers[0].metadata.starts: not a parameter of cron; ignored (a typo of start?)"
    ]


# Updates.


async def test_an_update_that_changes_neither_spec_nor_annotations_is_not_checked(
    webhook: AdmissionWebhook,
) -> None:
    """As KEDA skips a finalizer's removal: the object is not re-judged for a change no rule
    reads, so a finalizer can always be added or removed."""
    bad = scaled_object(minReplicaCount=9, maxReplicaCount=1)
    done = edited(bad)
    done["metadata"]["finalizers"] = ["finalizer.keda.sh"]
    done["metadata"]["labels"] = {"team": "a"}
    assert (await decide(webhook, done, operation="UPDATE", old=bad))["allowed"]
    annotated = edited(bad)
    annotated["metadata"]["annotations"] = {"autoscaling.keda.sh/paused": "true"}
    assert not (await decide(webhook, annotated, operation="UPDATE", old=bad))["allowed"]
    respec = edited(bad, maxReplicaCount=2)
    assert not (await decide(webhook, respec, operation="UPDATE", old=bad))["allowed"]


async def test_an_update_that_fixes_the_object_is_allowed(webhook: AdmissionWebhook) -> None:
    bad = scaled_object(minReplicaCount=9, maxReplicaCount=1)
    fixed = edited(bad, maxReplicaCount=10)
    assert (await decide(webhook, fixed, operation="UPDATE", old=bad))["allowed"]


# ScaledJobs, TriggerAuthentications.


async def test_a_scaled_job_is_refused_for_what_its_parser_finds(webhook: AdmissionWebhook) -> None:
    obj = scaled_job(jobTargetRef=None, triggers=[cron(metricType="Value")])
    assert await refused(webhook, obj) == [
        "jobTargetRef: is required and must be a batch/v1 JobSpec",
        "triggers[0].metricType: cannot be set in a ScaledJob's triggers",
    ]
    assert (await decide(webhook, scaled_job()))["allowed"]


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (
            {"provider": "azure-workload", "identityId": ""},
            "podIdentity.identityId: identityId of PodIdentity should not be empty. If it's "
            'set, identityId has to be different than ""',
        ),
        (
            {"provider": "azure-workload", "identityAuthorityHost": "https://login"},
            "podIdentity.identityTenantId: identityTenantID of PodIdentity should not be nil "
            "or empty when identityAuthorityHost of PodIdentity is set",
        ),
        (
            {"provider": "azure-workload", "identityTenantId": ""},
            "podIdentity.identityTenantId: identityTenantId of PodIdentity should not be empty. "
            'If it\'s set, identityTenantId has to be different than ""',
        ),
        (
            {"provider": "aws", "roleArn": "arn:aws:iam::1:role/r", "identityOwner": "workload"},
            "podIdentity.roleArn: roleArn of PodIdentity can't be set if KEDA isn't identityOwner",
        ),
        (
            {"provider": "aws", "externalID": "x"},
            "podIdentity.externalID: externalID of PodIdentity requires roleArn to be set",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["TriggerAuthentication", "ClusterTriggerAuthentication"])
async def test_pod_identity_rules(
    webhook: AdmissionWebhook, kind: str, identity: dict[str, str], expected: str
) -> None:
    assert await refused(webhook, trigger_authentication(kind, podIdentity=identity)) == [expected]


@pytest.mark.parametrize(
    ("oauth2", "expected"),
    [
        (
            {"type": "password"},
            "oauth2.type: oauth2.type must be 'clientCredentials', got 'password'",
        ),
        (
            {"type": "clientCredentials"},
            "oauth2.clientId: oauth2.clientId is required when oauth2 is configured",
        ),
        (
            {"type": "clientCredentials", "clientId": "c"},
            "oauth2.tokenUrl: oauth2.tokenUrl is required when oauth2 is configured",
        ),
        (
            {"type": "clientCredentials", "clientId": "c", "tokenUrl": "ftp://x/t"},
            "oauth2.tokenUrl: oauth2.tokenUrl must be a valid http or https URL",
        ),
    ],
)
async def test_oauth2_rules(
    webhook: AdmissionWebhook, oauth2: dict[str, str], expected: str
) -> None:
    assert await refused(webhook, trigger_authentication(oauth2=oauth2)) == [expected]


async def test_a_pod_identity_keda_does_not_check_ends_the_checks(
    webhook: AdmissionWebhook,
) -> None:
    """KEDA returns at once for gcp, aws-eks and none: their oauth2 block is not checked."""
    obj = trigger_authentication(podIdentity={"provider": "none"}, oauth2={"type": "password"})
    response = await decide(webhook, obj)
    assert response["allowed"] is True
    assert response.get("warnings") is None


async def test_unsupported_authentication_sources_are_warned_about(
    webhook: AdmissionWebhook,
) -> None:
    obj = trigger_authentication(
        azureKeyVault={"vaultUri": "https://v", "secrets": [{"parameter": "p", "name": "n"}]},
        gcpSecretManager={"secrets": [{"parameter": "q", "id": "i"}]},
        podIdentity={"provider": "gcp"},
        boundServiceAccountToken=[{"parameter": "token", "serviceAccountName": "s"}],
        secretTargetRef=[{"parameter": "password", "name": "s", "key": "k"}],
    )
    response = await decide(webhook, obj)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "azureKeyVault: not supported by metrics-adapter: triggers using this authentication "
        "are not ready (Ready=False names it)",
        "gcpSecretManager: not supported by metrics-adapter: triggers using this "
        "authentication are not ready (Ready=False names it)",
        'podIdentity.provider: "gcp" is not supported by metrics-adapter: triggers using '
        "this authentication are not ready (Ready=False names it)",
    ]


async def test_a_trigger_authentication_is_refused_for_what_its_parser_finds(
    webhook: AdmissionWebhook,
) -> None:
    obj = trigger_authentication(secretTargetRef=[{"parameter": "password", "name": "s"}])
    assert await refused(webhook, obj) == ["secretTargetRef[0].key: is required"]


# The series, as KEDA names them.


def sample(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


async def test_validations_and_refusals_are_counted_by_namespace_action_and_reason() -> None:
    telemetry = Telemetry()
    webhook = AdmissionWebhook(telemetry)
    await decide(webhook, scaled_object())
    bad = scaled_object(minReplicaCount=9, maxReplicaCount=1, triggers=[])
    await decide(webhook, bad, operation="UPDATE", old=scaled_object())
    await decide(webhook, scaled_job(triggers=[]))
    await decide(webhook, trigger_authentication(oauth2={"type": "x"}))
    validations = "keda_webhook_scaled_object_validations_total"
    errors = "keda_webhook_scaled_object_validation_errors_total"
    assert sample(telemetry, validations, namespace=NS, action="create") == 1
    assert sample(telemetry, validations, namespace=NS, action="update") == 1
    for reason in ("incorrect-replicas", "incorrect-triggers"):
        assert sample(telemetry, errors, namespace=NS, action="update", reason=reason) == 1
    assert (
        sample(telemetry, errors, namespace=NS, action="create", reason="incorrect-triggers") == 1
    )
    assert sample(telemetry, errors, namespace=NS, action="create", reason="invalid-spec") is None


def test_the_namespace_label_comes_from_a_bounded_set() -> None:
    telemetry = Telemetry()
    for i in range(WEBHOOK_NAMESPACES + 5):
        telemetry.webhook_validation(f"ns-{i}", "create")
    telemetry.webhook_validation("ns-0", "create")
    name = "keda_webhook_scaled_object_validations_total"
    assert sample(telemetry, name, namespace="ns-0", action="create") == 2
    assert sample(telemetry, name, namespace="_other", action="create") == 5
    assert sample(telemetry, name, namespace=f"ns-{WEBHOOK_NAMESPACES}", action="create") is None


# A bug of ours admits, as failurePolicy Ignore would.


async def test_an_internal_error_admits_with_a_warning_and_is_logged(
    webhook: AdmissionWebhook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(webhook_module, "scaled_object_rules", broken)
    response = await decide(webhook, scaled_object(minReplicaCount=9, maxReplicaCount=1))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "metrics-adapter could not check this object (logged): admitted"
    ]
    assert "ZeroDivisionError: a bug" in caplog.text
