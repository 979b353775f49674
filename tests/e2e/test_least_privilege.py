"""The least-privilege modes on a real control plane, the adapter running as its ServiceAccount
with the chart's RBAC for them (``watchNamespace`` and ``permissions.operator.restrict.secret``)
in place of deploy/rbac.yaml's: Roles in the watched namespace, a Role for Secrets in its own
namespace, and a ClusterRole that lists nothing. A watch or list outside them would be refused
(403) and logged; the objects in the watched namespace are served all the same, and those
that need what the adapter may not read say why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import controlplane, triggers
from tests.support.controlplane import Adapter, ControlPlane, condition, wait_for
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.helm import ensure_helm, rendered

pytestmark = pytest.mark.e2e

WATCHED, OTHER = "lp-watched", "lp-other"
KEDA = "keda.sh/v1alpha1"
RBAC = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
VALUES = {
    "watchNamespace": WATCHED,
    "permissions": {"operator": {"restrict": {"secret": True}}},
}
HPA = "autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-worker"
SLACK = 30.0
"""A first bind, and what a loaded 2-core machine adds to it."""
CRON = triggers.always_cron(2)


def least_privilege(cp: ControlPlane) -> None:
    """The chart's RBAC for VALUES, over deploy/rbac.yaml's of the same names: the ClusterRole
    keeps only the caBundle rules, so nothing is listed cluster-wide."""
    for namespace in (WATCHED, OTHER):
        cp.ensure_namespace(namespace)
    for doc in rendered(VALUES, namespace="keda"):
        if doc["kind"] in RBAC:
            cp.apply(doc)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Adapter]]:
    ensure_helm()
    args = [f"--watch-namespace={WATCHED}", "--restrict-secret-access"]
    with cluster_mode(WATCHED, args=args, register=False, prepare=least_privilege) as running:
        yield running


def ready(cp: ControlPlane, name: str, namespace: str = WATCHED) -> dict[str, Any] | None:
    return condition(cp.get(KEDA, "ScaledObject", name, namespace), "Ready")


def ready_is(cp: ControlPlane, name: str, status: str) -> dict[str, Any]:
    """The Ready condition of ScaledObject ``name`` once it has ``status``."""
    so = cp.wait_condition(
        KEDA, "ScaledObject", name, "Ready", namespace=WATCHED, status=status, timeout=SLACK
    )
    found = condition(so, "Ready")
    assert found is not None
    return found


def authentication(kind: str, name: str, namespace: str | None, secret: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    ref = {"parameter": "password", "name": secret, "key": "password"}
    return {"apiVersion": KEDA, "kind": kind, "metadata": meta, "spec": {"secretTargetRef": [ref]}}


def metrics_api(name: str, auth_kind: str, auth: str) -> dict[str, Any]:
    trigger = {
        "type": "metrics-api",
        "metadata": {
            "url": "http://127.0.0.1:1/value",
            "valueLocation": "value",
            "targetValue": "1",
            "authMode": "basic",
            "username": "user",
        },
        "authenticationRef": {"name": auth, "kind": auth_kind},
    }
    return triggers.scaled_object(name, WATCHED, trigger, minReplicaCount=1)


def test_a_watched_namespace_is_served_with_namespaced_rights_only(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, adapter = cluster
    for namespace in (WATCHED, OTHER):
        cp.apply(controlplane.deployment("worker", namespace, 1))
        cp.apply(triggers.scaled_object("worker", namespace, CRON, minReplicaCount=1))
    cond = ready_is(cp, "worker", "True")
    assert cond["reason"] == "ScaledObjectReady"
    wait_for("its HPA", lambda: cp.get(*HPA, WATCHED), SLACK)
    # The other namespace is not this adapter's: no status, no HPA.
    assert ready(cp, "worker", OTHER) is None
    assert cp.get(*HPA, OTHER) is None
    # Nothing was asked outside the rights: a 403 would be in the log, with its retries.
    log = adapter.tail(10**6)
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]


def test_a_secret_in_the_watched_namespace_is_not_read_and_says_why(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, _ = cluster
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": WATCHED},
            "stringData": {"password": "s3cret"},
        }
    )
    cp.apply(authentication("TriggerAuthentication", "basic", WATCHED, "creds"))
    cp.apply(metrics_api("with-secret", "TriggerAuthentication", "basic"))
    cond = ready_is(cp, "with-secret", "False")
    assert f"Secret {WATCHED}/creds (for parameter password) is not read" in cond["message"]
    assert "--restrict-secret-access: Secrets are read only in keda" in cond["message"]
    assert "s3cret" not in str(cp.get(KEDA, "ScaledObject", "with-secret", WATCHED))


def test_a_cluster_trigger_authentication_is_not_read_in_a_namespaced_mode(
    cluster: tuple[ControlPlane, Adapter],
) -> None:
    cp, _ = cluster
    cp.apply(authentication("ClusterTriggerAuthentication", "shared", None, "creds"))
    cp.apply(metrics_api("with-cluster-auth", "ClusterTriggerAuthentication", "shared"))
    cond = ready_is(cp, "with-cluster-auth", "False")
    assert 'ClusterTriggerAuthentication "shared" is not read: --watch-namespace' in cond["message"]
