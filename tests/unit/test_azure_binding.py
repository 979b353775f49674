"""azure-queue and azure-blob bound as the controller binds them: KEDA's own e2e objects
for Azure AD workload identity are refused naming the identity (Ready=False), with no
"is required" beside it; a connection string from a Secret binds."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory, load_documents
from metrics_adapter.binding.triggers import bind_all
from metrics_adapter.model.keda import ObjectRef
from scalers.azure_storage import DEV_CONNECTION
from scalers.errors import ConfigError

NS = "apps"
TRIGGERS = {
    "azure-queue": {"queueName": "orders", "accountName": "acct"},
    "azure-blob": {"blobContainerName": "uploads", "accountName": "acct"},
}


def _inventory(trigger_type: str, spec: dict[str, Any], *more: dict[str, Any]) -> Inventory:
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": "web"},
            "triggers": [
                {
                    "type": trigger_type,
                    "metadata": TRIGGERS[trigger_type],
                    "authenticationRef": {"name": "auth"},
                }
            ],
        },
    }
    auth = {"kind": "TriggerAuthentication", "metadata": {"name": "auth", "namespace": NS}}
    docs = [so, {**auth, "spec": spec}, *more]
    return load_documents((f"doc{i}", d) for i, d in enumerate(docs))


@pytest.mark.parametrize("trigger_type", sorted(TRIGGERS))
def test_workload_identity_is_refused_by_name(trigger_type: str) -> None:
    found = _inventory(trigger_type, {"podIdentity": {"provider": "azure-workload"}})
    with pytest.raises(ConfigError) as info:
        bind_all(found.scaled_objects[ObjectRef(NS, "so")], found)
    problems = [str(p) for p in info.value.problems]
    assert any("podIdentity azure-workload" in p for p in problems), problems
    assert any("Azure AD workload identity is not supported" in p for p in problems), problems
    assert not any("is required" in p for p in problems), problems


@pytest.mark.parametrize("trigger_type", sorted(TRIGGERS))
def test_a_connection_string_from_a_secret_binds(trigger_type: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "storage", "namespace": NS},
        "data": {"conn": base64.b64encode(DEV_CONNECTION.encode()).decode()},
    }
    ref = {"parameter": "connection", "name": "storage", "key": "conn"}
    found = _inventory(trigger_type, {"secretTargetRef": [ref]}, secret)
    binding = bind_all(found.scaled_objects[ObjectRef(NS, "so")], found)
    (bound,) = binding.triggers
    assert bound.metric_name.startswith(f"s0-{trigger_type}-")
    assert "Eby8vdM02" not in repr(bound.scaler) and "Eby8vdM02" not in repr(bound.scaler.query)
