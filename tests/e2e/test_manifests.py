"""deploy/ applies to a real kube-apiserver, and the CRD schema accepts what users write.

Every ScaledObject of the user documents (shared/seeds, extracted by tests/unit/test_seeds)
and of demo/ is stored as written, minus fields KEDA does not have, which come back as
warnings; with ``fieldValidation=Strict`` a misspelled field is an error, not a silent drop.
The seed ScaledJob too, and its JobSpec schema is KEDA v2.20.2's (hack/fetch-keda-crd.sh).
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from metrics_adapter.model.keda import SPEC_FIELDS
from tests.e2e.conftest import Registered, cron_object
from tests.support.controlplane import ADAPTER_USER, DEPLOY, REPO, KubeError, load_manifests
from tests.support.helm import install_servicemonitor_crd
from tests.unit.test_crd_schemas import (
    BAD_JOB_VALUES,
    KEDA_COLUMNS,
    KEDA_JOB_COLUMNS,
    bad_job,
    good_job,
    seed_job,
    without_descriptions,
)
from tests.unit.test_kustomization import KUSTOMIZATION
from tests.unit.test_seeds import SEED_OBJECTS

pytestmark = pytest.mark.e2e

DEPLOY_DOCS = [
    (f"{resource}#{i}", doc)
    for resource in KUSTOMIZATION["resources"]
    for i, doc in enumerate(load_manifests(DEPLOY / resource))
]
USER_OBJECTS = [
    *SEED_OBJECTS,
    ("demo/echo-worker.yaml", yaml.safe_load((REPO / "demo" / "echo-worker.yaml").read_text())),
]
_WARNING = re.compile(r'^\d{3} \S+ "(?P<text>.*)"$')


def warnings(response: httpx.Response) -> list[str]:
    """The texts of the Warning headers kube-apiserver sent (RFC 7234 form)."""
    found = []
    for header in response.headers.get_list("warning"):
        match = _WARNING.match(header)
        found.append(match["text"].replace('\\"', '"') if match else header)
    return found


def namespace_for(origin: str) -> str:
    return ("user-" + re.sub(r"[^a-z0-9]+", "-", origin.lower())).strip("-")[:63]


@pytest.mark.parametrize(("origin", "doc"), DEPLOY_DOCS, ids=[o for o, _ in DEPLOY_DOCS])
def test_every_deploy_manifest_applies_strictly(
    registered: Registered, origin: str, doc: dict[str, Any]
) -> None:
    applied = registered.cp.apply(doc, dry_run=True, field_manager="e2e-dry-run")
    assert (applied["kind"], applied["metadata"]["name"]) == (doc["kind"], doc["metadata"]["name"])


def test_the_servicemonitor_applies_with_prometheus_operators_crd(
    registered: Registered,
) -> None:
    cp = registered.cp
    install_servicemonitor_crd(cp)
    [monitor] = load_manifests(DEPLOY / "servicemonitor.yaml")
    applied = cp.apply(monitor, dry_run=True, field_manager="e2e-dry-run")
    assert applied["spec"]["endpoints"][0]["port"] == "metrics"
    [service] = load_manifests(DEPLOY / "service.yaml")
    assert "metrics" in {port["name"] for port in service["spec"]["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )


def test_the_crds_are_served_with_their_short_names(registered: Registered) -> None:
    resources = registered.cp.client.get("/apis/keda.sh/v1alpha1").json()["resources"]
    served = {r["name"]: (r["namespaced"], r.get("shortNames")) for r in resources}
    assert served == {
        "scaledobjects": (True, ["so"]),
        "scaledobjects/status": (True, None),
        "scaledjobs": (True, ["sj"]),
        "scaledjobs/status": (True, None),
        "triggerauthentications": (True, ["ta", "triggerauth"]),
        "triggerauthentications/status": (True, None),
        "clustertriggerauthentications": (False, ["cta", "clustertriggerauth"]),
        "clustertriggerauthentications/status": (False, None),
    }


@pytest.mark.parametrize(("origin", "doc"), USER_OBJECTS, ids=[o for o, _ in USER_OBJECTS])
def test_user_scaled_objects_are_accepted(
    registered: Registered, origin: str, doc: dict[str, Any]
) -> None:
    cp = registered.cp
    namespace = namespace_for(origin)
    cp.ensure_namespace(namespace)
    obj = copy.deepcopy(doc)
    obj["metadata"]["namespace"] = namespace
    response = cp.create(obj)
    assert response.status_code == 201, response.text
    unknown = sorted(set(doc["spec"]) - SPEC_FIELDS)
    assert warnings(response) == [f'unknown field "spec.{field}"' for field in unknown]
    assert response.json()["spec"] == {k: v for k, v in doc["spec"].items() if k in SPEC_FIELDS}


def test_kubectl_get_so_shows_keda_columns(registered: Registered) -> None:
    cp = registered.cp
    namespace = namespace_for("demo/echo-worker.yaml")
    cp.ensure_namespace(namespace)
    doc = yaml.safe_load((REPO / "demo" / "echo-worker.yaml").read_text())
    doc["metadata"] = {"name": "columns", "namespace": namespace}
    cp.create(doc)
    table = cp.client.get(
        cp.path("keda.sh/v1alpha1", "ScaledObject", namespace),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    ).json()
    names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", *KEDA_COLUMNS]
    [row] = [r for r in table["rows"] if r["cells"][0] == "columns"]
    assert row["cells"][1:5] == [None, "echo-worker", 0, 5]  # no status yet


def test_job_target_ref_is_kedas_job_spec_schema() -> None:
    """deploy/crds' ScaledJob embeds KEDA's own JobSpec schema, every keyword but the
    descriptions (hack/sync-jobspec-schema.py writes it from the same file)."""
    fetch = REPO / "hack" / "fetch-keda-crd.sh"
    out = subprocess.run([str(fetch)], check=True, capture_output=True, text=True, timeout=600)
    keda = yaml.safe_load(Path(out.stdout.strip()).read_text())
    [ours] = [
        d for d in load_manifests(DEPLOY / "crds") if d["metadata"]["name"] == "scaledjobs.keda.sh"
    ]
    [keda_version], [our_version] = keda["spec"]["versions"], ours["spec"]["versions"]

    def job_spec(version: dict[str, Any]) -> Any:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        return without_descriptions(spec["properties"]["jobTargetRef"])

    assert job_spec(our_version) == job_spec(keda_version)
    keda_columns = keda_version["additionalPrinterColumns"]
    assert [(c["name"], c["type"], c["jsonPath"]) for c in keda_columns] == KEDA_JOB_COLUMNS


def _in_namespace(doc: dict[str, Any], namespace: str, name: str | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(doc)
    obj["metadata"]["namespace"] = namespace
    if name:
        obj["metadata"]["name"] = name
    return obj


def test_the_seed_scaled_job_is_stored_without_its_misplaced_backoff_limit(
    registered: Registered,
) -> None:
    """batch-processor puts backoffLimit in the pod template, where a JobSpec has no such
    field: a strict create names it, a plain one drops it with a warning, as with KEDA's CRD;
    with backoffLimit where it belongs, the strict create stores the ScaledJob as written."""
    cp = registered.cp
    namespace = namespace_for("seed-scaled-job")
    cp.ensure_namespace(namespace)
    seed = seed_job()
    misplaced = 'unknown field "spec.jobTargetRef.template.backoffLimit"'
    strict = cp.create(_in_namespace(seed, namespace), field_validation="Strict")
    assert strict.status_code == 400, strict.text
    assert misplaced in strict.json()["message"]
    response = cp.create(_in_namespace(seed, namespace))
    assert response.status_code == 201, response.text
    assert warnings(response) == [misplaced]
    stored = response.json()["spec"]
    assert "backoffLimit" not in stored["jobTargetRef"]["template"]
    assert (
        stored["jobTargetRef"]["template"]["spec"]
        == seed["spec"]["jobTargetRef"]["template"]["spec"]
    )
    fixed = good_job()
    response = cp.create(_in_namespace(fixed, namespace, "fixed"), field_validation="Strict")
    assert response.status_code == 201, response.text
    assert warnings(response) == []
    assert response.json()["spec"] == fixed["spec"]


def test_kubectl_get_sj_shows_keda_columns(registered: Registered) -> None:
    cp = registered.cp
    namespace = namespace_for("scaled-job-columns")
    cp.ensure_namespace(namespace)
    assert cp.create(_in_namespace(good_job(), namespace, "columns")).status_code == 201
    table = cp.client.get(
        cp.path("keda.sh/v1alpha1", "ScaledJob", namespace),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    ).json()
    names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", *(name for name, _, _ in KEDA_JOB_COLUMNS)]
    [row] = [r for r in table["rows"] if r["cells"][0] == "columns"]
    assert row["cells"][1:3] == [0, 50]


@pytest.mark.parametrize(
    ("case", "where", "value"), BAD_JOB_VALUES, ids=[c for c, _, _ in BAD_JOB_VALUES]
)
def test_the_scaled_job_schema_rejects_bad_values(
    registered: Registered, case: str, where: tuple[str | int, ...], value: Any
) -> None:
    """What tests/unit/test_crd_schemas.py's checker finds, kube-apiserver finds too."""
    cp = registered.cp
    cp.ensure_namespace("typos")
    doc, path = bad_job(where, value)
    name = "bad-" + re.sub(r"[^a-z0-9]+", "-", case.lower())
    response = cp.create(_in_namespace(doc, "typos", name), field_validation="Strict")
    assert response.status_code in (400, 422), response.text
    assert path in response.json()["message"]


