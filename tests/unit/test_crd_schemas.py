"""The CRDs in deploy/crds declare exactly what the parser reads (no cluster needed).

tests/e2e/test_manifests.py applies the same objects to a real kube-apiserver and compares
the ScaledJob's JobSpec schema with KEDA's own CRD.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.kube.objects import Condition
from metrics_adapter.model import scaled_job
from metrics_adapter.model.keda import SPEC_FIELDS, TRIGGER_FIELDS
from tests.support.controlplane import DEPLOY, load_manifests
from tests.support.structural import violations
from tests.unit.test_seeds import SEED_OBJECTS, seed_documents

CRDS = {d["metadata"]["name"]: d for d in load_manifests(DEPLOY / "crds")}
SEED_JOBS = seed_documents("ScaledJob")


def version(crd: str) -> dict[str, Any]:
    [only] = CRDS[crd]["spec"]["versions"]
    return dict(only)


def schema(crd: str) -> dict[str, Any]:
    return dict(version(crd)["schema"]["openAPIV3Schema"])


def without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def test_the_four_keda_crds_are_there() -> None:
    assert set(CRDS) == {
        "scaledobjects.keda.sh",
        "scaledjobs.keda.sh",
        "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh",
    }
    names = {n: CRDS[n]["spec"]["names"]["shortNames"] for n in CRDS}
    assert names == {
        "scaledobjects.keda.sh": ["so"],
        "scaledjobs.keda.sh": ["sj"],
        "triggerauthentications.keda.sh": ["ta", "triggerauth"],
        "clustertriggerauthentications.keda.sh": ["cta", "clustertriggerauth"],
    }


def test_scaled_object_schema_matches_the_parser() -> None:
    spec = schema("scaledobjects.keda.sh")["properties"]["spec"]
    assert set(spec["properties"]) == SPEC_FIELDS
    assert set(spec["properties"]["triggers"]["items"]["properties"]) == TRIGGER_FIELDS


def test_cluster_trigger_authentication_is_trigger_authentication_plus_file_path() -> None:
    namespaced = schema("triggerauthentications.keda.sh")["properties"]["spec"]
    cluster = schema("clustertriggerauthentications.keda.sh")["properties"]["spec"]
    cluster_props = dict(cluster["properties"])
    assert cluster_props.pop("filePath")["items"]["required"] == ["parameter", "path"]
    assert cluster_props == namespaced["properties"]
    assert CRDS["clustertriggerauthentications.keda.sh"]["spec"]["scope"] == "Cluster"


KEDA_COLUMNS = [
    "ScaleTargetKind",
    "ScaleTargetName",
    "Min",
    "Max",
    "Ready",
    "Active",
    "Fallback",
    "Paused",
    "Age",
]
"""`kubectl get scaledobjects` columns, as KEDA prints them (after Name)."""


def test_printer_columns_follow_keda() -> None:
    columns = version("scaledobjects.keda.sh")["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == KEDA_COLUMNS


# ScaledJob


KEDA_JOB_COLUMNS = [
    ("Min", "integer", ".spec.minReplicaCount"),
    ("Max", "integer", ".spec.maxReplicaCount"),
    ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
    ("Active", "string", '.status.conditions[?(@.type=="Active")].status'),
    ("Paused", "string", '.status.conditions[?(@.type=="Paused")].status'),
    ("Triggers", "string", ".status.triggersTypes"),
    ("Authentications", "string", ".status.authenticationsTypes"),
    ("Age", "date", ".metadata.creationTimestamp"),
]
"""`kubectl get scaledjobs` columns of KEDA v2.20.2's CRD (after Name), all at priority 0."""


def job_schema() -> dict[str, Any]:
    return schema("scaledjobs.keda.sh")


