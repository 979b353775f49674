"""The adapter, run standalone or in cluster mode, registered as the external metrics API
and, on request, as the validating webhook of deploy/webhook.yaml.

The aggregator reaches it through a Service of type ExternalName ``localhost`` and the
APIService's real caBundle (shared/reference/control-plane.md §4). kube-apiserver's webhook
client reaches it through the same Service: it resolves a webhook's ``clientConfig.service``
with the same ClusterIP resolver as the aggregator (``--enable-aggregator-routing`` off), which
maps an ExternalName Service to ``https://<externalName>:<webhook port>`` and verifies
``<service>.<namespace>.svc`` against the webhook's caBundle. So the webhooks are registered
as deploy/ writes them, by Service, not by ``clientConfig.url`` (verified on 1.34.4).
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.controlplane.api import load_manifests
from tests.support.controlplane.binaries import REPO
from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.pki import write_kubeconfig
from tests.support.controlplane.processes import Process, log_path, tail, wait_for
from tests.support.pki import KeyPair, client_context
from tests.support.servers import free_port

DEPLOY = REPO / "deploy"
ADAPTER_NAMESPACE, ADAPTER_SERVICE = "keda", "metrics-adapter"
APISERVICE = "v1beta1.external.metrics.k8s.io"
WEBHOOK_CONFIGURATION = "metrics-adapter"
ADAPTER_USER = f"system:serviceaccount:{ADAPTER_NAMESPACE}:{ADAPTER_SERVICE}"
"""Who the adapter is to kube-apiserver: its ServiceAccount, so deploy/rbac.yaml is what it has."""


@dataclass
class Adapter:
    """``metrics-adapter serve`` on a fixed free port, restartable in place: standalone on
    ``objects``, or in cluster mode with ``kubeconfig``."""

    objects: Path
    state: Path
    pair: KeyPair
    ca_pem: bytes
    port: int = field(default_factory=free_port)
    detach: bool = False
    process: Process | None = None
    kubeconfig: Path | None = None
    """Cluster mode: watch ScaledObjects through this kubeconfig instead of reading files."""
    auth_kubeconfig: Path | None = None
    """Standalone: ask this cluster who callers are and what they may read."""
    args: list[str] = field(default_factory=list)
    """More ``serve`` flags."""
    self_managed: bool = False
    """Serve a certificate of its own making (``--cert-secret`` in ``args``), not ``pair``."""
    launcher: list[str] = field(default_factory=list)
    """Run under this: ``env FAKETIME=+5m LD_PRELOAD=...`` for a clock of its own."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Adapter:
        cert, key = self.pair.write(self.state / "pki", ADAPTER_SERVICE)
        self.objects.mkdir(parents=True, exist_ok=True)
        source = (
            f"--kubeconfig={self.kubeconfig}"
            if self.kubeconfig
            else f"--scaledobjects={self.objects}"
        )
        argv = [*self.launcher, sys.executable, "-m", "metrics_adapter", "serve", source]
        argv += [f"--secure-port={self.port}", "--bind-address=127.0.0.1", "--metrics-port=0"]
        if not self.self_managed:
            argv += [f"--tls-cert-file={cert}", f"--tls-private-key-file={key}"]
        if self.auth_kubeconfig and not self.kubeconfig:
            argv.append(f"--authentication-kubeconfig={self.auth_kubeconfig}")
        # Denials are remembered 30 s by default; tests that grant RBAC should not wait that.
        argv += ["--authorization-deny-ttl=1", "--cert-reload-interval=0.2", *self.args]
        self.process = Process(ADAPTER_SERVICE, argv, self.state).start(detach=self.detach)
        # Our own process on loopback: a self-managed certificate's CA is not known yet.
        context: ssl.SSLContext | bool = not self.self_managed and client_context(self.ca_pem)

        def ready() -> bool:
            assert self.process is not None
            self.process.check()
            with httpx.Client(verify=context, timeout=2) as client:
                return client.get(f"{self.url}/readyz").status_code == 200

        try:
            wait_for(f"the adapter on {self.url}", ready, timeout, 0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def tail(self, lines: int = 30) -> str:
        return tail(log_path(self.state, ADAPTER_SERVICE), lines)

    @contextlib.contextmanager
    def healthy(self) -> Iterator[None]:
        """Around one test: the adapter runs at its start (one that exited shows its log
        here, not as timeouts in the tests after it) and has logged no bug by its end. The
        controllers keep going past one, so only the log tells."""
        assert self.process is not None, "the adapter is not running"
        self.process.check()
        before = len(self.tail(10**6))
        yield
        added = self.tail(10**6)[before:]
        assert "failed unexpectedly" not in added, added

    def restart(self) -> Adapter:
        """Stop and start again on the same port, re-reading ``objects``."""
        self.stop()
        return self.start()


def adapter_kubeconfig_path(cp: ControlPlane) -> Path:
    return cp.state / "metrics-adapter.kubeconfig"


def adapter_kubeconfig(cp: ControlPlane) -> Path:
    """A kubeconfig for the adapter's ServiceAccount (a client certificate with its name), so
    the adapter has exactly the permissions of deploy/rbac.yaml; one written before (at
    :func:`adapter_kubeconfig_path`) is kept."""
    path = adapter_kubeconfig_path(cp)
    if not path.exists():
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ADAPTER_NAMESPACE}"]
        pair = cp.ca.issue(ADAPTER_USER, organizations=groups)
        write_kubeconfig(path, cp.url, cp.ca.pem, pair)
    return path


