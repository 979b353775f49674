"""The real ``helm`` binary and prometheus-operator's ServiceMonitor CRD, built or fetched
into the cache on first use by the hack/ scripts (as the control-plane binaries are)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane.api import KubeApi
from tests.support.controlplane.binaries import CACHE, REPO
from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.processes import wait_for

HELM_VERSION = "3.21.4"
HELM = CACHE / f"helm-v{HELM_VERSION}" / "bin" / "helm"
BUILD_HELM = REPO / "hack" / "build-helm.sh"
PROMETHEUS_OPERATOR_VERSION = "0.85.0"
SERVICEMONITOR_CRD = (
    CACHE
    / f"prometheus-operator-v{PROMETHEUS_OPERATOR_VERSION}"
    / "monitoring.coreos.com_servicemonitors.yaml"
)
FETCH_CRD = REPO / "hack" / "fetch-servicemonitor-crd.sh"
CHART = REPO / "deploy" / "helm" / "metrics-adapter"


class HelmError(Exception):
    """helm exited non-zero; the message carries its command and stderr."""


def ensure_helm(timeout: float = 1800) -> Path:
    """The cached helm, built from its Go module first when missing (a minute or more)."""
    if not os.access(HELM, os.X_OK):
        subprocess.run([str(BUILD_HELM)], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if not os.access(HELM, os.X_OK):
        raise HelmError(f"{BUILD_HELM} did not produce {HELM}")
    return HELM


def servicemonitor_crd(timeout: float = 600) -> dict[str, Any]:
    """prometheus-operator's ServiceMonitor CRD, fetched through the Go module proxy once."""
    if not SERVICEMONITOR_CRD.is_file():
        subprocess.run([str(FETCH_CRD)], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text())
    assert crd["metadata"]["name"] == "servicemonitors.monitoring.coreos.com", SERVICEMONITOR_CRD
    return dict(crd)


def helm(*args: str, timeout: float = 120) -> str:
    """Run ``helm ARGS`` with a throwaway home (no repositories, no plugins) and return stdout."""
    home = CACHE / f"helm-v{HELM_VERSION}" / "home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        # Talking to a cluster, helm caches discovery under $HOME/.kube; without HOME that is
        # ./.kube, in whatever directory the tests run from.
        "HOME": str(home),
    }
    done = subprocess.run(
        [str(ensure_helm()), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def template(
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = "keda",
    release: str = "metrics-adapter",
) -> str:
    """``helm template`` of the chart, CRDs included, with ``values`` as a values file."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as file:
        yaml.safe_dump(dict(values or {}), file)
        file.flush()
        return helm(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--include-crds",
            "--values",
            file.name,
        )


def install(
    kubeconfig: Path,
    image: str,
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = "keda",
    release: str = "metrics-adapter",
) -> str:
    """``helm upgrade --install`` of the chart as a user runs it, with ``image`` (a built,
    imported reference: ``pullPolicy: Never``, nothing is pulled) and ``values`` on top.
    Returns helm's output (NOTES.txt); waiting for the pods is the caller's."""
    repository, tag = image.rsplit(":", 1)
    merged = {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}}
    merged.update(values or {})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as file:
        yaml.safe_dump(merged, file)
        file.flush()
        return helm(
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            namespace,
            "--create-namespace",
            "--values",
            file.name,
        )


def install_on_node(
    cp: ControlPlane,
    image: str,
    timeout: float,
    *,
    namespace: str = "keda",
    release: str = "metrics-adapter",
) -> dict[str, float]:
    """Import ``image`` into ``cp``'s node, :func:`install` the chart with it and wait until
    every replica is Ready; the seconds of each step."""
    assert cp.node is not None, "the control plane has no node (ControlPlane(with_node=True))"
    began = time.monotonic()
    cp.node.load_image(image)
    imported = time.monotonic()
    install(cp.kubeconfig, image, namespace=namespace, release=release)

    def all_ready() -> bool:
        found = cp.get("apps/v1", "Deployment", release, namespace) or {}
        spec, status = found.get("spec") or {}, found.get("status") or {}
        return bool(spec) and status.get("readyReplicas") == spec.get("replicas")

    wait_for(f"every replica of Deployment {namespace}/{release} Ready", all_ready, timeout, 0.5)
    return {
        "image import": round(imported - began, 2),
        "helm install to every replica Ready": round(time.monotonic() - imported, 2),
    }


def rendered(values: Mapping[str, Any] | None = None, **options: str) -> list[dict[str, Any]]:
    """The documents of :func:`template`, empty ones dropped."""
    return [doc for doc in yaml.safe_load_all(template(values, **options)) if doc]


def install_servicemonitor_crd(cp: KubeApi) -> None:
    """Install (for real: a dry-run CRD serves nothing) the ServiceMonitor CRD, once Established."""
    crd = servicemonitor_crd()
    cp.apply(crd)
    cp.wait_condition(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        crd["metadata"]["name"],
        "Established",
    )