def test_scaled_job_is_served_as_kedas() -> None:
    crd = CRDS["scaledjobs.keda.sh"]["spec"]
    assert (crd["group"], crd["scope"]) == ("keda.sh", "Namespaced")
    assert crd["names"] == {
        "kind": scaled_job.KIND,
        "listKind": "ScaledJobList",
        "plural": "scaledjobs",
        "singular": "scaledjob",
        "shortNames": ["sj"],
    }
    served = version("scaledjobs.keda.sh")
    assert (served["name"], served["served"], served["storage"]) == ("v1alpha1", True, True)
    assert served["subresources"] == {"status": {}}
    columns = served["additionalPrinterColumns"]
    assert [(c["name"], c["type"], c["jsonPath"]) for c in columns] == KEDA_JOB_COLUMNS
    assert not [c for c in columns if c.get("priority")]


def test_scaled_job_schema_matches_the_parser() -> None:
    spec = job_schema()["properties"]["spec"]
    assert set(spec["properties"]) == scaled_job.SPEC_FIELDS
    assert sorted(spec["required"]) == ["jobTargetRef", "triggers"]
    strategy = spec["properties"]["scalingStrategy"]["properties"]
    assert set(strategy) == scaled_job.SCALING_STRATEGY_FIELDS
    assert set(strategy["strategy"]["enum"]) == set(scaled_job.STRATEGIES)
    assert set(strategy["multipleScalersCalculation"]["enum"]) == set(scaled_job.CALCULATIONS)
    rollout = spec["properties"]["rollout"]["properties"]
    assert set(rollout["strategy"]["enum"]) == set(scaled_job.ROLLOUTS)
    assert set(spec["properties"]["rolloutStrategy"]["enum"]) == set(scaled_job.ROLLOUTS)
    assert set(rollout["propagationPolicy"]["enum"]) == set(scaled_job.PROPAGATIONS)


def test_scaled_job_triggers_are_declared_as_scaled_object_triggers() -> None:
    """One trigger schema for both kinds, as in KEDA (the same Go type); only the
    descriptions differ, where a field means something else for Jobs."""
    job = job_schema()["properties"]["spec"]["properties"]["triggers"]
    obj = schema("scaledobjects.keda.sh")["properties"]["spec"]["properties"]["triggers"]
    assert without_descriptions(job) == without_descriptions(obj)


def test_job_target_ref_is_a_whole_job_spec_nothing_pruned_nothing_preserved() -> None:
    """KEDA's full batch/v1 JobSpec (hack/sync-jobspec-schema.py; the e2e tests compare it
    with KEDA's CRD): a typo in a Job fails a strict apply instead of reaching the Job."""
    ref = job_schema()["properties"]["spec"]["properties"]["jobTargetRef"]
    assert ref["type"] == "object"
    assert ref["required"] == ["template"]
    assert "x-kubernetes-preserve-unknown-fields" not in str(ref)
    assert {"backoffLimit", "parallelism", "podFailurePolicy", "ttlSecondsAfterFinished"} <= set(
        ref["properties"]
    )
    pod = ref["properties"]["template"]["properties"]["spec"]
    assert pod["required"] == ["containers"]
    assert without_descriptions(ref["properties"]) == ref["properties"]


def full_status() -> scaled_job.ScaledJobStatus:
    return scaled_job.ScaledJobStatus(
        conditions=(
            Condition("Ready", "True", "ScaledJobReady", "ScaledJob is defined correctly"),
            Condition("Active", "False", "ScalerNotActive", "Scaling is not performed"),
            Condition("Paused", "False", "ScaledJobUnpaused", ""),
        ),
        last_active_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        external_metric_names=("s0-aws-sqs-queue-batch-jobs",),
        triggers_types="aws-sqs-queue",
        authentications_types="aws-credentials",
        triggers_activity={"s0-aws-sqs-queue-batch-jobs": True},
        paused="false",
    )


def test_every_status_field_the_adapter_writes_is_declared_as_kedas() -> None:
    status = full_status().to_json()
    declared = job_schema()["properties"]["status"]
    assert set(declared["properties"]) == set(status)
    assert violations(job_schema(), {"status": status}) == []
    assert without_descriptions(declared["properties"]["conditions"]) == without_descriptions(
        schema("scaledobjects.keda.sh")["properties"]["status"]["properties"]["conditions"]
    )