def _typo() -> dict[str, Any]:
    doc = cron_object("typo", 2)
    doc["metadata"]["namespace"] = "typos"
    doc["spec"]["pollingIntervall"] = 5
    doc["spec"]["triggers"][0]["authenticationRef"] = {"name": "auth", "knd": "x"}
    return doc


def test_a_misspelled_field_fails_a_strict_create_and_apply(registered: Registered) -> None:
    cp = registered.cp
    cp.ensure_namespace("typos")
    response = cp.create(_typo(), field_validation="Strict")
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert 'unknown field "spec.pollingIntervall"' in message
    assert 'unknown field "spec.triggers[0].authenticationRef.knd"' in message
    with pytest.raises(KubeError) as raised:
        cp.apply(_typo())
    assert "pollingIntervall" in raised.value.message
    assert cp.get("keda.sh/v1alpha1", "ScaledObject", "typo", "typos") is None


def test_without_strict_a_misspelled_field_is_dropped_with_a_warning(
    registered: Registered,
) -> None:
    cp = registered.cp
    cp.ensure_namespace("typos")
    doc = _typo()
    doc["metadata"]["name"] = "typo-warned"
    response = cp.create(doc)
    assert response.status_code == 201, response.text
    assert sorted(warnings(response)) == [
        'unknown field "spec.pollingIntervall"',
        'unknown field "spec.triggers[0].authenticationRef.knd"',
    ]
    assert "pollingIntervall" not in response.json()["spec"]


