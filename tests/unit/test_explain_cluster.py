"""`explain --namespace` without a cluster: what is listed and tolerated, how an aggregator
answer becomes a reading (activity as the scaler decides it), the HPA status in words, and a
ScaledJob's values polled from here with its Jobs and Pods counted as KEDA counts them.
The Kubernetes API is faked at KubeClient.request, so the real list paging is exercised."""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.binding.files import load_documents
from metrics_adapter.cli import main
from metrics_adapter.config.settings import Settings
from metrics_adapter.errors import KubeError, KubeUnreachable
from metrics_adapter.explain.cluster import (
    explain_namespace,
    hpa_status,
    list_namespace,
    metric_value,
    status_text,
    through_aggregator,
)
from metrics_adapter.explain.jobs import JobReport
from metrics_adapter.explain.local import ObjectReport, Observed, read, render, reports
from metrics_adapter.kube.client import KubeClient, status_error
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.server import build
from scalers.errors import ConfigError
from tests.support.kube_fakes import FakeKube

NS = "shop"
METRICS = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}"


def scaled_object(name: str, trigger: dict[str, Any], **status: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"scaleTargetRef": {"name": name}, "triggers": [trigger]},
        "status": status,
    }


METRICS_API: dict[str, Any] = {
    "type": "metrics-api",
    "metadata": {"url": "http://127.0.0.1:1/v", "valueLocation": "v", "targetValue": "10"},
}
WITH_SECRET: dict[str, Any] = {**METRICS_API, "authenticationRef": {"name": "creds"}}
CREDS = {
    "metadata": {"name": "creds", "namespace": NS},
    "spec": {"secretTargetRef": [{"parameter": "username", "name": "api", "key": "user"}]},
}


def forbidden(what: str) -> KubeError:
    return status_error(what, {"code": 403, "reason": "Forbidden", "message": "no"})


def listed(*items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": "7"}, "items": list(items)}


def value_list(value: str) -> dict[str, Any]:
    item = {"metricName": "m", "value": value, "timestamp": "2030-01-02T03:04:05Z"}
    return {"kind": "ExternalMetricValueList", "items": [item]}


async def test_a_forbidden_secret_list_is_one_warning_and_binding_says_what_is_missing() -> None:
    kube = FakeKube(
        {
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": listed(
                scaled_object("plain", METRICS_API, lastActiveTime="2030-01-02T03:04:05Z"),
                scaled_object("secret", WITH_SECRET),
            ),
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/triggerauthentications": listed(CREDS),
            f"/api/v1/namespaces/{NS}/secrets": forbidden(f"list Secrets in {NS}"),
        }
    )
    listing = await list_namespace(kube, NS, "keda")
    assert listing.warnings == [
        f"list Secrets in {NS}: 403 Forbidden: no; "
        "continuing without them: triggers that need them say so"
    ]
    inventory = listing.inventory
    assert set(inventory.scaled_objects) == {ObjectRef(NS, "plain"), ObjectRef(NS, "secret")}
    assert inventory.cluster_object_namespace == "keda"
    assert listing.last_active == {
        ObjectRef(NS, "plain"): datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        ObjectRef(NS, "secret"): None,
    }
    assert "/api/v1/namespaces/keda/secrets" in kube.asked  # ClusterTriggerAuthentication refs

    adapter = build(Settings(), dry_run=False, inventory=inventory)
    await read(adapter, functools.partial(through_aggregator, kube))
    assert (
        adapter.store.broken_reason(ObjectRef(NS, "secret"))
        == f"triggers[0].authenticationRef (TriggerAuthentication creds): Secret {NS}/api has no "
        'key "user" (for parameter username)'
    )


