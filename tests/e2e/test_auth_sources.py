"""Authentication sources resolved on a real control plane, by the adapter running as its
ServiceAccount with deploy/rbac.yaml's rights.

- ``boundServiceAccountToken``: a token requested through the TokenRequest API reaches a
  metrics-api trigger (``authMode: bearer``), and the loopback metrics server here accepts it
  only after kube-apiserver's TokenReview says it is that ServiceAccount's. The adapter may
  request it because the test grants ``serviceaccounts/token`` in its namespace, as
  docs/security.md asks users to.
- ``podIdentity`` ``aws`` with ``identityOwner: workload``: the role is the workload
  ServiceAccount's ``eks.amazonaws.com/role-arn`` annotation, from the ServiceAccounts watch;
  one without it is Ready=False naming the annotation.
- an unsupported source (``azureKeyVault``): Ready=False naming it, not a missing parameter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.support import controlplane
from tests.support.controlplane import Adapter, ControlPlane, condition
from tests.support.controlplane.adapter import ADAPTER_NAMESPACE, ADAPTER_SERVICE
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.pki import KeyPair

pytestmark = pytest.mark.e2e
NS = "auth-sources"
KEDA = "keda.sh/v1alpha1"
READER = "metrics-reader"  # the ServiceAccount whose token the trigger sends
INTERVAL = 1
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen: seconds of
apiserver, controller-manager and adapter work each, late."""
SETTLE = (
    10.0  # binding.auth_sources.cache.SETTLE_WITHIN: an object's first bind waits for its reads
)


@dataclass
class TokenCheckingServer:
    """A metrics endpoint answering ``{"value": 7}`` only to a bearer token that
    kube-apiserver's TokenReview authenticates as ``expected``; it counts both answers."""

    cp: ControlPlane
    expected: str
    accepted: int = 0
    refused: list[str] = field(default_factory=list)
    server: HTTPServer | None = None

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                user = owner.review(self.headers.get("Authorization", ""))
                if user == owner.expected:
                    owner.accepted += 1
                    body, code = b'{"value": 7}', 200
                else:
                    owner.refused.append(user or "no valid token")
                    body, code = b'{"error": "unauthorized"}', 401
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/value"

    def review(self, header: str) -> str | None:
        token = header.removeprefix("Bearer ").strip()
        if not header.startswith("Bearer ") or not token:
            return None
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        with self.cp.client_for(KeyPair.read(self.cp.pki, "admin")) as client:  # own thread
            answer = client.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)
        status = answer.json().get("status") or {}
        return (status.get("user") or {}).get("username") if status.get("authenticated") else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter
    metrics: TokenCheckingServer
    url: str


def grant_token_requests(cp: ControlPlane) -> None:
    """What docs/security.md asks of a user of boundServiceAccountToken, in the namespace."""
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "metrics-adapter-token-creator", "namespace": NS},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts/token"],
                    "resourceNames": [READER],
                    "verbs": ["create"],
                }
            ],
        }
    )
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-adapter-token-creator", "namespace": NS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "metrics-adapter-token-creator",
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": ADAPTER_SERVICE,
                    "namespace": ADAPTER_NAMESPACE,
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with cluster_mode(NS, register=False, prepare=grant_token_requests) as (cp, adapter):
        metrics = TokenCheckingServer(cp, f"system:serviceaccount:{NS}:{READER}")
        url = metrics.start()
        try:
            yield Cluster(cp, adapter, metrics, url)
        finally:
            metrics.stop()


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    with cluster.adapter.healthy():
        yield


