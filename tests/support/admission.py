"""AdmissionReviews as kube-apiserver sends them, the KEDA objects they carry, and a
:class:`ClusterView` held in memory, for the webhook's unit, API and fuzz tests."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from metrics_adapter.admission.cluster import Claim, Container, Hpa
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.errors import KubeError
from metrics_adapter.model.keda import ScaleTargetRef
from scalers.registry import KINDS

NS = "apps"
CRON = dict(KINDS["cron"].example.metadata)
PATHS = {
    "ScaledObject": "/validate-keda-sh-v1alpha1-scaledobject",
    "ScaledJob": "/validate-keda-sh-v1alpha1-scaledjob",
    "TriggerAuthentication": "/validate-keda-sh-v1alpha1-triggerauthentication",
    "ClusterTriggerAuthentication": "/validate-keda-sh-v1alpha1-clustertriggerauthentication",
}
"""Written out, not imported: they are KEDA's, and a registration written for KEDA uses them."""

Json = dict[str, Any]


def scaled_object(
    name: str = "web", annotations: dict[str, str] | None = None, **spec: Any
) -> Json:
    """A valid ScaledObject over Deployment ``web`` with one cron trigger; each keyword
    replaces a spec field (``None`` removes it)."""
    body: Json = {"scaleTargetRef": {"name": "web"}, "triggers": [cron()]}
    body.update(spec)
    meta: Json = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def scaled_job(name: str = "batch", **spec: Any) -> Json:
    template = {"spec": {"containers": [{"name": "job", "image": "busybox"}]}}
    body: Json = {"jobTargetRef": {"template": template}, "triggers": [cron()]}
    body.update(spec)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def trigger_authentication(kind: str = "TriggerAuthentication", **spec: Any) -> Json:
    meta: Json = {"name": "auth"} | ({} if kind.startswith("Cluster") else {"namespace": NS})
    return {"apiVersion": "keda.sh/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def cron(**fields: Any) -> Json:
    return {"type": "cron", "metadata": dict(CRON), **fields}


def resource(kind: str = "cpu", **fields: Any) -> Json:
    return {"type": kind, "metricType": "Utilization", "metadata": {"value": "60"}, **fields}


def review(
    obj: Json,
    *,
    operation: str = "CREATE",
    old: Json | None = None,
    dry_run: bool = False,
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
) -> Json:
    """The AdmissionReview kube-apiserver sends for ``obj`` (admission.k8s.io/v1)."""
    meta = obj.get("metadata") or {}
    request: Json = {
        "uid": uid,
        "kind": {"group": "keda.sh", "version": "v1alpha1", "kind": obj.get("kind")},
        "resource": {"group": "keda.sh", "version": "v1alpha1", "resource": "x"},
        "operation": operation,
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def decide(webhook: AdmissionWebhook, obj: Json, **how: Any) -> Json:
    """The ``response`` of the webhook's answer to the review of ``obj``."""
    body = json.dumps(review(obj, **how)).encode()
    answer: Json = json.loads(await webhook.review(obj["kind"], body))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response: Json = answer["response"]
    return response


def message(response: Json) -> str:
    """The refusal's message, after checking its shape is controller-runtime's."""
    assert response["allowed"] is False, response
    status = response["status"]
    assert (status["code"], status["reason"]) == (403, "Forbidden")
    text: str = status["message"]
    return text


def edited(obj: Json, **spec: Any) -> Json:
    out = copy.deepcopy(obj)
    out["spec"].update(spec)
    return out


def target(name: str = "web", kind: str = "Deployment", api: str = "apps/v1") -> ScaleTargetRef:
    return ScaleTargetRef(name=name, api_version=api, kind=kind)


@dataclass
class FakeCluster:
    """A ClusterView from lists; ``fail`` makes the named read raise as a KubeClient would,
    ``hang`` makes it never answer."""

    claims: list[Claim] = field(default_factory=list)
    hpa_list: list[Hpa] = field(default_factory=list)
    workloads: dict[tuple[str, str], list[Container]] = field(default_factory=dict)
    defaults: frozenset[str] = frozenset()
    fail: dict[str, KubeError] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    reads: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def _answer(self, what: str, value: Any) -> Any:
        self.reads.append(what)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if what in self.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(0)  # an answer takes a turn of the loop, as a real one
        finally:
            self.in_flight -= 1
        if what in self.fail:
            raise self.fail[what]
        return value

    async def scaled_objects(self, namespace: str) -> Sequence[Claim]:
        return await self._answer("scaled_objects", self.claims)  # type: ignore[no-any-return]

    async def hpas(self, namespace: str) -> Sequence[Hpa]:
        return await self._answer("hpas", self.hpa_list)  # type: ignore[no-any-return]

    async def containers(
        self, namespace: str, target: ScaleTargetRef
    ) -> Sequence[Container] | None:
        found = self.workloads.get((target.kind, target.name))
        return await self._answer("containers", found)  # type: ignore[no-any-return]

    async def limit_range_defaults(self, namespace: str) -> frozenset[str]:
        return await self._answer("limit_ranges", self.defaults)  # type: ignore[no-any-return]
