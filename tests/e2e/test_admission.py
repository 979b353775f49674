"""The admission webhook on a real control plane: kube-apiserver calls the adapter through
deploy/webhook.yaml, as ``make cluster-up`` registers it, and relays its decisions to clients.

The adapter runs in cluster mode as its ServiceAccount (deploy/rbac.yaml's rules and no
more), so every cluster read the webhook makes is one RBAC grants: an admitted object comes
back without a "not checked" warning. The cluster is the module's own: a registered webhook
would judge the objects other modules create.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from scalers.registry import KINDS, RESOURCE_KINDS
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    WEBHOOK_CONFIGURATION,
    Adapter,
    ControlPlane,
    adapter_kubeconfig,
    deployment,
    register_webhook,
    wait_for,
    webhook_answers,
    webhook_configuration,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.triggers import scaled_job, scaled_object

pytestmark = pytest.mark.e2e

NS = "admission"
KEDA = "keda.sh/v1alpha1"
SO_WEBHOOK = 'admission webhook "vscaledobject.kb.io" denied the request: '
CRON = {"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "3"}
TRANSFER = "scaledobject.keda.sh/transfer-hpa-ownership"
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen: seconds of
apiserver and adapter work each, late."""
RECONCILE_WITHIN = 5.0 + SLACK
"""The controller reconciles a ScaledObject on its watch event: an HPA write follows within a
second or two when idle."""
CONFIGURATION_WITHIN = 5.0 + SLACK
"""kube-apiserver's webhook configurations come from an informer: a change applies within a
second when idle."""
CA_WRITTEN_WITHIN = 30.0 + SLACK
"""A self-managed adapter writes its caBundles before it serves (its start-up); 30 s is
Adapter.start's own bound."""
_WARNING = re.compile(r'^\d{3} \S+ "(?P<text>.*)"$')


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with cluster_mode(NS) as (cp, adapter):
        register_webhook(cp, adapter)
        yield Cluster(cp, adapter)


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    with cluster.adapter.healthy():
        yield


def warnings(response: httpx.Response) -> list[str]:
    """The texts of the Warning headers kube-apiserver sent (RFC 7234 form)."""
    return [_warning_text(h) for h in response.headers.get_list("warning")]


def _warning_text(header: str) -> str:
    match = _WARNING.match(header)
    return match["text"].replace('\\"', '"') if match else header


def cron(**fields: Any) -> dict[str, Any]:
    return {"type": "cron", "metadata": dict(CRON), **fields}