def service_account(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def authentication(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": KEDA,
        "kind": "TriggerAuthentication",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def scaled_object(name: str, target: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": KEDA,
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": target},
            "pollingInterval": INTERVAL,
            "minReplicaCount": 1,
            "triggers": [trigger],
        },
    }


def workload(name: str, account: str | None = None) -> dict[str, Any]:
    doc = controlplane.deployment(name, NS, 1)
    if account:
        doc["spec"]["template"]["spec"]["serviceAccountName"] = account
    return doc


BOUND = ("ScaledObjectReady", "TriggerError")
"""Ready reasons of an object whose triggers bound (polled or not yet)."""


def ready(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    return condition(cp.get(KEDA, "ScaledObject", name, NS), "Ready")


def wait_for(what: str, probe: Callable[[], Any], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g}s")
        time.sleep(0.2)


def ready_is(cp: ControlPlane, name: str, status: str) -> dict[str, Any]:
    cond: dict[str, Any] = wait_for(
        f"ScaledObject {name} Ready={status}",
        lambda: (c := ready(cp, name)) and c.get("status") == status and c,
        SETTLE + SLACK,
    )
    return cond


def test_a_bound_service_account_token_reaches_the_trigger(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(service_account(READER))
    cp.apply(workload("api-worker"))
    cp.apply(
        authentication(
            "bound-token",
            boundServiceAccountToken=[{"parameter": "token", "serviceAccountName": READER}],
        )
    )
    trigger = {
        "type": "metrics-api",
        "metadata": {
            "url": cluster.url,
            "valueLocation": "value",
            "targetValue": "5",
            "authMode": "bearer",
        },
        "authenticationRef": {"name": "bound-token"},
    }
    cp.apply(scaled_object("bound-token", "api-worker", trigger))
    assert ready_is(cp, "bound-token", "True")
    # Its first bind waited for the token: never Ready=False on the way.
    events = cp.client.get(
        f"/api/v1/namespaces/{NS}/events",
        params={"fieldSelector": "involvedObject.name=bound-token"},
    ).json()["items"]
    assert [e["message"] for e in events if e["reason"] == "ScaledObjectCheckFailed"] == []
    wait_for(
        "a request with the ServiceAccount's token",
        lambda: cluster.metrics.accepted,
        INTERVAL + SCALER_TIMEOUT + SLACK,
    )
    assert cluster.metrics.refused == []
    log = cluster.adapter.tail(10**6)
    assert _issued_token_prefix(cp) not in log
    assert "Bearer ey" not in log


def _issued_token_prefix(cp: ControlPlane) -> str:
    """The JOSE header every ServiceAccount token of this control plane starts with: a log
    holding a token holds it (a token's payload differs, its header does not)."""
    answer = cp.client.post(
        f"/api/v1/namespaces/{NS}/serviceaccounts/{READER}/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    answer.raise_for_status()
    token = str(answer.json()["status"]["token"])
    return token.split(".")[0] + "." + token.split(".")[1][:8]


def sqs_trigger(auth: str) -> dict[str, Any]:
    return {
        "type": "aws-sqs-queue",
        "metadata": {
            "queueURL": "http://127.0.0.1:1/123456789012/jobs",
            "awsRegion": "eu-west-1",
            "queueLength": "5",
        },
        "authenticationRef": {"name": auth},
    }


def test_a_workload_owned_aws_identity_reads_the_service_account_annotation(
    cluster: Cluster,
) -> None:
    cp = cluster.cp
    role = "arn:aws:iam::123456789012:role/web-reader"
    cp.apply(service_account("web-sa", {"eks.amazonaws.com/role-arn": role}))
    cp.apply(service_account("plain-sa"))
    cp.apply(workload("web", "web-sa"))
    cp.apply(workload("plain", "plain-sa"))
    identity = {"provider": "aws", "identityOwner": "workload"}
    cp.apply(authentication("workload-aws", podIdentity=identity))
    cp.apply(scaled_object("web-queue", "web", sqs_trigger("workload-aws")))
    cp.apply(scaled_object("plain-queue", "plain", sqs_trigger("workload-aws")))
    # web-queue binds: Ready=True until its first poll, then TriggerError (no queue listens
    # at 127.0.0.1:1); either way never refused for its identity, whichever is seen first.
    bound: dict[str, Any] = wait_for(
        "ScaledObject web-queue bound",
        lambda: (c := ready(cp, "web-queue")) and c.get("reason") in BOUND and c,
        SETTLE + SLACK,
    )
    assert "role-arn" not in bound.get("message", ""), bound
    refused = ready_is(cp, "plain-queue", "False")
    assert (
        "podIdentity aws: ServiceAccount auth-sources/plain-sa of the workload has no "
        "annotation eks.amazonaws.com/role-arn"
    ) in refused["message"]


def test_an_unsupported_source_is_not_ready_naming_it(cluster: Cluster) -> None:
    cp = cluster.cp
    cp.apply(workload("vaulted"))
    cp.apply(
        authentication(
            "azure-kv",
            azureKeyVault={
                "vaultUri": "https://example.vault.azure.net",
                "secrets": [{"parameter": "token", "name": "api-token"}],
            },
        )
    )
    trigger = {
        "type": "metrics-api",
        "metadata": {
            "url": cluster.url,
            "valueLocation": "value",
            "targetValue": "5",
            "authMode": "bearer",
        },
        "authenticationRef": {"name": "azure-kv"},
    }
    cp.apply(scaled_object("azure-kv", "vaulted", trigger))
    message = ready_is(cp, "azure-kv", "False")["message"]
    assert "authentication source azureKeyVault is not supported by metrics-adapter" in message
    assert "is required" not in message
