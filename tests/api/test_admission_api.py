"""The admission webhook over a real TLS socket, on the server exactly as ``serve`` builds it
(``uvicorn_servers``: the gate, request metrics, h11 limits) and called as kube-apiserver calls
a webhook: a POST of an AdmissionReview, with no client credentials."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from metrics_adapter.admission.review import MAX_WARNINGS_TOTAL
from metrics_adapter.metrics.telemetry import Telemetry
from tests.support.admission import PATHS, cron, review, scaled_object
from tests.support.secure_port import secure_port

METRICS = "/apis/external.metrics.k8s.io/v1beta1/namespaces/apps/s0-cron"


@dataclass
class Served:
    client: httpx.AsyncClient
    telemetry: Telemetry

    async def post(self, kind: str, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(PATHS[kind], content=content, headers=headers)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The adapter with its gate on (a front-proxy CA configured), as in a cluster."""
    async with secure_port(tmp_path) as port:
        url = f"https://127.0.0.1:{port.port}"
        context = port.context()  # no client certificate: anonymous
        async with httpx.AsyncClient(base_url=url, verify=context, timeout=10) as client:
            yield Served(client, port.telemetry)


async def test_a_valid_object_is_allowed(served: Served) -> None:
    answer = await served.post("ScaledObject", review(scaled_object(), uid="u-1"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


async def test_a_bad_object_is_refused_forbidden_with_every_problem(served: Served) -> None:
    obj = scaled_object(minReplicaCount=5, maxReplicaCount=2, triggers=[cron(), cron()], x=1)
    obj["spec"]["triggers"][1]["metadata"]["desiredReplicas"] = "many"
    answer = await served.post("ScaledObject", review(obj, uid="u-2"))
    assert answer.status_code == 200
    assert answer.json()["response"] == {
        "uid": "u-2",
        "allowed": False,
        "status": {
            "metadata": {},
            "status": "Failure",
            "reason": "Forbidden",
            "code": 403,
            "message": "ScaledObject apps/web: minReplicaCount: MinReplicaCount=5 must be less "
            'than MaxReplicaCount=2; triggers[1].metadata.desiredReplicas: "many" is not a number',
        },
        "warnings": ["x: unknown field, ignored"],
    }
    errors = "keda_webhook_scaled_object_validation_errors_total"
    labels = {"namespace": "apps", "action": "create", "reason": "incorrect-replicas"}
    assert served.telemetry.registry.get_sample_value(errors, labels) == 1


async def test_keys_nothing_reads_come_back_as_bounded_warnings(served: Served) -> None:
    """Each key a trigger sets that nothing reads is a warning naming it; hundreds of them
    stay within what kube-apiserver passes on, the last line saying how many were left out."""
    metadata = {**cron()["metadata"], **{f"unread{i:03}": "x" for i in range(200)}}
    answer = await served.post(
        "ScaledObject", review(scaled_object(triggers=[cron(metadata=metadata)]))
    )
    response = answer.json()["response"]
    assert response["allowed"] is True
    warnings = response["warnings"]
    assert warnings[0] == "triggers[0].metadata.unread000: not a parameter of cron; ignored"
    assert sum(len(w) for w in warnings) <= MAX_WARNINGS_TOTAL
    assert re.fullmatch(r"\d+ more warnings not shown", warnings[-1])
    assert len(warnings) - 1 + int(warnings[-1].split()[0]) == 200


@pytest.mark.parametrize("kind", list(PATHS))
async def test_each_of_kedas_paths_answers(served: Served, kind: str) -> None:
    obj: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x"},
    }
    answer = await served.post(kind, review(obj))
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False  # no spec: refused, not unauthorized


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "request: is required",
        ),
    ],
)
async def test_a_malformed_review_is_a_400_status(served: Served, body: bytes, says: str) -> None:
    answer = await served.post("ScaledObject", body)
    assert answer.status_code == 400
    status = answer.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "BadRequest", 400)
    assert says in status["message"]


async def test_the_webhook_takes_an_object_of_the_api_servers_largest_size(served: Served) -> None:
    """1.5 MiB, the largest object kube-apiserver stores, in the object and the old object
    of an UPDATE: past the metrics API's 64 KiB limit, within the webhook's."""
    big = scaled_object()
    big["metadata"]["annotations"] = {"note": "x" * (1536 * 1024 - 1024)}
    old = json.loads(json.dumps(big))
    big["spec"]["minReplicaCount"] = 2
    answer = await served.post("ScaledObject", review(big, operation="UPDATE", old=old))
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"]["allowed"] is True


async def test_bodies_past_the_webhooks_limit_and_on_the_metrics_paths_stay_refused(
    served: Served,
) -> None:
    too_big = b" " * (4 * 1024 * 1024 + 1)
    answer = await served.post("ScaledObject", too_big)
    assert answer.status_code == 413
    assert answer.json()["reason"] == "RequestEntityTooLarge"
    metrics = await served.client.request("GET", METRICS, content=b" " * (64 * 1024 + 1))
    assert metrics.status_code == 413


async def test_the_metrics_api_still_needs_authentication(served: Served) -> None:
    assert (await served.client.get(METRICS)).status_code == 401
    assert (await served.client.get(PATHS["ScaledObject"])).status_code == 405


async def test_reviews_are_counted_as_admissionreviews(served: Served) -> None:
    await served.post("ScaledObject", review(scaled_object()))
    await served.post("ScaledObject", b"{")
    labels = {"verb": "POST", "group": "admission.k8s.io", "version": "v1"}
    for code, count in (("200", 1), ("400", 1)):
        sample = served.telemetry.registry.get_sample_value(
            "apiserver_request_total", {**labels, "resource": "admissionreviews", "code": code}
        )
        assert sample == count
