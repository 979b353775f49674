"""The admission webhook's rules that read the cluster (KEDA's §2.2 rules 1 to 4) over a
ClusterView held in memory, its deadline when the cluster does not answer, and trigger
parameters checked against the cluster's objects (ClusterObjects fed by hand): what refuses,
what only warns, and what a warning never shows; and the requests the live view makes."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from metrics_adapter.admission.cluster import (
    Claim,
    Container,
    Hpa,
    KubeClusterView,
    containers_of,
    hpa_of,
    limit_range_defaults,
)
from metrics_adapter.admission.webhook import CLUSTER_READS_IN_FLIGHT, AdmissionWebhook
from metrics_adapter.binding.cluster import WATCHED, ClusterObjects
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.budget import Write
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.transport import Transport
from tests.support.admission import (
    NS,
    FakeCluster,
    cron,
    decide,
    message,
    resource,
    scaled_object,
    target,
)

DEPLOYMENT = "apps/v1.Deployment"
TRANSFER = "scaledobject.keda.sh/transfer-hpa-ownership"


def webhook(cluster: FakeCluster, deadline: float = 3.0) -> AdmissionWebhook:
    return AdmissionWebhook(cluster=cluster, deadline=deadline)


async def problems(cluster: FakeCluster, obj: dict[str, Any], **how: Any) -> str:
    return message(await decide(webhook(cluster), obj, **how)).removeprefix(
        f"ScaledObject {NS}/{obj['metadata']['name']}: "
    )


# Rules 1 and 2: another ScaledObject.


async def test_rule_1_another_scaled_object_on_the_same_workload() -> None:
    cluster = FakeCluster(claims=[Claim("first", target(), "keda-hpa-first")])
    assert await problems(cluster, scaled_object("second")) == (
        f"scaleTargetRef.name: the workload 'web' of type '{DEPLOYMENT}' is already managed by "
        "the ScaledObject 'first'"
    )


async def test_rule_1_counts_neither_itself_nor_another_kind_of_the_same_name() -> None:
    cluster = FakeCluster(
        claims=[
            Claim("web", target(), "keda-hpa-web"),  # itself, as on an UPDATE
            Claim("sts", target(kind="StatefulSet"), "keda-hpa-sts"),
            Claim("other", target("api"), "keda-hpa-other"),
        ]
    )
    assert (await decide(webhook(cluster), scaled_object()))["allowed"]


async def test_rule_2_an_hpa_name_another_scaled_object_uses() -> None:
    cluster = FakeCluster(claims=[Claim("first", target("api"), "shared")])
    obj = scaled_object(advanced={"horizontalPodAutoscalerConfig": {"name": "shared"}})
    assert await problems(cluster, obj) == (
        "advanced.horizontalPodAutoscalerConfig.name: the HPA 'shared' is already managed by "
        "the ScaledObject 'first'"
    )


# Rule 3: an HPA that is not ours.


def hpa(name: str = "hand-made", **how: Any) -> Hpa:
    return Hpa(name, how.pop("on", target()), **how)


async def test_rule_3_a_hand_written_hpa_on_the_workload() -> None:
    cluster = FakeCluster(hpa_list=[hpa()])
    assert await problems(cluster, scaled_object()) == (
        f"scaleTargetRef.name: the workload 'web' of type '{DEPLOYMENT}' is already managed by "
        "the hpa 'hand-made'"
    )


@pytest.mark.parametrize(
    "other",
    [
        hpa("keda-hpa-web", owners=frozenset({("ScaledObject", "web")})),  # ours
        hpa(annotations={"validations.keda.sh/hpa-ownership": "false"}),  # opted out
        hpa(on=target("api")),
        hpa(on=target(kind="StatefulSet")),
    ],
)
async def test_rule_3_passes_our_own_hpa_an_opted_out_one_and_other_workloads(other: Hpa) -> None:
    assert (await decide(webhook(FakeCluster(hpa_list=[other])), scaled_object()))["allowed"]


async def test_rule_3_an_hpa_owned_by_another_scaled_object_is_not_ours() -> None:
    other = hpa("keda-hpa-old", owners=frozenset({("ScaledObject", "old")}))
    assert "already managed by the hpa 'keda-hpa-old'" in await problems(
        FakeCluster(hpa_list=[other]), scaled_object()
    )


async def test_rule_3_ownership_transfer_by_name() -> None:
    cluster = FakeCluster(hpa_list=[hpa()])
    named = {"horizontalPodAutoscalerConfig": {"name": "hand-made"}}
    obj = scaled_object(annotations={TRANSFER: "true"}, advanced=named)
    response = await decide(webhook(cluster), obj)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "advanced.horizontalPodAutoscalerConfig.name: the HPA 'hand-made' will be taken over "
        f"by this ScaledObject ({TRANSFER})"
    ]
    unnamed = scaled_object(annotations={TRANSFER: "true"})
    assert await problems(cluster, unnamed) == (
        "advanced.horizontalPodAutoscalerConfig.name: the existing hpa 'hand-made' for workload "
        f"'web' of type '{DEPLOYMENT}' must be specified by name in advanced settings to "
        "enable ownership transfer"
    )


# Rule 4: cpu and memory triggers need requests.


def cpu_object(**spec: Any) -> dict[str, Any]:
    return scaled_object(triggers=[cron(), resource()], **spec)


async def test_rule_4_a_container_without_the_request() -> None:
    cluster = FakeCluster(
        workloads={
            ("Deployment", "web"): [Container("app"), Container("sidecar", frozenset({"cpu"}))]
        }
    )
    assert await problems(cluster, cpu_object()) == (
        "triggers[1]: the scaledobject has a cpu trigger but the container app doesn't have "
        "the cpu request defined"
    )


async def test_rule_4_is_satisfied_by_requests_by_a_limit_range_or_by_naming_a_container() -> None:
    app = [Container("app", frozenset({"memory"})), Container("sidecar", frozenset({"cpu"}))]
    ok = [
        FakeCluster(workloads={("Deployment", "web"): [Container("app", frozenset({"cpu"}))]}),
        FakeCluster(
            workloads={("Deployment", "web"): [Container("app")]}, defaults=frozenset({"cpu"})
        ),
    ]
    for cluster in ok:
        assert (await decide(webhook(cluster), cpu_object()))["allowed"]
    named = scaled_object(
        triggers=[cron(), resource(metadata={"value": "60", "containerName": "sidecar"})]
    )
    assert (await decide(webhook(FakeCluster(workloads={("Deployment", "web"): app})), named))[
        "allowed"
    ]


async def test_rule_4_is_not_checked_on_a_dry_run_nor_for_other_kinds() -> None:
    cluster = FakeCluster(workloads={("Deployment", "web"): [Container("app")]})
    assert (await decide(webhook(cluster), cpu_object(), dry_run=True))["allowed"]
    rollout = cpu_object(
        scaleTargetRef={"name": "web", "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}
    )
    assert (await decide(webhook(cluster), rollout))["allowed"]
    assert "containers" not in cluster.reads


async def test_rule_4_a_workload_not_there_yet_is_a_warning_not_a_refusal() -> None:
    """KEDA refuses it (kedacore/keda#5973); a ScaledObject applied before its Deployment is
    ordinary, so here it passes, saying what could not be checked."""
    response = await decide(webhook(FakeCluster()), cpu_object())
    assert response["allowed"] is True
    assert response["warnings"] == [
        "scaleTargetRef: Deployment 'web' not found in apps: its cpu/memory requests were not "
        "checked"
    ]


async def test_rule_4_without_limit_ranges_to_read_does_not_refuse() -> None:
    cluster = FakeCluster(
        workloads={("Deployment", "web"): [Container("app")]},
        fail={"limit_ranges": KubeError("list LimitRanges in apps", 403, "Forbidden", "no")},
    )
    response = await decide(webhook(cluster), cpu_object())
    assert response["allowed"] is True
    assert response["warnings"] == [
        "scaleTargetRef: containers app do not request the resource a cpu/memory trigger "
        "scales on, and whether a LimitRange defaults it could not be read (list LimitRanges "
        "in apps: 403 Forbidden: no): not refused"
    ]


# Every problem at once; the cluster's rules first, in KEDA's order.


async def test_cluster_findings_and_parser_problems_in_one_ordered_message() -> None:
    cluster = FakeCluster(
        claims=[Claim("first", target(), "keda-hpa-first")],
        hpa_list=[hpa()],
        workloads={("Deployment", "web"): [Container("app")]},
    )
    obj = cpu_object(minReplicaCount=3, maxReplicaCount=2, pollingInterval=0)
    assert (await problems(cluster, obj)).split("; ") == [
        f"scaleTargetRef.name: the workload 'web' of type '{DEPLOYMENT}' is already managed by "
        "the ScaledObject 'first'",
        f"scaleTargetRef.name: the workload 'web' of type '{DEPLOYMENT}' is already managed by "
        "the hpa 'hand-made'",
        "triggers[1]: the scaledobject has a cpu trigger but the container app doesn't have the "
        "cpu request defined",
        "minReplicaCount: MinReplicaCount=3 must be less than MaxReplicaCount=2",
        "pollingInterval: 0 must be at least 1",
    ]


# The cluster away: the object's own checks, within the deadline, never a hang.


async def test_a_cluster_that_does_not_answer_is_answered_within_the_deadline() -> None:
    cluster = FakeCluster(hang={"scaled_objects", "hpas"}, claims=[Claim("x", target(), "y")])
    started = time.monotonic()
    response = await decide(webhook(cluster, deadline=0.2), scaled_object(minReplicaCount=-1))
    assert time.monotonic() - started < 1.0
    assert message(response).endswith("minReplicaCount: -1 must be at least 0")
    assert response["warnings"] == [
        "not checked, the cluster could not be read: HPAs already scaling the workload "
        "(no answer within 0.2s)",
        "not checked, the cluster could not be read: other ScaledObjects on the same workload "
        "or HPA name (no answer within 0.2s)",
    ]


async def test_reads_that_fail_skip_only_their_rules() -> None:
    cluster = FakeCluster(
        hpa_list=[hpa()],
        fail={"scaled_objects": KubeError("list ScaledObjects in apps", 403, "Forbidden", "rbac")},
    )
    response = await decide(webhook(cluster), scaled_object())
    assert "already managed by the hpa 'hand-made'" in message(response)
    assert response["warnings"] == [
        "not checked, the cluster could not be read: other ScaledObjects on the same workload "
        "or HPA name (list ScaledObjects in apps: 403 Forbidden: rbac)"
    ]


async def test_reviews_beyond_the_reads_in_flight_wait_within_the_same_deadline() -> None:
    cluster = FakeCluster(hang={"scaled_objects"})
    hook = webhook(cluster, deadline=0.3)
    started = time.monotonic()
    answers = await asyncio.gather(*(decide(hook, scaled_object()) for _ in range(20)))
    assert time.monotonic() - started < 2.0
    assert all(a["allowed"] for a in answers)
    assert cluster.most_in_flight == CLUSTER_READS_IN_FLIGHT * 2  # its reads and the HPAs'


# Reading the cluster's JSON.


def test_listed_objects_are_read_with_keda_defaults() -> None:
    raw = {
        "metadata": {
            "name": "h",
            "annotations": {"a": "b"},
            "ownerReferences": [{"kind": "ScaledObject", "name": "web", "apiVersion": "v"}],
        },
        "spec": {"scaleTargetRef": {"name": "web", "kind": "StatefulSet", "apiVersion": "apps/v1"}},
    }
    assert hpa_of(raw) == Hpa(
        "h", target(kind="StatefulSet"), frozenset({("ScaledObject", "web")}), {"a": "b"}
    )
    pod = {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "0"}}},
            {"name": "b", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "c"},
        ]
    }
    assert containers_of({"spec": {"template": {"spec": pod}}}) == [
        Container("a", frozenset({"cpu"})),
        Container("b", frozenset({"memory"})),
        Container("c"),
    ]
    limits = [
        {
            "spec": {
                "limits": [
                    {"type": "Pod", "default": {"cpu": "1"}},
                    {
                        "type": "Container",
                        "defaultRequest": {"memory": "64Mi"},
                        "default": {"cpu": "0"},
                    },
                ]
            }
        }
    ]
    assert limit_range_defaults(limits) == frozenset({"memory"})


# Trigger parameters against the cluster's objects.


def objects(*events: tuple[str, dict[str, Any]]) -> ClusterObjects:
    found = ClusterObjects("keda")
    for kind, obj in events:
        found.handle(kind, "ADDED", obj)
    for resource_ in WATCHED:
        found.handle(resource_.kind, "SYNCED", {})
    return found


def redis(**fields: Any) -> dict[str, Any]:
    metadata = {"address": "redis:6379", "listName": "jobs", **fields.pop("metadata", {})}
    return {"type": "redis", "metadata": metadata, **fields}


AUTH = {"authenticationRef": {"name": "redis-auth"}}


def authentication(**spec: Any) -> tuple[str, dict[str, Any]]:
    meta = {"name": "redis-auth", "namespace": NS}
    return "TriggerAuthentication", {"metadata": meta, "spec": spec}


def secret(**values: str) -> tuple[str, dict[str, Any]]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return "Secret", {"metadata": {"name": "redis", "namespace": NS}, "data": data}


async def test_a_trigger_authentication_not_there_yet_only_warns() -> None:
    hook = AdmissionWebhook(objects=objects())
    response = await decide(hook, scaled_object(triggers=[redis(**AUTH)]))
    assert response["allowed"] is True
    assert response["warnings"] == [
        'triggers[0].authenticationRef: TriggerAuthentication "redis-auth" not found in '
        "namespace apps; not refused: it may be applied later"
    ]


async def test_a_value_from_a_secret_is_never_shown() -> None:
    ref = [{"parameter": "port", "name": "redis", "key": "port"}]
    hook = AdmissionWebhook(
        objects=objects(authentication(secretTargetRef=ref), secret(port="s3cret"))
    )
    host = {"address": "", "host": "redis"}  # so the port is read from the authentication
    response = await decide(hook, scaled_object(triggers=[redis(metadata=host, **AUTH)]))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "triggers[0].metadata.port: not usable yet from the trigger's authentication "
        "or the workload's env; not refused: they may be applied later (Ready=False will say "
        "why if not)"
    ]
    assert "s3cret" not in str(response)


async def test_an_authentication_parameter_the_trigger_never_reads_is_named_not_shown() -> None:
    refs = [
        {"parameter": "password", "name": "redis", "key": "password"},
        {"parameter": "passwd", "name": "redis", "key": "password"},
    ]
    hook = AdmissionWebhook(
        objects=objects(authentication(secretTargetRef=refs), secret(password="s3cret"))
    )
    response = await decide(hook, scaled_object(triggers=[redis(**AUTH)]))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "triggers[0].authenticationRef (TriggerAuthentication redis-auth): parameter passwd: "
        "not a parameter of redis; ignored (a typo of password?)"
    ]
    assert "s3cret" not in str(response)


async def test_a_value_written_in_the_trigger_refuses_as_kedas_order_reads_it_first() -> None:
    hook = AdmissionWebhook(objects=objects())
    written = scaled_object(triggers=[redis(metadata={"listLength": "lots"}, **AUTH)])
    assert message(await decide(hook, written)).endswith(
        'triggers[0].metadata.listLength: "lots" is not a number'
    )
    # redis reads port from the trigger before the authentication (KEDA's order): an
    # authentication applied later could not replace it
    port = {"address": "", "host": "redis", "port": "abc"}
    for trigger in (redis(metadata=port, **AUTH), redis(metadata=port)):
        assert message(await decide(hook, scaled_object(triggers=[trigger]))).endswith(
            'triggers[0].metadata.port: "redis:abc" is not host:port'
        )


async def test_a_parameter_only_authentication_could_supply_refuses_without_one() -> None:
    bearer = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": "http://p:9090",
            "query": "q",
            "threshold": "1",
            "authModes": "bearer",
        },
    }
    hook = AdmissionWebhook(objects=objects())
    assert not (await decide(hook, scaled_object(triggers=[bearer])))["allowed"]
    with_ref = scaled_object(triggers=[{**bearer, "authenticationRef": {"name": "prom"}}])
    assert (await decide(hook, with_ref))["allowed"]


async def test_env_not_there_yet_only_warns() -> None:
    hook = AdmissionWebhook(objects=objects())
    obj = scaled_object(triggers=[redis(metadata={"address": "", "addressFromEnv": "REDIS"})])
    response = await decide(hook, obj)
    assert response["allowed"] is True
    assert [w.split(":")[0] for w in response["warnings"]] == [
        "triggers[0].metadata.addressFromEnv"
    ]


async def test_standalone_checks_the_object_alone() -> None:
    """No cluster: what authentication or env could supply is not known, so not reported."""
    response = await decide(AdmissionWebhook(), scaled_object(triggers=[redis(**AUTH)]))
    assert response == {"uid": response["uid"], "allowed": True}


async def test_before_the_cluster_is_listed_the_webhook_says_it_did_not_look() -> None:
    response = await decide(
        AdmissionWebhook(objects=ClusterObjects()), scaled_object(triggers=[redis(**AUTH)])
    )
    assert response["warnings"] == [
        "triggers' authentication and env not checked: the adapter is still listing the "
        "cluster's objects"
    ]


# The live view: which requests it makes of kube-apiserver, and what it reads back.


class ListingKube(KubeClient):
    """Answers each list by path from ``lists``; records every path and query asked."""

    def __init__(self, lists: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(cast(Transport, None))
        self.lists = lists
        self.asked: list[tuple[str, str, dict[str, str]]] = []

    async def request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        write: Write | None = None,
    ) -> dict[str, Any]:
        self.asked.append((method, path, dict(query)))
        return {"items": self.lists.get(path, []), "metadata": {"resourceVersion": "1"}}


async def test_the_live_view_lists_with_the_verbs_the_adapter_has() -> None:
    deployment = {
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}},
    }
    scaled = {
        "metadata": {"name": "first", "namespace": NS},
        "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [cron()]},
    }
    kube = ListingKube(
        {
            f"/apis/apps/v1/namespaces/{NS}/deployments": [deployment],
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": [scaled],
        }
    )
    view = KubeClusterView(kube)
    assert await view.scaled_objects(NS) == [Claim("first", target(), "keda-hpa-first")]
    assert await view.hpas(NS) == []
    assert await view.containers(NS, target()) == [Container("app")]
    assert await view.containers(NS, target("gone", kind="StatefulSet")) is None
    assert await view.containers(NS, target(kind="Rollout", api="argoproj.io/v1alpha1")) is None
    assert await view.limit_range_defaults(NS) == frozenset()
    assert [(method, path, query.get("fieldSelector")) for method, path, query in kube.asked] == [
        ("GET", f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects", None),
        ("GET", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", None),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments", "metadata.name=web"),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/statefulsets", "metadata.name=gone"),
        ("GET", f"/api/v1/namespaces/{NS}/limitranges", None),
    ]