def seed_job() -> dict[str, Any]:
    [(_, doc)] = [(o, d) for o, d in SEED_JOBS if d["metadata"]["name"] == "batch-processor"]
    return copy.deepcopy(doc)


def test_the_seed_scaled_job_validates_but_for_its_misplaced_backoff_limit() -> None:
    """The user's batch-processor indents backoffLimit under the pod template, where a JobSpec
    has no such field: KEDA's schema rejects it under strict validation (and drops it, with a
    warning, otherwise). Moved up into the JobSpec, where it belongs, nothing is left."""
    assert violations(job_schema(), seed_job()) == [
        "spec.jobTargetRef.template.backoffLimit: unknown field"
    ]
    assert violations(job_schema(), good_job()) == []


def test_seed_scaled_objects_check_as_the_api_server_does() -> None:
    """The checker agrees with the e2e apply of every seed: only KEDA-unknown spec fields."""
    for origin, doc in SEED_OBJECTS:
        unknown = sorted(set(doc["spec"]) - SPEC_FIELDS)
        expected = [f"spec.{field}: unknown field" for field in unknown]
        assert violations(schema("scaledobjects.keda.sh"), doc) == expected, origin


BAD_JOB_VALUES = [
    ("pollingInterval 0", ("pollingInterval",), 0),
    ("negative history limit", ("successfulJobsHistoryLimit",), -1),
    ("negative failed history limit", ("failedJobsHistoryLimit",), -1),
    ("negative minReplicaCount", ("minReplicaCount",), -1),
    ("maxReplicaCount 0", ("maxReplicaCount",), 0),
    ("rollout strategy default", ("rollout", "strategy"), "default"),
    ("propagation orphan", ("rollout", "propagationPolicy"), "orphan"),
    ("rolloutStrategy default", ("rolloutStrategy",), "default"),
    ("unknown scaling strategy", ("scalingStrategy", "strategy"), "fast"),
    ("unknown calculation", ("scalingStrategy", "multipleScalersCalculation"), "median"),
    ("percentage as a number", ("scalingStrategy", "customScalingRunningJobPercentage"), 0.5),
    ("no triggers", ("triggers",), []),
    ("empty trigger type", ("triggers", 0, "type"), ""),
    ("no job template", ("jobTargetRef", "template"), None),
    ("a quantity that is none", ("jobTargetRef", "template", "spec", "overhead"), {"cpu": "x"}),
    ("backoffLimit a string", ("jobTargetRef", "backoffLimit"), "3"),
    ("misspelled JobSpec field", ("jobTargetRef", "parallelizm"), 2),
]
"""(case, where in spec, value; None deletes it): each breaks exactly one rule of the schema."""


def good_job() -> dict[str, Any]:
    """The seed batch-processor with its backoffLimit where a JobSpec has it."""
    doc = seed_job()
    ref = doc["spec"]["jobTargetRef"]
    ref["backoffLimit"] = ref["template"].pop("backoffLimit")
    return doc


def bad_job(where: tuple[str | int, ...], value: Any) -> tuple[dict[str, Any], str]:
    """:func:`good_job` with ``value`` at ``where``, and that field's path in messages."""
    doc = good_job()
    target: Any = doc["spec"]
    for key in where[:-1]:
        target = target[key] if isinstance(key, int) else target.setdefault(key, {})
    if value is None:
        del target[where[-1]]
    else:
        target[where[-1]] = value
    return doc, "spec" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where)


@pytest.mark.parametrize(
    ("case", "where", "value"), BAD_JOB_VALUES, ids=[c for c, _, _ in BAD_JOB_VALUES]
)
def test_the_scaled_job_schema_rejects_bad_values(
    case: str, where: tuple[str | int, ...], value: Any
) -> None:
    doc, path = bad_job(where, value)
    [found] = violations(job_schema(), doc)
    assert found.startswith(path), found