def token_kubeconfig(cp: ControlPlane) -> str:
    """Write the adapter's kubeconfig (at :func:`adapter_kubeconfig_path`) with a token of its
    ServiceAccount, as a Pod has it, and return the token: a read one replica forwards to
    another under ``--shards`` is then authenticated (TokenReview) and authorized
    (deploy/rbac.yaml), and a caller holding the token may read the metrics API as well."""
    answer = cp.client.post(
        f"/api/v1/namespaces/{ADAPTER_NAMESPACE}/serviceaccounts/{ADAPTER_SERVICE}/token",
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )
    if answer.status_code != 201:
        raise RuntimeError(f"TokenRequest for {ADAPTER_USER}: {answer.status_code} {answer.text}")
    token: str = answer.json()["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": cp.url,
                    "certificate-authority-data": base64.b64encode(cp.ca.pem).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path = adapter_kubeconfig_path(cp)
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return token


def install_manifests(cp: ControlPlane) -> None:
    """Apply deploy/ but the APIService: the RBAC (with Namespace ``keda``) and the CRDs,
    waiting until the CRDs are Established, as a cluster-mode adapter needs before it starts."""
    for doc in load_manifests(DEPLOY / "rbac.yaml"):
        cp.apply(doc)
    for crd in load_manifests(DEPLOY / "crds"):
        cp.apply(crd)
    for crd in load_manifests(DEPLOY / "crds"):
        name = crd["metadata"]["name"]
        cp.wait_condition(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", name, "Established"
        )


def register_adapter(cp: ControlPlane, adapter: Adapter, timeout: float = 90) -> dict[str, Any]:
    """Install deploy/ (RBAC, CRDs, APIService with the real caBundle) and route the APIService
    to ``adapter`` through ExternalName ``localhost``; return the APIService once Available."""
    install_manifests(cp)
    return route_apiservice(cp, adapter, timeout)


def route_service(
    cp: ControlPlane, name: str = ADAPTER_SERVICE, namespace: str = ADAPTER_NAMESPACE
) -> None:
    """Service ``namespace/name`` of type ExternalName ``localhost``: the aggregator and the
    webhook client dial https://<externalName>:<the port the APIService or the webhook
    names> (§4)."""
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
    )


def route_apiservice(cp: ControlPlane, adapter: Adapter, timeout: float = 90) -> dict[str, Any]:
    """The APIService, with the real caBundle, routed to ``adapter`` through ExternalName
    ``localhost``; returned once Available."""
    [apiservice] = load_manifests(DEPLOY / "apiservice.yaml")
    return register_apiservice(cp, apiservice, adapter.ca_pem, adapter.port, timeout)


def register_apiservice(
    cp: ControlPlane, apiservice: dict[str, Any], ca_pem: bytes, port: int, timeout: float = 90
) -> dict[str, Any]:
    """``apiservice`` (as a release ships it) with ``ca_pem`` as its caBundle, routed through
    its Service, made an ExternalName ``localhost``, to ``port``; returned once Available."""
    service = apiservice["spec"]["service"]
    route_service(cp, service["name"], service["namespace"])
    apiservice["spec"]["caBundle"] = base64.b64encode(ca_pem).decode()
    apiservice["spec"].pop("insecureSkipTLSVerify", None)  # refused beside a caBundle
    service["port"] = port
    cp.apply(apiservice)
    name = apiservice["metadata"]["name"]
    return cp.wait_condition(
        "apiregistration.k8s.io/v1", "APIService", name, "Available", timeout=timeout
    )


def webhook_configuration(
    adapter: Adapter, failure_policy: str | None = None, ca_bundle: bool = True
) -> dict[str, Any]:
    """deploy/webhook.yaml routed to ``adapter``'s port, with its CA as every caBundle (none:
    left for a self-managed adapter to write) and, when given, another failurePolicy."""
    [configuration] = load_manifests(DEPLOY / "webhook.yaml")
    for webhook in configuration["webhooks"]:
        client = webhook["clientConfig"]
        client["service"]["port"] = adapter.port
        if ca_bundle:
            client["caBundle"] = base64.b64encode(adapter.ca_pem).decode()
        if failure_policy is not None:
            webhook["failurePolicy"] = failure_policy
    return configuration


def register_webhook(
    cp: ControlPlane, adapter: Adapter, failure_policy: str | None = None, timeout: float = 60
) -> None:
    """deploy/webhook.yaml routed to ``adapter`` through ExternalName ``localhost``; returns
    once kube-apiserver calls it: a dry-run create of a ScaledObject the webhook alone
    refuses (a name over 63 characters, which the schema allows) is refused."""
    route_service(cp)
    cp.apply(webhook_configuration(adapter, failure_policy))
    wait_for("kube-apiserver to call the admission webhook", lambda: webhook_answers(cp), timeout)


def webhook_answers(cp: ControlPlane, namespace: str = "default") -> bool:
    """Whether the webhook refuses (a server-side dry run, nothing stored) what only it refuses."""
    probe = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "webhook-probe-" + "x" * 50, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": "webhook-probe"},
            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}],
        },
    }
    path = cp.path("keda.sh/v1alpha1", "ScaledObject", namespace)
    response = cp.client.post(path, params={"dryRun": "All"}, json=probe)
    return response.status_code == 403 and "admission webhook" in response.text
