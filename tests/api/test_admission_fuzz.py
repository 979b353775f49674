"""Hostile AdmissionReviews through the routes (in process, ASGI): random JSON and mutated
valid reviews of every kind. Whatever arrives, the answer is a 400 Status or an
AdmissionReview for the request's uid; never a 500, never a check of ours that broke (which
would admit with the "could not check" warning), bounded in time and size."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from metrics_adapter.admission.cluster import Claim, Container, Hpa
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.api.app import Health, create_app
from metrics_adapter.binding.cluster import WATCHED, ClusterObjects
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from tests.support.admission import (
    NS,
    PATHS,
    FakeCluster,
    cron,
    resource,
    review,
    scaled_job,
    scaled_object,
    target,
    trigger_authentication,
)

WITHIN = 2.0
"""Seconds for one answer; a review takes about a millisecond."""
AT_MOST = 256 * 1024
"""Bytes of one answer: every message and warning list is bounded."""
BROKEN = "metrics-adapter could not check this object (logged): admitted"


def bases() -> list[dict[str, Any]]:
    """Valid reviews that reach every rule: cluster conflicts, cpu requests, modifiers,
    fallback, authentication, a ScaledJob, both authentication kinds."""
    redis = {
        "type": "redis",
        "name": "q",
        "metadata": {"address": "redis:6379", "listName": "jobs", "portFromEnv": "PORT"},
        "authenticationRef": {"name": "auth"},
    }
    so = scaled_object(
        annotations={"scaledobject.keda.sh/transfer-hpa-ownership": "true"},
        triggers=[cron(name="c"), resource(), redis],
        minReplicaCount=1,
        maxReplicaCount=5,
        idleReplicaCount=0,
        cooldownPeriod=30,
        fallback={"failureThreshold": 3, "replicas": 2, "behavior": "scalingModifiers"},
        advanced={
            "horizontalPodAutoscalerConfig": {"name": "hand-made"},
            "scalingModifiers": {"formula": "c + q ?? 1", "target": "2", "metricType": "Value"},
        },
    )
    old = copy.deepcopy(so)
    old["spec"]["maxReplicaCount"] = 4
    ta = trigger_authentication(
        secretTargetRef=[{"parameter": "password", "name": "redis", "key": "password"}],
        podIdentity={"provider": "azure-workload", "identityId": "id"},
        oauth2={"type": "clientCredentials", "clientId": "c", "tokenUrl": "https://t/token"},
    )
    cta = trigger_authentication(
        "ClusterTriggerAuthentication", env=[{"parameter": "p", "name": "P"}]
    )
    return [
        review(so),
        review(so, operation="UPDATE", old=old),
        review(so, dry_run=True),
        review(scaled_job(triggers=[cron(), redis])),
        review(ta),
        review(cta, operation="UPDATE", old=cta),
    ]


BASES = bases()


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _keys(child)
    elif isinstance(value, list):
        for child in value:
            yield from _keys(child)


FIELDS = sorted({key for base in BASES for key in _keys(base)})
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "0", "-1", "cpu", "memory", "true", "Utilization", "apps/v1", "x" * 300])
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value below ``value``."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield value, key
        yield from _slots(child)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid review with one to four of its values replaced, removed or added to."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    kind = doc["request"]["kind"]["kind"]
    for _ in range(draw(st.integers(1, 4))):
        obj = doc["request"].get("object") if isinstance(doc.get("request"), dict) else None
        # Mostly the object: a mutated envelope is a 400, one answer however it is broken.
        inside = isinstance(obj, dict) and obj and draw(st.integers(0, 9)) > 1
        slots = list(_slots(obj if inside else doc))
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            container[key] = draw(json_values)
        elif action == "remove" and isinstance(container, dict):
            del container[key]
        elif isinstance(container[key], dict):
            container[key][draw(st.sampled_from(FIELDS))] = draw(json_values)
        elif isinstance(container[key], list):
            container[key].append(draw(json_values))
    return kind, doc


def cluster_objects() -> ClusterObjects:
    objects = ClusterObjects("keda")
    password = base64.b64encode(b"hunter2").decode()
    objects.handle(
        "Secret",
        "ADDED",
        {"metadata": {"name": "redis", "namespace": NS}, "data": {"password": password}},
    )
    auth = {
        "metadata": {"name": "auth", "namespace": NS},
        "spec": {
            "secretTargetRef": [{"parameter": "password", "name": "redis", "key": "password"}]
        },
    }
    objects.handle("TriggerAuthentication", "ADDED", auth)
    for resource_ in WATCHED:
        objects.handle(resource_.kind, "SYNCED", {})
    return objects


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One app per test, with a cluster to conflict with: as a running server, it sees every
    example in turn."""
    cluster = FakeCluster(
        claims=[
            Claim("other", target(), "keda-hpa-other"),
            Claim("web", target("api"), "hand-made"),
        ],
        hpa_list=[
            Hpa("hand-made", target()),
            Hpa("mine", target(), frozenset({("ScaledObject", "web")})),
        ],
        workloads={
            ("Deployment", "web"): [Container("app"), Container("side", frozenset({"cpu"}))]
        },
    )
    webhook = AdmissionWebhook(
        Telemetry(), cluster=cluster, objects=cluster_objects(), deadline=1.0
    )
    app = create_app(MetricStore(), Health(loaded=True, poller_running=lambda: True), webhook)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://adapter") as http:
        yield http