BAD_VALUES = [
    ("metadata value not a string", ("triggers", 0, "metadata", "desiredReplicas"), 7),
    ("unknown metricType", ("triggers", 0, "metricType"), "Averagevalue"),
    ("negative minReplicaCount", ("minReplicaCount",), -1),
    ("pollingInterval 0", ("pollingInterval",), 0),
    ("no triggers", ("triggers",), []),
    (
        "unknown fallback behavior",
        ("fallback",),
        {"failureThreshold": 3, "replicas": 2, "behavior": "x"},
    ),
    (
        "authenticationRef kind",
        ("triggers", 0, "authenticationRef"),
        {"name": "a", "kind": "Secret"},
    ),
]


@pytest.mark.parametrize(("case", "where", "value"), BAD_VALUES, ids=[c for c, _, _ in BAD_VALUES])
def test_the_schema_rejects_bad_values(
    registered: Registered, case: str, where: tuple[str | int, ...], value: Any
) -> None:
    cp = registered.cp
    cp.ensure_namespace("typos")
    doc = cron_object("bad-value", 2)
    doc["metadata"]["namespace"] = "typos"
    target: Any = doc["spec"]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    response = cp.create(doc)
    assert response.status_code == 422, response.text
    named = [k for k in where if isinstance(k, str)]
    assert named[-1] in response.json()["message"]


