"""The adapter as kube-apiserver's aggregator sees it: discovery, values, and who may read them."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.e2e.conftest import NAMESPACE, Registered, metric_name
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    APISERVICE,
    client_context,
    condition,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_the_apiservice_trusts_our_ca_and_routes_to_localhost(registered: Registered) -> None:
    cp = registered.cp
    apiservice = cp.get("apiregistration.k8s.io/v1", "APIService", APISERVICE)
    assert apiservice is not None
    spec = apiservice["spec"]
    assert base64.b64decode(spec["caBundle"]) == cp.ca.pem
    assert not spec.get("insecureSkipTLSVerify")
    assert spec["service"] == {
        "namespace": ADAPTER_NAMESPACE,
        "name": ADAPTER_SERVICE,
        "port": registered.adapter.port,
    }
    assert (condition(apiservice, "Available") or {}).get("status") == "True"
    service = cp.get("v1", "Service", ADAPTER_SERVICE, ADAPTER_NAMESPACE)
    assert service is not None
    assert (service["spec"]["type"], service["spec"]["externalName"]) == (
        "ExternalName",
        "localhost",
    )


def test_discovery_through_the_aggregator(registered: Registered) -> None:
    response = registered.cp.client.get("/apis/external.metrics.k8s.io/v1beta1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert [(r["name"], r["namespaced"], r["verbs"]) for r in body["resources"]] == [
        ("externalmetrics", True, ["get"])
    ]


def test_a_metric_through_the_aggregator(registered: Registered) -> None:
    response = registered.cp.client.get(registered.metric_path(registered.worker))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["apiVersion"]) == (
        "ExternalMetricValueList",
        "external.metrics.k8s.io/v1beta1",
    )
    [item] = body["items"]
    assert item["metricName"] == metric_name(registered.worker)
    assert item["value"] == "7"


def test_an_unknown_scaled_object_is_a_404_status(registered: Registered) -> None:
    path = registered.metric_path(registered.worker).replace("%3Dworker", "%3Dnobody")
    response = registered.cp.client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["kind"] == "Status"


def test_a_user_without_rbac_gets_403_from_kube_apiserver(registered: Registered) -> None:
    cp = registered.cp
    metric = metric_name(registered.worker)
    path = registered.metric_path(registered.worker)
    with cp.client_for(cp.ca.issue("nobody")) as nobody:
        response = nobody.get(path)
        assert response.status_code == 403, response.text
        status = response.json()
        assert status["reason"] == "Forbidden"
        # The aggregator authorizes a metric read as `list` on a resource named after it.
        assert (
            f'User "nobody" cannot list resource "{metric}" in API group '
            f'"external.metrics.k8s.io" in the namespace "{NAMESPACE}"'
        ) in status["message"]

        cp.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "external-metrics-reader", "namespace": NAMESPACE},
                "rules": [
                    {
                        "apiGroups": ["external.metrics.k8s.io"],
                        "resources": ["*"],
                        "verbs": ["get", "list"],
                    }
                ],
            }
        )
        cp.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "nobody-reads-metrics", "namespace": NAMESPACE},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "external-metrics-reader",
                },
                "subjects": [{"kind": "User", "name": "nobody"}],
            }
        )
        try:
            granted = wait_for(
                "RBAC to allow nobody", lambda: nobody.get(path).status_code == 200, 10
            )
            assert granted
        finally:
            cp.delete(
                "rbac.authorization.k8s.io/v1", "RoleBinding", "nobody-reads-metrics", NAMESPACE
            )


def test_the_hpa_controller_may_read_external_metrics_without_our_rbac(
    registered: Registered,
) -> None:
    """Kubernetes' own role for the HPA covers external.metrics.k8s.io (control-plane.md §6)."""
    review = registered.cp.client.post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system"],
                "resourceAttributes": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "resource": metric_name(registered.worker),
                    "namespace": NAMESPACE,
                    "verb": "list",
                },
            },
        },
    )
    assert review.status_code == 201, review.text
    status = review.json()["status"]
    assert status["allowed"], status
    assert "system:controller:horizontal-pod-autoscaler" in status.get("reason", "")


def test_a_forged_remote_user_without_the_front_proxy_certificate_is_rejected(
    registered: Registered,
) -> None:
    """Only the aggregator's front-proxy client certificate may assert X-Remote-User (§6)."""
    forged = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    with httpx.Client(verify=client_context(registered.cp.ca.pem), timeout=10) as direct:
        response = direct.get(
            registered.adapter.url + registered.metric_path(registered.worker), headers=forged
        )
    assert response.status_code == 401, response.text
    assert response.json()["reason"] == "Unauthorized"
