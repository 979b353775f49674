"""deploy/kustomization.yaml applies every manifest of deploy/ (no cluster needed; the e2e
tests apply each of them to a real kube-apiserver)."""

from __future__ import annotations

import yaml

from tests.support.controlplane import DEPLOY

KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
OPTIONAL = {"servicemonitor.yaml"}
"""Manifests outside the kustomization: they need CRDs a cluster may not have."""


def test_the_kustomization_lists_every_manifest() -> None:
    """Every YAML of deploy/ and deploy/crds/ is applied by `kubectl -k deploy/` (the chart,
    the dashboard and the optional ones aside), each once."""
    manifests = {
        str(path.relative_to(DEPLOY))
        for path in [*DEPLOY.glob("*.yaml"), *(DEPLOY / "crds").glob("*.yaml")]
    }
    resources = KUSTOMIZATION["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == manifests - OPTIONAL - {"kustomization.yaml"}
    assert (KUSTOMIZATION["apiVersion"], KUSTOMIZATION["kind"]) == (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    )
