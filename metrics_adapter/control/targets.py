"""A scale target's apiVersion when the ScaledObject writes none."""

from __future__ import annotations

import dataclasses

from metrics_adapter.errors import KubeNotFound
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.model.keda import ScaledObject
from scalers.errors import ConfigError, Problems


async def with_target_version(kube: KubeClient, so: ScaledObject) -> ScaledObject:
    """``so`` with its scale target's apiVersion asked of discovery when it wrote none (KEDA's
    default ``apps/v1`` would not find an Argo Rollout); ConfigError when no group, or more
    than one, serves the kind with a /scale subresource. A Deployment or StatefulSet costs
    no request."""
    target = so.scale_target_ref
    if not target.api_version_omitted:
        return so
    try:
        version = await kube.api_version_of(target.kind)
    except KubeNotFound as exc:
        problems = Problems()
        problems.add(
            "scaleTargetRef.apiVersion",
            f"not written, and discovery finds no one version for kind {target.kind} "
            f"({exc.message}): write the target's apiVersion",
        )
        raise ConfigError(f"ScaledObject {so.ref}", problems) from exc
    if version == target.api_version:
        return so
    resolved = dataclasses.replace(target, api_version=version)
    return dataclasses.replace(so, scale_target_ref=resolved)