async def test_only_scaled_objects_are_required() -> None:
    kube = FakeKube({f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": forbidden("so")})
    with pytest.raises(KubeError, match="403 Forbidden"):
        await list_namespace(kube, NS, NS)
    unreachable = KubeUnreachable("list Secrets", 0, "Timeout", "no answer within 10s")
    with pytest.raises(KubeUnreachable):  # only a 403 is a missing right; anything else fails
        await list_namespace(FakeKube({f"/api/v1/namespaces/{NS}/secrets": unreachable}), NS, NS)


async def test_aggregator_values_become_readings_with_the_scalers_activity() -> None:
    quiet = {**METRICS_API["metadata"], "activationTargetValue": "5"}
    objects = listed(
        scaled_object("busy", METRICS_API),
        scaled_object("idle", {**METRICS_API, "metadata": quiet}),
        scaled_object("down", METRICS_API),
    )
    metric = f"{METRICS}/s0-metric-api-v?scaledobject.keda.sh/name="
    unavailable = {"code": 503, "reason": "ServiceUnavailable", "message": "metric:m failing"}
    kube = FakeKube(
        {
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": objects,
            f"{metric}busy": value_list("25"),
            f"{metric}idle": value_list("4500m"),
            f"{metric}down": status_error("m", unavailable),
        }
    )
    listing = await list_namespace(kube, NS, NS)
    adapter = build(Settings(), dry_run=False, inventory=listing.inventory)
    await read(adapter, functools.partial(through_aggregator, kube))

    observed = {ObjectRef(NS, "busy"): Observed(3, "/scale", None, "keda-hpa-busy: not found")}
    found = {r.scaled_object: r for r in reports(adapter, observed)}
    (busy,) = found[f"{NS}/busy"].triggers
    assert (busy.value, busy.active, busy.activation) == (25, True, "value 25 > 0")
    assert (busy.replicas, busy.formula) == (3, "ceil(25 / 10) = 3")
    (idle,) = found[f"{NS}/idle"].triggers
    assert (idle.value, idle.active, idle.activation) == (4.5, False, "value 4.5 <= 5")
    (down,) = found[f"{NS}/down"].triggers
    assert (down.error, down.active) == ("503 ServiceUnavailable: metric:m failing", None)

    text = render([found[f"{NS}/busy"]])
    assert f"{NS}/busy -> Deployment/busy (min 0, max 100, now 3 from /scale)" in text
    assert "  HPA status: keda-hpa-busy: not found" in text


def test_metric_value_reads_the_quantity_and_timestamp() -> None:
    assert metric_value(value_list("1500m")) == (1.5, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    with pytest.raises(ValueError, match="no item"):
        metric_value({"kind": "ExternalMetricValueList", "items": []})
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        metric_value(value_list("lots"))


def test_status_text_is_the_status_or_the_whole_error() -> None:
    assert status_text(status_error("x", {"code": 404, "reason": "NotFound"})) == "404 NotFound"
    gone = KubeUnreachable("GET m", 0, "Unreachable", "connection refused")
    assert status_text(gone) == "GET m: Unreachable: connection refused"


def test_hpa_status_names_replicas_and_conditions_with_trouble_explained() -> None:
    hpa = {
        "metadata": {"name": "keda-hpa-q"},
        "status": {
            "currentReplicas": 1,
            "desiredReplicas": 4,
            "conditions": [
                {
                    "type": "AbleToScale",
                    "status": "True",
                    "reason": "SucceededGetScale",
                    "message": "the HPA controller was able to get the target's current scale",
                },
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetExternalMetric",
                    "message": "unable to get external metric",
                },
                {
                    "type": "ScalingLimited",
                    "status": "True",
                    "reason": "TooManyReplicas",
                    "message": "the desired replica count is more than the maximum",
                },
            ],
        },
    }
    assert hpa_status(hpa) == (
        "keda-hpa-q: current 1, desired 4; AbleToScale=True SucceededGetScale; "
        "ScalingActive=False FailedGetExternalMetric: unable to get external metric; "
        "ScalingLimited=True TooManyReplicas: the desired replica count is more than the maximum"
    )
    assert hpa_status({"metadata": {"name": "new"}}) == "new: current 0, desired 0"


async def test_an_unreadable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        await explain_namespace(NS, tmp_path / "nope")


def test_secret_data_from_a_cluster_is_decoded() -> None:
    """Listed Secrets carry base64 ``data``, as files may: the loader decodes both."""
    secret = {
        "kind": "Secret",
        "metadata": {"name": "api", "namespace": NS},
        "data": {"user": base64.b64encode(b"bob").decode()},
    }
    inventory = load_documents([("cluster:Secret shop/api", secret)])
    assert inventory.secret_value(NS, "api", "user") == "bob"


def test_the_command_takes_a_path_or_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as both:
        main(["explain", "objects/", "--namespace", NS])
    assert both.value.code == 2
    with pytest.raises(SystemExit) as neither:
        main(["explain"])
    assert neither.value.code == 2
    capsys.readouterr()
    assert main(["explain", "objects/", "--poll"]) == 2
    assert "--kubeconfig and --poll need --namespace" in capsys.readouterr().err


CRON: dict[str, Any] = {
    "type": "cron",
    "metadata": {"timezone": "UTC", "start": "0 0 1 1 *", "end": "* * * * *"},
}


def scaled_job(name: str, replicas: str) -> dict[str, Any]:
    """A ScaledJob whose cron trigger reads ``replicas`` (target 1), at most 10 Jobs."""
    trigger = {**CRON, "metadata": {**CRON["metadata"], "desiredReplicas": replicas}}
    template = {"spec": {"containers": [{"name": "t", "image": "t"}]}}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "jobTargetRef": {"template": template},
            "maxReplicaCount": 10,
            "triggers": [trigger],
        },
    }


