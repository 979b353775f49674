"""The CRDs in deploy/crds declare exactly what the parser reads (no cluster needed)."""

from __future__ import annotations

from typing import Any

from metrics_adapter.model.keda import SPEC_FIELDS, TRIGGER_FIELDS
from tests.support.controlplane import DEPLOY, load_manifests

CRDS = {d["metadata"]["name"]: d for d in load_manifests(DEPLOY / "crds")}


def schema(crd: str) -> dict[str, Any]:
    [version] = CRDS[crd]["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def test_the_three_keda_crds_are_there() -> None:
    assert set(CRDS) == {
        "scaledobjects.keda.sh",
        "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh",
    }
    names = {n: CRDS[n]["spec"]["names"]["shortNames"] for n in CRDS}
    assert names == {
        "scaledobjects.keda.sh": ["so"],
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
    [version] = CRDS["scaledobjects.keda.sh"]["spec"]["versions"]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == KEDA_COLUMNS