async def post(client: httpx.AsyncClient, kind: str, body: bytes) -> httpx.Response:
    started = time.monotonic()
    answer = await client.post(PATHS[kind], content=body)
    assert time.monotonic() - started < WITHIN
    assert len(answer.content) < AT_MOST
    return answer


def note(what: str) -> None:
    if currently_in_test_context():
        event(what)


def check(answer: httpx.Response, sent: Any) -> None:
    """A 400 Status, or an AdmissionReview for the request's uid that says allowed or why not."""
    note(f"status {answer.status_code}")
    if answer.status_code == 400:
        status = answer.json()
        assert (status["kind"], status["reason"]) == ("Status", "BadRequest"), status
        assert status["message"], status
        return
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["uid"] == sent["request"]["uid"]
    assert BROKEN not in response.get("warnings", []), response
    assert all(isinstance(w, str) and len(w) <= 256 for w in response.get("warnings", []))
    if response["allowed"]:
        note("allowed")
        assert "status" not in response
    else:
        note("refused")
        assert response["status"]["code"] == 403 and response["status"]["message"]


hostile = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@hostile
@given(case=mutated())
async def test_mutated_reviews_are_decided(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any]]
) -> None:
    kind, doc = case
    answer = await post(client, kind, json.dumps(doc).encode())
    check(answer, doc)


@hostile
@given(body=json_values, kind=st.sampled_from(list(PATHS)))
@example(
    body={"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []},
    kind="ScaledObject",
)
async def test_any_json_is_a_bad_request_or_a_decision(
    client: httpx.AsyncClient, body: Any, kind: str
) -> None:
    answer = await post(client, kind, json.dumps(body).encode())
    assert answer.status_code in (200, 400), answer.text


@hostile
@given(body=st.binary(max_size=2_000), kind=st.sampled_from(list(PATHS)))
async def test_any_bytes_are_a_bad_request(
    client: httpx.AsyncClient, body: bytes, kind: str
) -> None:
    answer = await post(client, kind, body)
    assert answer.status_code in (200, 400), answer.text


async def test_every_base_review_is_decided_by_the_rules(client: httpx.AsyncClient) -> None:
    """The fuzzing starts from reviews that reach the rules (not from 400s)."""
    for doc in BASES:
        answer = await post(client, doc["request"]["kind"]["kind"], json.dumps(doc).encode())
        assert answer.status_code == 200, answer.text
        check(answer, doc)
