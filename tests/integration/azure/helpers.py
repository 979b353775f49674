"""Azure triggers built as the binder builds them, pointed at an Azurite service, and the
ScaledObjects and bound triggers the poller takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metrics_adapter.binding.triggers import BoundTrigger
from metrics_adapter.model.keda import parse_scaled_object
from scalers import azure_blob, azure_queue
from scalers.base import Scaler, ScalerKind, indexed_metric_name
from scalers.errors import Problems
from scalers.params import TriggerInputs
from tests.support.azurite import Azurite


def build(
    kind: ScalerKind[Any], metadata: Mapping[str, str], auth: Mapping[str, str] | None = None
) -> Scaler[Any]:
    """A trigger of ``kind`` as the binder builds it; a ConfigError names every problem."""
    problems = Problems()
    built = kind.create(TriggerInputs(dict(metadata), {}, dict(auth or {})), problems)
    problems.raise_for(f"trigger {kind.type_name}")
    assert built is not None
    return built


def queue_trigger(server: Azurite, metadata: Mapping[str, str], **auth: str) -> Scaler[Any]:
    return build(azure_queue.KIND, metadata, auth or {"connection": server.connection_string()})


def blob_trigger(server: Azurite, metadata: Mapping[str, str], **auth: str) -> Scaler[Any]:
    return build(azure_blob.KIND, metadata, auth or {"connection": server.connection_string()})


def bound(name: str, kind: ScalerKind[Any], scaler: Scaler[Any]) -> BoundTrigger:
    """``scaler`` as the only trigger of a ScaledObject ``name``, ready for the poller."""
    so = parse_scaled_object(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"name": name},
                "pollingInterval": 5,
                "triggers": [{"type": kind.type_name, "metadata": {}}],
            },
        }
    )
    metric = indexed_metric_name(0, scaler.metric_name)
    return BoundTrigger(so.ref, so.triggers[0], kind, scaler, metric, 5.0)
