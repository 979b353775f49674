"""A control plane with the adapter in cluster mode: what every e2e module and benchmark of
cluster mode starts the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

from tests.support.controlplane.adapter import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    Adapter,
    adapter_kubeconfig,
    install_manifests,
    register_adapter,
)
from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.pki import serving_pair


@contextmanager
def cluster_mode(
    namespace: str,
    *,
    args: Sequence[str] = (),
    register: bool = True,
    prepare: Callable[[ControlPlane], None] = lambda cp: None,
    report: Callable[[str], None] = print,
    final_tail: int = 200,
    hpa_sync_period: float = 1.0,
    port: int = 0,
) -> Iterator[tuple[ControlPlane, Adapter]]:
    """etcd, kube-apiserver and kube-controller-manager on loopback, deploy/'s CRDs and RBAC,
    ``namespace``, then ``prepare(cp)``, then the adapter in cluster mode as its
    ServiceAccount (so it has exactly deploy/rbac.yaml's rights) with ``args``, registered
    as the external metrics API unless ``register`` is false. On an error the logs of all of
    them go to ``report``; at the end the adapter's last ``final_tail`` lines (pytest shows
    them when the last test of a module fails). ``hpa_sync_period``: the HPA controller's,
    in seconds. ``port``: the adapter's, when it must be known before it starts."""
    with ExitStack() as stack:
        cp = ControlPlane(hpa_sync_period=hpa_sync_period)
        stack.callback(cp.cleanup)
        adapter: Adapter | None = None
        try:
            cp.start()
            install_manifests(cp)  # the CRDs it watches and the Lease's namespace, first
            cp.ensure_namespace(namespace)
            prepare(cp)
            adapter = Adapter(
                objects=cp.state / "objects",
                state=cp.state,
                pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),
                ca_pem=cp.ca.pem,
                kubeconfig=adapter_kubeconfig(cp),
                args=list(args),
            )
            if port:
                adapter.port = port
            stack.callback(adapter.stop)
            if final_tail:
                stack.callback(lambda: report(adapter.tail(final_tail)) if adapter else None)
            adapter.start()
            if register:
                register_adapter(cp, adapter)
            yield cp, adapter
        except BaseException:
            report(f"{cp.logs()}\n--- adapter\n{adapter.tail(60) if adapter else ''}")
            raise
