"""``make cluster-up`` / ``make cluster-down``: a detached control plane with the adapter in
cluster mode, as users run it outside a cluster: ``serve --kubeconfig`` (its ServiceAccount's
permissions), watching ScaledObjects and owning their HPAs, registered as the external metrics
API and as the validating webhook of deploy/webhook.yaml.

python -m tests.support.controlplane up [--state DIR]    # ends with KUBECONFIG=, ADAPTER_URL=
python -m tests.support.controlplane up --node [--state DIR]    # ends with KUBECONFIG=
python -m tests.support.controlplane down [--state DIR]

After ``up``, ``kubectl --kubeconfig <KUBECONFIG> apply -f <a ScaledObject>`` (and its
Deployment) is all it takes: the adapter creates ``keda-hpa-<name>`` and sets ``Ready``; an
object that would fail is refused by the webhook, as in a real cluster.

With ``--node`` (``make cluster-up NODE=1``) the cluster has a node (kube-scheduler, a
kubelet on containerd: :mod:`.node`) and the adapter is installed as users install it: the
image built by hack/build-image.sh, imported into containerd, and ``helm install`` of
deploy/helm/metrics-adapter, two replicas in pods.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.controlplane.adapter import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    Adapter,
    adapter_kubeconfig,
    install_manifests,
    register_webhook,
    route_apiservice,
)
from tests.support.controlplane.binaries import BINARIES, CACHE
from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.node import NODE_PROCESSES, teardown
from tests.support.controlplane.pki import serving_pair
from tests.support.controlplane.processes import (
    log_dir,
    logs,
    pid_path,
    running_pid,
    stop_pid_file,
)

DEFAULT_STATE = CACHE / "cluster"
# What `up` writes into the state directory; `down` removes exactly these (etcd holds the
# cluster's objects) and keeps logs/ for a look after the fact.
GENERATED = (
    "pki",
    "pids",
    "etcd",
    "kube-apiserver",
    "admin.kubeconfig",
    "metrics-adapter.kubeconfig",
    "kube-controller-manager.kubeconfig",
    "adapter.url",
    "node",
)


def _running(state: Path, names: Iterable[str]) -> bool:
    return all(running_pid(pid_path(state, name)) is not None for name in names)


def _start_node(state: Path) -> None:
    """The control plane with a node, and the chart installed there with the built image."""
    # Imported here: tests.support.helm and .image are only needed with a node.
    from tests.support import helm, image

    cp = ControlPlane(state, detach=True, with_node=True)
    cp.start(timeout=300)
    try:
        reference = image.build().reference
        print(f"importing {reference} and installing the chart", file=sys.stderr)
        cp.timings.update(helm.install_on_node(cp, reference, timeout=180))
    finally:
        cp.close()
    phases = ", ".join(f"{k} {v}s" for k, v in cp.timings.items())
    print(
        f"control plane and node up, the chart installed (release metrics-adapter in keda, "
        f"{reference}): {phases}; logs in {log_dir(state)}, pod logs in "
        f"{state / 'node' / 'pod-logs'}",
        file=sys.stderr,
    )


def _start_detached(state: Path) -> str:
    cp = ControlPlane(state, detach=True)
    cp.start()
    began = time.monotonic()
    try:
        install_manifests(cp)  # the adapter watches the CRDs from the start
        pair = serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca)
        adapter = Adapter(
            state / "objects",
            state,
            pair,
            cp.ca.pem,
            detach=True,
            kubeconfig=adapter_kubeconfig(cp),
        ).start()
        route_apiservice(cp, adapter)
        register_webhook(cp, adapter)
    finally:
        cp.close()
    phases = ", ".join(f"{k} {v}s" for k, v in cp.timings.items())
    print(
        f"control plane up in {cp.timings['total']}s ({phases}), adapter (cluster mode, as "
        f"its ServiceAccount: --kubeconfig {adapter_kubeconfig(cp)}) registered (API and "
        f"webhook) in "
        f"{time.monotonic() - began:.2f}s; "
        f"logs in {log_dir(state)}",
        file=sys.stderr,
    )
    return adapter.url


def up(state: Path, *, node: bool = False) -> int:
    marker = state / ("node" if node else "adapter.url")
    if _running(state, NODE_PROCESSES if node else (ADAPTER_SERVICE,)) and marker.exists():
        print(f"already up; state in {state}", file=sys.stderr)
    else:
        down(state, quiet=True)
        try:
            if node:
                _start_node(state)
            else:
                (state / "adapter.url").write_text(_start_detached(state) + "\n")
        except BaseException as exc:
            print(f"cluster-up failed: {exc}\n{logs(state)}", file=sys.stderr)
            down(state, quiet=True)
            if not isinstance(exc, Exception):
                raise
            return 1
    print(f"KUBECONFIG={state / 'admin.kubeconfig'}")
    if not node:
        print(f"ADAPTER_URL={(state / 'adapter.url').read_text().strip()}")
    return 0


def down(state: Path, *, quiet: bool = False) -> int:
    node = (ADAPTER_SERVICE, *NODE_PROCESSES)
    stopped = [name for name in node if stop_pid_file(pid_path(state, name))]
    # The node's pods, mounts, cgroups and network namespace, if it had one; before the
    # apiserver stops: the pods' watches (through the relay's forks) would hold its shutdown.
    teardown(state)
    stopped += [name for name in reversed(BINARIES) if stop_pid_file(pid_path(state, name))]
    for name in GENERATED:
        path = state / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not quiet:
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.controlplane")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--node", action="store_true", help="up: a node, and the chart installed with helm"
    )
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"default {DEFAULT_STATE}"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    state = args.state.expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    return up(state, node=args.node) if args.command == "up" else down(state)


if __name__ == "__main__":
    sys.exit(main())
