"""The Kubernetes API as the tests use it: discovery, server-side apply, get, delete, waits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.controlplane.errors import raise_for
from tests.support.controlplane.processes import wait_for

FIELD_MANAGER = "metrics-adapter-harness"


def deployment(
    name: str, namespace: str, replicas: int = 1, containers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Deployment whose pods are never pulled (there is no kubelet), for scaling tests.
    At 0 replicas the HPA does nothing (ScalingDisabled): the adapter takes the 0 -> 1 step."""
    labels = {"app": name}
    worker = {"name": "worker", "image": "registry.invalid/worker:e2e"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": containers or [worker]},
            },
        },
    }


def scalable_kind(
    group: str, kind: str, plural: str, *, version: str = "v1", selector_path: str | None = None
) -> dict[str, Any]:
    """A CustomResourceDefinition of ``kind`` with a /scale subresource on ``.spec.replicas``
    and ``.status.replicas`` (and, when given, the label selector the HPA asks for): a scale
    target with no controller behind it, so no Pods."""
    scale = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}
    if selector_path:
        scale["labelSelectorPath"] = selector_path
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"scale": scale},
                }
            ],
        },
    }


def scalable_object(
    api_version: str, kind: str, name: str, namespace: str, replicas: int
) -> dict[str, Any]:
    """An object of a :func:`scalable_kind` kind (made with ``selector_path=".status.selector"``)
    at ``replicas``, with the label selector the HPA insists on. Without a status subresource
    its status is written with it, and nothing changes it after."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": f"{kind.lower()}={name}"},
    }


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind`` of ``obj``."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file, or of each ``*.yaml`` under a directory, in name order."""
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


class KubeApi:
    """Mixed into the control plane, which provides an authenticated ``client`` and an empty
    ``_resources`` cache."""

    _resources: dict[tuple[str, str], tuple[str, bool]]
    """(apiVersion, kind) -> (plural, namespaced), filled by discovery."""

    @property
    def client(self) -> httpx.Client:
        raise NotImplementedError

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of ``kind``, from discovery; waits briefly for new CRDs."""
        key = (api_version, kind)
        if key not in self._resources:
            prefix = "/api" if "/" not in api_version else "/apis"

            def discover() -> bool:
                response = self.client.get(f"{prefix}/{api_version}")
                if response.status_code == 404:
                    return False
                raise_for(response)
                for r in response.json()["resources"]:
                    if "/" not in r["name"]:
                        self._resources[(api_version, r["kind"])] = (r["name"], r["namespaced"])
                return key in self._resources

            wait_for(f"discovery of {kind} in {api_version}", discover, 15)
        return self._resources[key]

    def path(
        self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None
    ) -> str:
        plural, namespaced = self.resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    def _object_path(self, obj: Mapping[str, Any], *, named: bool = True) -> str:
        meta = obj.get("metadata") or {}
        name = meta.get("name") if named else None
        return self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), name)

    def apply(
        self,
        obj: Mapping[str, Any] | str,
        *,
        dry_run: bool = False,
        field_validation: str = "Strict",
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply of ``obj`` (a dict or one YAML document), forcing conflicts;
        returns the object as stored (as it would be, with ``dry_run``)."""
        if isinstance(obj, str):
            obj = yaml.safe_load(obj)
            assert isinstance(obj, Mapping), "apply takes one YAML mapping"
        params = {
            "fieldManager": field_manager,
            "force": "true",
            "fieldValidation": field_validation,
        }
        if dry_run:
            params["dryRun"] = "All"
        response = self.client.patch(
            self._object_path(obj),
            params=params,
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        raise_for(response)
        return dict(response.json())

    def create(
        self, obj: Mapping[str, Any], *, field_validation: str | None = None
    ) -> httpx.Response:
        """POST ``obj`` and return the raw response (status, body and Warning headers)."""
        params = {"fieldValidation": field_validation} if field_validation else {}
        return self.client.post(self._object_path(obj, named=False), params=params, json=obj)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        response = self.client.get(self.path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return None
        raise_for(response)
        return dict(response.json())

    def replicas(self, name: str, namespace: str) -> int:
        """A Deployment's ``spec.replicas`` (0 when it is missing)."""
        found = self.get("apps/v1", "Deployment", name, namespace) or {}
        return int((found.get("spec") or {}).get("replicas") or 0)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        response = self.client.delete(self.path(api_version, kind, namespace, name))
        if response.status_code != 404:
            raise_for(response)

    def ensure_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def wait_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        condition_type: str,
        *,
        namespace: str | None = None,
        status: str = "True",
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Wait until condition ``condition_type`` of the object has ``status``; return it."""

        def probe() -> dict[str, Any] | None:
            obj = self.get(api_version, kind, name, namespace)
            c = condition(obj, condition_type)
            return obj if c is not None and c.get("status") == status else None

        try:
            return wait_for(f"{kind} {name} {condition_type}={status}", probe, timeout)
        except TimeoutError as exc:
            last = condition(self.get(api_version, kind, name, namespace), condition_type)
            raise TimeoutError(f"{exc}; last {condition_type}: {last}") from None
