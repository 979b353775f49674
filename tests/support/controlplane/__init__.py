"""A real Kubernetes control plane on loopback, for the e2e tests and ``make cluster-up``.

etcd, kube-apiserver and kube-controller-manager (built by ``hack/build-control-plane.sh``)
run on free 127.0.0.1 ports with generated certificates, and the adapter is registered as
``v1beta1.external.metrics.k8s.io`` (and by ``make cluster-up`` as the admission webhook);
nothing dials beyond loopback.

- :mod:`.binaries`: where the Kubernetes binaries are cached, building them when missing;
- :mod:`.pki`: the cluster's certificates and kubeconfigs (on :mod:`tests.support.pki`);
- :mod:`.processes`: one component as a process with a pid file, logs, bounded waits;
- :mod:`.api`: discovery, server-side apply, get, delete and condition waits;
- :mod:`.cluster`: :class:`ControlPlane`, which starts and stops the three components;
- :mod:`.node`: with ``ControlPlane(with_node=True)``, kube-scheduler and a kubelet on
  containerd, pods in a network namespace of the cluster's own (docs/development.md);
- :mod:`.adapter`: the adapter (cluster mode for ``make cluster-up``) and its registrations;
- :mod:`.__main__`: the command line behind ``make cluster-up`` / ``make cluster-down``::

    python -m tests.support.controlplane up [--state DIR]    # ends with KUBECONFIG=, ADAPTER_URL=
    python -m tests.support.controlplane up --node [--state DIR]    # make cluster-up NODE=1
    python -m tests.support.controlplane down [--state DIR]
"""

from tests.support.controlplane.adapter import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    ADAPTER_USER,
    APISERVICE,
    DEPLOY,
    WEBHOOK_CONFIGURATION,
    Adapter,
    adapter_kubeconfig,
    install_manifests,
    register_adapter,
    register_apiservice,
    register_webhook,
    route_apiservice,
    webhook_answers,
    webhook_configuration,
)
from tests.support.controlplane.api import (
    condition,
    deployment,
    load_manifests,
    scalable_kind,
    scalable_object,
)
from tests.support.controlplane.binaries import BIN_DIR, REPO, missing_binaries
from tests.support.controlplane.cluster import AdminClients, ControlPlane, create_in_parallel
from tests.support.controlplane.errors import ControlPlaneError, KubeError
from tests.support.controlplane.pki import serving_pair
from tests.support.controlplane.processes import wait_for
from tests.support.pki import client_context

__all__ = [
    "ADAPTER_NAMESPACE",
    "ADAPTER_SERVICE",
    "ADAPTER_USER",
    "APISERVICE",
    "BIN_DIR",
    "DEPLOY",
    "REPO",
    "WEBHOOK_CONFIGURATION",
    "Adapter",
    "AdminClients",
    "ControlPlane",
    "ControlPlaneError",
    "KubeError",
    "adapter_kubeconfig",
    "client_context",
    "condition",
    "create_in_parallel",
    "deployment",
    "install_manifests",
    "load_manifests",
    "missing_binaries",
    "register_adapter",
    "register_apiservice",
    "register_webhook",
    "route_apiservice",
    "scalable_kind",
    "scalable_object",
    "serving_pair",
    "wait_for",
    "webhook_answers",
    "webhook_configuration",
]