# (verb, group, resource, subresource, namespace, allowed)
ADAPTER_ACCESS = [
    ("watch", "keda.sh", "scaledobjects", "", "", True),
    ("patch", "keda.sh", "scaledobjects", "status", "apps", True),
    ("list", "keda.sh", "clustertriggerauthentications", "", "", True),
    ("list", "", "secrets", "", "apps", True),
    ("create", "", "secrets", "", "keda", False),
    ("get", "", "secrets", "", "apps", False),
    ("create", "autoscaling", "horizontalpodautoscalers", "", "apps", True),
    ("patch", "apps", "deployments", "scale", "apps", True),
    ("patch", "apps", "statefulsets", "scale", "apps", True),
    ("update", "apps", "statefulsets", "scale", "apps", False),
    ("create", "", "events", "", "apps", True),
    ("list", "", "configmaps", "", "kube-system", True),
    ("get", "", "configmaps", "", "kube-system", False),
    ("create", "authentication.k8s.io", "tokenreviews", "", "", True),
    ("create", "authorization.k8s.io", "subjectaccessreviews", "", "", True),
    ("update", "coordination.k8s.io", "leases", "", "keda", True),
    ("update", "coordination.k8s.io", "leases", "", "apps", False),
    ("delete", "keda.sh", "scaledobjects", "", "apps", False),
    ("patch", "apps", "deployments", "", "apps", False),
    ("create", "", "pods", "", "apps", False),
    ("watch", "keda.sh", "scaledjobs", "", "", True),
    ("patch", "keda.sh", "scaledjobs", "status", "batch", True),
    ("update", "keda.sh", "scaledjobs", "finalizers", "batch", True),
    ("delete", "keda.sh", "scaledjobs", "", "batch", False),
    ("update", "keda.sh", "scaledjobs", "", "batch", False),
    ("create", "batch", "jobs", "", "batch", True),
    ("watch", "batch", "jobs", "", "", True),
    ("delete", "batch", "jobs", "", "batch", True),
    ("patch", "batch", "jobs", "", "batch", False),
    ("update", "batch", "jobs", "status", "batch", False),
    ("create", "batch", "cronjobs", "", "batch", False),
    ("watch", "", "pods", "", "", True),
    ("get", "", "pods", "", "batch", False),
    ("delete", "", "pods", "", "batch", False),
]


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "namespace", "allowed"),
    ADAPTER_ACCESS,
    ids=[f"{a[0]}-{a[2]}{'/' + a[3] if a[3] else ''}-{a[4] or 'cluster'}" for a in ADAPTER_ACCESS],
)
def test_deploy_rbac_grants_the_adapter_what_it_needs_and_no_more(
    registered: Registered,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str,
    allowed: bool,
) -> None:
    attributes = {"verb": verb, "group": group, "resource": resource}
    attributes |= {"subresource": subresource, "namespace": namespace}
    review = registered.cp.client.post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": ADAPTER_USER,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:keda"],
                "resourceAttributes": attributes,
            },
        },
    )
    assert review.status_code == 201, review.text
    assert review.json()["status"]["allowed"] is allowed, review.json()["status"]