def job(name: str, finished: str | None = None) -> dict[str, Any]:
    conditions = [{"type": finished, "status": "True"}] if finished else []
    return {"metadata": {"name": name, "namespace": NS}, "status": {"conditions": conditions}}


def pod(job_name: str, phase: str) -> dict[str, Any]:
    labels = {"job-name": job_name}
    return {"metadata": {"name": f"{job_name}-x", "labels": labels}, "status": {"phase": phase}}


async def test_scaled_jobs_are_polled_from_here_and_their_jobs_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = {**CRON, "metadata": {**CRON["metadata"], "desiredReplicas": "5"}}
    so_metric = f"{METRICS}/s0-cron-UTC-0011x-xxxxx?scaledobject.keda.sh/name="
    label = "scaledjob.keda.sh/name"
    kube = FakeKube(
        {
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": listed(
                scaled_object("worker", shared)
            ),
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledjobs": listed(
                scaled_job("crunch", "5"), scaled_job("locked", "5")
            ),
            # The ScaledObject shares the ScaledJob's query; the adapter serves another value.
            f"{so_metric}worker": value_list("7"),
            f"/apis/batch/v1/namespaces/{NS}/jobs?{label}=crunch": listed(
                job("a"), job("b"), job("done", "Complete")
            ),
            f"/api/v1/namespaces/{NS}/pods?{label}=crunch": listed(
                pod("a", "Running"), pod("b", "Pending")
            ),
            f"/apis/batch/v1/namespaces/{NS}/jobs?{label}=locked": forbidden("list Jobs"),
        }
    )

    async def connect(kubeconfig: object = None) -> KubeClient:
        return kube

    monkeypatch.setattr(KubeClient, "connect", connect)
    found, warnings = await explain_namespace(NS, Path("unused"))
    assert warnings == []
    assert not any("scaledobject.keda.sh/name=crunch" in asked for asked in kube.asked)

    worker, crunch, locked = found
    assert isinstance(worker, ObjectReport) and worker.triggers[0].value == 7
    assert isinstance(crunch, JobReport) and isinstance(locked, JobReport)
    (cron,) = crunch.triggers
    assert (cron.value, cron.target, cron.active) == (5, 1, True)
    # Jobs a and b run (done is finished); b has no Pod Running or Succeeded: pending.
    assert (crunch.running, crunch.pending) == (2, 1)
    assert crunch.jobs_from == f"Jobs and Pods labelled {label}=crunch"
    # default: min(scaleTo 5, maxScale 5 - running 2) = 3
    assert crunch.jobs_to_create == 3
    assert crunch.decision.startswith("would create 3 Jobs for shop/crunch: queue 5, target 1,")

    assert (locked.running, locked.jobs_to_create) == (0, 5)
    assert locked.jobs_from == "not counted, taken as 0: 403 Forbidden: no"
    assert "Jobs: running 0, pending 0 (not counted, taken as 0: 403 Forbidden: no)" in render(
        [locked]
    )


async def test_what_nothing_reads_is_listed_per_object_from_a_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typo = {**CRON, "metadata": {**CRON["metadata"], "desiredReplicas": "2", "timezon": "UTC"}}
    job_typo = scaled_job("crunch", "1")
    job_typo["spec"]["triggers"][0]["metadata"]["ends"] = "x"
    kube = FakeKube(
        {
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects": listed(
                scaled_object("worker", typo)
            ),
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledjobs": listed(job_typo),
        }
    )

    async def connect(kubeconfig: object = None) -> KubeClient:
        return kube

    monkeypatch.setattr(KubeClient, "connect", connect)
    (worker, crunch), _ = await explain_namespace(NS, Path("unused"))
    assert isinstance(worker, ObjectReport) and isinstance(crunch, JobReport)
    assert worker.warnings == (
        "triggers[0].metadata.timezon: not a parameter of cron; ignored (a typo of timezone?)",
    )
    assert crunch.warnings == (
        "triggers[0].metadata.ends: not a parameter of cron; ignored (a typo of end?)",
    )
    text = render([worker, crunch])
    assert f"  warning: {worker.warnings[0]}" in text
    assert f"  warning: {crunch.warnings[0]}" in text