def so(name: str, target: str, *triggers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    doc = scaled_object(name, NS, triggers[0] if triggers else cron(), **spec)
    doc["spec"]["scaleTargetRef"]["name"] = target
    if len(triggers) > 1:
        doc["spec"]["triggers"] = list(triggers)
    return doc


def refused(response: httpx.Response) -> str:
    """The message of a webhook's refusal as kube-apiserver relays it: 403 Forbidden."""
    assert response.status_code == 403, response.text
    status = response.json()
    assert status["reason"] == "Forbidden", status
    return str(status["message"])


def stored(cp: ControlPlane, doc: dict[str, Any]) -> dict[str, Any] | None:
    meta = doc["metadata"]
    return cp.get(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace"))


def created(cp: ControlPlane, doc: dict[str, Any]) -> httpx.Response:
    response = cp.create(doc)
    assert response.status_code == 201, response.text
    assert not [w for w in warnings(response) if "not checked" in w], "RBAC lacks a read"
    return response


# -- ScaledObjects ---------------------------------------------------------------------------------


def test_a_malformed_scaled_object_is_refused_naming_every_bad_field(cluster: Cluster) -> None:
    cp = cluster.cp
    bad_cron = cron(metadata={**CRON, "desiredReplicas": "ten"})
    doc = so(
        "malformed",
        "web",
        bad_cron,
        {"type": "no-such-scaler", "metadata": {}},
        cron(name="a", useCachedMetrics=True),
        cron(name="a"),
        minReplicaCount=5,
        maxReplicaCount=2,
    )
    message = refused(cp.create(doc))
    types = ", ".join(sorted([*KINDS, *RESOURCE_KINDS]))
    assert message == SO_WEBHOOK + f"ScaledObject {NS}/malformed: " + "; ".join(
        [
            "minReplicaCount: MinReplicaCount=5 must be less than MaxReplicaCount=2",
            'triggers[2].useCachedMetrics: property "useCachedMetrics" is not supported for '
            '"cron" scaler',
            'triggers[3].name: triggerName "a" is defined multiple times in the '
            "ScaledObject/ScaledJob, but it must be unique",
            'triggers[0].metadata.desiredReplicas: "ten" is not a number',
            f'triggers[1].type: "no-such-scaler" is not a supported trigger type ({types})',
        ]
    )
    assert stored(cp, doc) is None


def test_the_same_refusal_comes_in_the_same_order_every_time(cluster: Cluster) -> None:
    """KEDA picks which failing rule to report from a Go map; ours are all named, sorted."""
    doc = so("twice", "web", cron(useCachedMetrics=True), minReplicaCount=5, maxReplicaCount=2)
    first = refused(cluster.cp.create(doc))
    assert "MinReplicaCount=5" in first and "useCachedMetrics" in first
    assert {refused(cluster.cp.create(doc)) for _ in range(5)} == {first}


def test_a_second_scaled_object_on_one_deployment_is_refused(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(deployment("shared", NS))
    created(cp, so("first", "shared"))
    second = so("second", "shared")
    # The first one's HPA, which it owns, is one "second" does not own: KEDA's rule 3 says
    # so too (KEDA would return one of the two, picked at random). The controller writes
    # that HPA after "first" is stored, and the webhook reads kube-apiserver's watch cache,
    # a few milliseconds behind: a refused create stores nothing, so ask until both show.
    workload = "scaleTargetRef.name: the workload 'shared' of type 'apps/v1.Deployment'"
    expected = SO_WEBHOOK + (
        f"ScaledObject {NS}/second: {workload} is already managed by the ScaledObject "
        f"'first'; {workload} is already managed by the hpa 'keda-hpa-first'"
    )
    answers: list[str] = []

    def both_reasons() -> bool:
        answers.append(refused(cp.create(second)))
        return answers[-1] == expected

    wait_for("both reasons in the refusal", both_reasons, RECONCILE_WITHIN, 0.2)
    assert all(a.startswith(expected.split("; ")[0]) for a in answers), answers
    assert stored(cp, second) is None
    other_kind = so("on-a-statefulset", "shared")
    other_kind["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    created(cp, other_kind)  # the same name of another kind is another workload (KEDA's rule)


def hand_written_hpa(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }


def test_a_hand_written_hpa_refuses_a_scaled_object_until_it_is_handed_over(
    cluster: Cluster,
) -> None:
    cp = cluster.cp
    cp.apply(deployment("legacy", NS))
    cp.apply(hand_written_hpa("legacy"))
    doc = so("legacy", "legacy", minReplicaCount=2, maxReplicaCount=9)
    assert refused(cp.create(doc)) == SO_WEBHOOK + (
        f"ScaledObject {NS}/legacy: scaleTargetRef.name: the workload 'legacy' of type "
        "'apps/v1.Deployment' is already managed by the hpa 'legacy'"
    )

    doc["metadata"]["annotations"] = {TRANSFER: "true"}
    assert refused(cp.create(doc)).endswith(
        "advanced.horizontalPodAutoscalerConfig.name: the existing hpa 'legacy' for workload "
        "'legacy' of type 'apps/v1.Deployment' must be specified by name in advanced settings "
        "to enable ownership transfer"
    )
    assert stored(cp, doc) is None

    doc["spec"]["advanced"] = {"horizontalPodAutoscalerConfig": {"name": "legacy"}}
    response = created(cp, doc)
    assert warnings(response) == [
        "advanced.horizontalPodAutoscalerConfig.name: the HPA 'legacy' will be taken over by "
        f"this ScaledObject ({TRANSFER})"
    ]
    uid = response.json()["metadata"]["uid"]

    def taken_over() -> dict[str, Any] | None:
        hpa = cp.get("autoscaling/v2", "HorizontalPodAutoscaler", "legacy", NS) or {}
        owners = hpa.get("metadata", {}).get("ownerReferences") or []
        ours = [
            o for o in owners if (o["kind"], o["name"], o["uid"]) == ("ScaledObject", "legacy", uid)
        ]
        return hpa if ours else None

    hpa = wait_for("the controller to take over HPA legacy", taken_over, RECONCILE_WITHIN)
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 9)
    [metric] = spec["metrics"]
    assert metric["type"] == "External", "our trigger's metric replaced the hand-written one"
    selector = metric["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"scaledobject.keda.sh/name": "legacy"}


def test_an_hpa_that_opts_out_does_not_refuse(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(deployment("opted-out", NS))
    hpa = hand_written_hpa("opted-out")
    hpa["metadata"]["annotations"] = {"validations.keda.sh/hpa-ownership": "false"}
    cp.apply(hpa)
    created(cp, so("opted-out", "opted-out"))


def resources(**requests: str) -> list[dict[str, Any]]:
    worker = {"name": "worker", "image": "registry.invalid/worker:e2e"}
    return [{**worker, "resources": {"requests": requests}}] if requests else [worker]


def test_a_cpu_trigger_needs_requests_or_a_limit_range_default(cluster: Cluster) -> None:
    """KEDA's rule 4, read live: the Deployment's pod template, then the namespace's
    LimitRanges (both reads deploy/rbac.yaml grants)."""
    cp = cluster.cp
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    cp.apply(deployment("requested", NS, containers=resources(cpu="100m")))
    created(cp, so("requested", "requested", cpu, minReplicaCount=1))

    cp.apply(deployment("bare", NS, containers=resources()))
    doc = so("bare", "bare", cpu, minReplicaCount=1)
    assert refused(cp.create(doc)).endswith(
        "triggers[0]: the scaledobject has a cpu trigger but the container worker doesn't "
        "have the cpu request defined"
    )
    limits = {"type": "Container", "defaultRequest": {"cpu": "50m"}}
    limit_range: dict[str, Any] = {"apiVersion": "v1", "kind": "LimitRange"}
    limit_range |= {"metadata": {"name": "defaults", "namespace": NS}}
    cp.apply(limit_range | {"spec": {"limits": [limits]}})
    try:
        created(cp, doc)
    finally:
        cp.delete("v1", "LimitRange", "defaults", NS)


def test_a_workload_applied_after_its_scaled_object_is_a_warning(cluster: Cluster) -> None:
    """Where KEDA refuses (kedacore/keda#5973): objects are applied together, in any order."""
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    response = cluster.cp.create(so("early", "not-yet", cpu, minReplicaCount=1))
    assert response.status_code == 201, response.text
    assert warnings(response) == [
        f"scaleTargetRef: Deployment 'not-yet' not found in {NS}: its cpu/memory requests "
        "were not checked"
    ]


async def test_warnings_reach_the_python_client(cluster: Cluster) -> None:
    """kube-apiserver passes the webhook's warnings on as ``Warning`` headers, which the
    Kubernetes Python client returns with the response."""
    doc = so("noted", "noted", minReplicaCount=1, cooldownPeriod=30)
    api = await k8s_config.new_client_from_config(str(cluster.cp.kubeconfig))
    async with api:
        objects = k8s.CustomObjectsApi(api)
        _, status, headers = await objects.create_namespaced_custom_object_with_http_info(
            "keda.sh", "v1alpha1", NS, "scaledobjects", doc
        )
    assert status == 201
    assert [_warning_text(h) for h in headers.getall("Warning", [])] == [
        "cooldownPeriod: CooldownPeriod is configured but is not relevant. CooldownPeriod is "
        "only relevant when minReplicaCount = 0 or idleReplicaCount is set"
    ]


def test_an_update_is_checked_and_a_metadata_only_update_is_not(cluster: Cluster) -> None:
    """After a hand-written HPA comes to scale its workload, a ScaledObject's spec can no
    longer change, but its labels and finalizers still can: an update that leaves the spec
    and annotations alone is not checked (KEDA skips a finalizer's removal)."""
    cp = cluster.cp
    cp.apply(deployment("kept", NS))
    created(cp, so("kept", "kept", minReplicaCount=1))
    cp.apply({**hand_written_hpa("kept"), "metadata": {"name": "kept-by-hand", "namespace": NS}})
    path = cp.path(KEDA, "ScaledObject", NS, "kept")
    merge = {"Content-Type": "application/merge-patch+json"}
    spec = cp.client.patch(path, json={"spec": {"cooldownPeriod": 60}}, headers=merge)
    assert refused(spec).endswith(
        "scaleTargetRef.name: the workload 'kept' of type 'apps/v1.Deployment' is already "
        "managed by the hpa 'kept-by-hand'"
    )
    labels = cp.client.patch(path, json={"metadata": {"labels": {"team": "a"}}}, headers=merge)
    assert labels.status_code == 200, labels.text


def ignored_events(cp: ControlPlane, name: str) -> list[str]:
    """The messages of the IgnoredFields Events about ScaledObject ``name``, oldest first
    (each Event's name ends in the nanoseconds it was made at, in hex)."""
    items = cp.client.get(f"/api/v1/namespaces/{NS}/events").json().get("items") or []
    ours = [
        e
        for e in items
        if e.get("reason") == "IgnoredFields"
        and e["involvedObject"].get("kind") == "ScaledObject"
        and e["involvedObject"].get("name") == name
    ]
    assert all(e.get("type") == "Warning" for e in ours), ours
    ours.sort(key=lambda e: int(e["metadata"]["name"].rsplit(".", 1)[1], 16))
    return [str(e["message"]) for e in ours]


def password_auth(*refs: tuple[str, str]) -> dict[str, Any]:
    secret_refs = [{"parameter": p, "name": "ignored-creds", "key": k} for p, k in refs]
    return {
        "apiVersion": KEDA,
        "kind": "TriggerAuthentication",
        "metadata": {"name": "ignored-auth", "namespace": NS},
        "spec": {"secretTargetRef": secret_refs},
    }


def test_what_nothing_reads_is_a_warning_and_one_event_per_change(cluster: Cluster) -> None:
    """A typo'd metadata key and an authentication parameter cron never reads: the webhook's
    warnings, then one IgnoredFields Event; an authentication change that leaves the list as
    it was (a re-bind) says nothing, one that changes it says it again. No Secret value in
    either."""
    cp = cluster.cp
    secret = "ignored-secret-value"
    data = {k: base64.b64encode(secret.encode()).decode() for k in ("pw", "pw2")}
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ignored-creds", "namespace": NS},
            "data": data,
        }
    )
    cp.apply(password_auth(("password", "pw")))
    cp.apply(deployment("ignored", NS))
    trigger = cron(metadata={**CRON, "timezon": "UTC"}, authenticationRef={"name": "ignored-auth"})
    response = created(cp, so("ignored", "ignored", trigger, minReplicaCount=1))
    first = [
        "triggers[0].metadata.timezon: not a parameter of cron; ignored (a typo of timezone?)",
        "triggers[0].authenticationRef (TriggerAuthentication ignored-auth): parameter "
        "password: not a parameter of cron; ignored",
    ]
    assert first[0] in warnings(response)  # the adapter may not have listed ignored-auth yet
    once = "2 fields ignored: " + "; ".join(first)
    # Until the adapter lists ignored-auth the binding fails, with an Event of the typo alone.
    wait_for(
        "the IgnoredFields Event",
        lambda: once in ignored_events(cp, "ignored"),
        RECONCILE_WITHIN,
    )
    before = ignored_events(cp, "ignored")
    assert before[-1] == once
    cp.apply(password_auth(("password", "pw2")))  # a re-bind: the same list
    cp.apply(password_auth(("password", "pw2"), ("passwrd", "pw")))  # a new one
    again = "3 fields ignored: " + "; ".join(
        [
            *first,
            "triggers[0].authenticationRef (TriggerAuthentication ignored-auth): parameter "
            "passwrd: not a parameter of cron; ignored",
        ]
    )

    def next_event() -> list[str] | None:
        found = ignored_events(cp, "ignored")
        return found if len(found) > len(before) else None

    # Both changes come through one watch and are re-bound in order: an Event from the first
    # would be listed before the second's.
    events = wait_for("the second IgnoredFields Event", next_event, RECONCILE_WITHIN)
    assert events == [*before, again]
    assert secret not in str(events)


def test_an_authentication_applied_after_its_scaled_object_makes_it_ready(
    cluster: Cluster,
) -> None:
    """The order of a ``kubectl apply``: the webhook admits a ScaledObject whose
    TriggerAuthentication is not there yet, the controller says Ready=False naming it, and
    binds it once the authentication comes."""
    cp = cluster.cp
    cp.apply(deployment("late-auth", NS))
    trigger = cron(authenticationRef={"name": "late-auth"})
    created(cp, so("late-auth", "late-auth", trigger, minReplicaCount=1))
    missing = cp.wait_condition(
        KEDA,
        "ScaledObject",
        "late-auth",
        "Ready",
        namespace=NS,
        status="False",
        timeout=RECONCILE_WITHIN,
    )
    assert "late-auth" in str(missing["status"]["conditions"])
    cp.apply(
        {
            "apiVersion": KEDA,
            "kind": "TriggerAuthentication",
            "metadata": {"name": "late-auth", "namespace": NS},
            "spec": {},
        }
    )
    cp.wait_condition(
        KEDA, "ScaledObject", "late-auth", "Ready", namespace=NS, timeout=RECONCILE_WITHIN
    )


# -- ScaledJobs and authentications ----------------------------------------------------------


def test_a_scaled_job_is_refused_then_admitted(cluster: Cluster) -> None:
    cp = cluster.cp
    doc = scaled_job("batch", NS, cron(useCachedMetrics=True))
    assert refused(cp.create(doc)) == (
        'admission webhook "vscaledjob.kb.io" denied the request: '
        f'ScaledJob {NS}/batch: triggers[0].useCachedMetrics: property "useCachedMetrics" '
        'is not supported for "cron" scaler'
    )
    assert stored(cp, doc) is None
    created(cp, scaled_job("batch", NS, cron()))


@pytest.mark.parametrize("kind", ["TriggerAuthentication", "ClusterTriggerAuthentication"])
def test_a_trigger_authentication_is_refused_then_admitted(cluster: Cluster, kind: str) -> None:
    cp = cluster.cp
    meta: dict[str, Any] = {"name": "aws-role"}
    if kind == "TriggerAuthentication":
        meta["namespace"] = NS
    identity = {"provider": "aws", "roleArn": "arn:aws:iam::1:role/r", "identityOwner": "workload"}
    doc: dict[str, Any] = {"apiVersion": KEDA, "kind": kind, "metadata": meta}
    doc["spec"] = {"podIdentity": identity}
    subject = f"{kind} {NS}/aws-role" if "namespace" in meta else f"{kind} aws-role"
    assert refused(cp.create(doc)) == (
        f'admission webhook "vs{kind.lower()}.kb.io" denied the request: {subject}: '
        "podIdentity.roleArn: roleArn of PodIdentity can't be set if KEDA isn't identityOwner"
    )
    assert stored(cp, doc) is None
    fixed = copy.deepcopy(doc)
    del fixed["spec"]["podIdentity"]["identityOwner"]
    response = cp.create(fixed)
    assert response.status_code == 201, response.text
    assert warnings(response) == []  # aws pod identity is supported: nothing to warn of


# -- registration ------------------------------------------------------------------------------


def test_self_managed_certificates_write_the_webhooks_ca_bundle(cluster: Cluster) -> None:
    """A second adapter with --cert-secret, the webhooks routed to it without a caBundle:
    it writes its CA into every webhook (deploy/rbac.yaml's get/patch on that one object),
    and kube-apiserver then trusts it. The first adapter is registered again after."""
    cp = cluster.cp
    managed = Adapter(
        objects=cp.state / "self-managed-objects",
        state=cp.state / "self-managed",
        pair=cluster.adapter.pair,  # unused: no --tls-*
        ca_pem=b"",
        auth_kubeconfig=adapter_kubeconfig(cp),
        args=[
            "--cert-secret=metrics-adapter-certs",
            "--apiservice=",
            f"--webhook-configuration={WEBHOOK_CONFIGURATION}",
        ],
        self_managed=True,
    )
    try:
        cp.apply(webhook_configuration(managed, ca_bundle=False))
        managed.start()

        def ca_written() -> list[str] | None:
            configuration = cp.get(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                WEBHOOK_CONFIGURATION,
            ) or {"webhooks": []}
            secret = cp.get("v1", "Secret", "metrics-adapter-certs", ADAPTER_NAMESPACE) or {}
            ca = (secret.get("data") or {}).get("ca.crt")
            bundles = [w["clientConfig"].get("caBundle") for w in configuration["webhooks"]]
            return bundles if ca and bundles and bundles == [ca] * len(bundles) else None

        bundles = wait_for("our CA in every webhook's caBundle", ca_written, CA_WRITTEN_WITHIN)
        assert base64.b64decode(bundles[0]) != cluster.adapter.ca_pem
        wait_for(
            "kube-apiserver to call the self-managed adapter",
            lambda: webhook_answers(cp),
            CONFIGURATION_WITHIN,
        )
    finally:
        managed.stop()
        register_webhook(cp, cluster.adapter)


def test_with_the_adapter_down_ignore_admits_and_fail_refuses(cluster: Cluster) -> None:
    cp, adapter = cluster.cp, cluster.adapter
    unchecked = so("unchecked", "web", minReplicaCount=5, maxReplicaCount=2)
    adapter.stop()
    try:
        response = cp.create(unchecked)  # deploy/'s failurePolicy: Ignore
        assert response.status_code == 201, response.text
        cp.delete(KEDA, "ScaledObject", "unchecked", NS)

        cp.apply(webhook_configuration(adapter, failure_policy="Fail"))
        valid = so("valid", "web")
        path = cp.path(KEDA, "ScaledObject", NS)

        def refused_unanswered() -> httpx.Response | None:
            answer = cp.client.post(path, params={"dryRun": "All"}, json=valid)
            return answer if answer.status_code != 201 else None

        answer = wait_for("failurePolicy Fail to apply", refused_unanswered, CONFIGURATION_WITHIN)
        status = answer.json()
        assert (answer.status_code, status["reason"]) == (500, "InternalError"), status
        assert 'failed calling webhook "vscaledobject.kb.io"' in status["message"]
        assert cp.create(valid).status_code == 500
        assert stored(cp, valid) is None
    finally:
        adapter.start()
        register_webhook(cp, adapter)  # deploy/'s failurePolicy again, once it answers
