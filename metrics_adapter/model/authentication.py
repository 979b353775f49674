"""KEDA's TriggerAuthentication and ClusterTriggerAuthentication (``keda.sh/v1alpha1``) as
frozen typed objects: where a trigger's authentication parameters come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metrics_adapter.kube.objects import ObjectMeta
from metrics_adapter.model.keda import parse_meta, spec_fields, subject_of
from scalers.errors import Problems


@dataclass(frozen=True, slots=True)
class SecretTargetRef:
    parameter: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class EnvRef:
    parameter: str
    name: str
    container_name: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerAuthentication:
    """A TriggerAuthentication, or a ClusterTriggerAuthentication when ``cluster`` is set."""

    meta: ObjectMeta
    cluster: bool = False
    secret_target_refs: tuple[SecretTargetRef, ...] = ()
    config_map_target_refs: tuple[SecretTargetRef, ...] = ()
    env: tuple[EnvRef, ...] = ()
    pod_identity_provider: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "ClusterTriggerAuthentication" if self.cluster else "TriggerAuthentication"


def parse_trigger_authentication(raw: Mapping[str, object]) -> TriggerAuthentication:
    """Parse a TriggerAuthentication or ClusterTriggerAuthentication (by ``kind``)."""
    cluster = raw.get("kind") == "ClusterTriggerAuthentication"
    kind = "ClusterTriggerAuthentication" if cluster else "TriggerAuthentication"
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems, namespaced=not cluster)
    spec = spec_fields(raw, problems, warnings)

    def refs(key: str) -> tuple[SecretTargetRef, ...]:
        return tuple(
            SecretTargetRef(
                parameter=r.string("parameter", "", required=True) or "",
                name=r.string("name", "", required=True) or "",
                key=r.string("key", "", required=True) or "",
            )
            for r in spec.items(key)
        )

    auth = TriggerAuthentication(
        meta=meta,
        cluster=cluster,
        secret_target_refs=refs("secretTargetRef"),
        config_map_target_refs=refs("configMapTargetRef"),
        env=tuple(
            EnvRef(
                parameter=e.string("parameter", "", required=True) or "",
                name=e.string("name", "", required=True) or "",
                container_name=e.string("containerName"),
            )
            for e in spec.items("env")
        ),
        pod_identity_provider=spec.child("podIdentity").string("provider"),
        warnings=tuple(warnings),
    )
    problems.raise_for(subject_of(kind, raw, namespaced=not cluster))
    return auth
