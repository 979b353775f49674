"""The Kubernetes shapes the controller writes and reads back, each with its JSON in one
place (metrics_adapter.kube.objects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.errors import KubeError
from metrics_adapter.kube.objects import (
    Event,
    Lease,
    LeaseSpec,
    ObjectMeta,
    ObjectReference,
    Scale,
    finalizers_patch,
)
from scalers.errors import Problems

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ABOUT = ObjectReference("keda.sh/v1alpha1", "ScaledObject", "apps", "echo", "u-1")


def test_an_event_as_client_gos_recorder_writes_it() -> None:
    event = Event(ABOUT, "KEDAScaleTargetActivated", "Scaled", at=T0, nonce=255)
    assert event.to_json() == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "echo.ff", "namespace": "apps"},
        "involvedObject": {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "namespace": "apps",
            "name": "echo",
            "uid": "u-1",
        },
        "reason": "KEDAScaleTargetActivated",
        "message": "Scaled",
        "type": "Normal",
        "source": {"component": "keda-operator"},
        "reportingComponent": "keda-operator",
        "firstTimestamp": "2026-01-02T03:04:05Z",
        "lastTimestamp": "2026-01-02T03:04:05Z",
        "count": 1,
    }
    assert event.subject == "Event KEDAScaleTargetActivated on ScaledObject apps/echo"
    assert Event(ABOUT, "r", "m").name != Event(ABOUT, "r", "m").name


def test_scale_reads_absent_counts_as_zero_and_refuses_a_wrong_shape() -> None:
    answer = {"metadata": {"resourceVersion": "9"}, "spec": {"replicas": 3}, "status": {}}
    assert Scale.from_response(answer, "s") == Scale(3, 0, "", "9")
    assert Scale.from_response({}, "s") == Scale(0)
    with pytest.raises(
        KubeError, match=r'Deployment a/b \(get scale\): BadResponse: spec.replicas: "3"'
    ):
        Scale.from_response({"spec": {"replicas": "3"}}, "Deployment a/b (get scale)")
    assert Scale.patch(2) == {"spec": {"replicas": 2}}


def test_metadata_reads_and_writes_what_the_adapter_uses() -> None:
    raw = {
        "name": "echo",
        "namespace": "apps",
        "uid": "u-1",
        "resourceVersion": "7",
        "generation": 2,
        "labels": {"team": "a"},
        "finalizers": ["finalizer.keda.sh", 3],
        "deletionTimestamp": "2026-01-02T03:04:05Z",
        "managedFields": [{"manager": "kubectl"}],
    }
    problems = Problems()
    meta = ObjectMeta.parse(raw, problems)
    assert [str(p) for p in problems] == ["metadata.finalizers[1]: 3 must be a string"]
    assert meta.finalizers == ("finalizer.keda.sh",)
    assert meta.deletion_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert meta.to_json() == {
        "name": "echo",
        "namespace": "apps",
        "uid": "u-1",
        "resourceVersion": "7",
        "labels": {"team": "a"},
        "finalizers": ["finalizer.keda.sh"],
    }
    assert ObjectMeta.parse({"name": "c"}, Problems(), namespaced=False).to_json() == {"name": "c"}
    assert finalizers_patch(()) == {"metadata": {"finalizers": []}}


def test_a_lease_is_written_whole_on_the_version_it_was_read_at() -> None:
    read: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "metrics-adapter", "namespace": "keda", "resourceVersion": "7"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "leaseTransitions": 1},
    }
    lease = Lease.from_response(read, "Lease keda/metrics-adapter (get)")
    renewed = Lease(lease.meta, LeaseSpec("me", 15, T0, T0, 1))
    assert renewed.to_json() == {
        **read,
        "spec": {
            **read["spec"],
            "acquireTime": "2026-01-02T03:04:05.678901Z",
            "renewTime": "2026-01-02T03:04:05.678901Z",
        },
    }
    with pytest.raises(KubeError, match=r"BadResponse: spec\.leaseDurationSeconds"):
        Lease.from_response({**read, "spec": {"leaseDurationSeconds": "15"}}, "Lease")
