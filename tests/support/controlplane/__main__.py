"""``make cluster-up`` / ``make cluster-down``: a detached control plane with the adapter in
cluster mode, as users run it outside a cluster: ``serve --kubeconfig`` (its ServiceAccount's
permissions), watching ScaledObjects and owning their HPAs, registered as the external metrics
API and as the validating webhook of deploy/webhook.yaml.

python -m tests.support.controlplane up [--state DIR]    # ends with KUBECONFIG=, ADAPTER_URL=
python -m tests.support.controlplane down [--state DIR]

After ``up``, ``kubectl --kubeconfig <KUBECONFIG> apply -f <a ScaledObject>`` (and its
Deployment) is all it takes: the adapter creates ``keda-hpa-<name>`` and sets ``Ready``; an
object that would fail is refused by the webhook, as in a real cluster.
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
from tests.support.controlplane.pki import serving_pair
from tests.support.controlplane.processes import (
    log_dir,
    logs,
    pid_path,
    running_pid,
    stop_pid_file,
)

DEFAULT_STATE = CACHE / "cluster"
# Stopped in this order: the reverse of the start order.
ORDER = (ADAPTER_SERVICE, *reversed(BINARIES))
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
)


def _running(state: Path) -> bool:
    return all(running_pid(pid_path(state, name)) is not None for name in ORDER)


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


def up(state: Path) -> int:
    if _running(state) and (state / "adapter.url").exists():
        print(f"already up; state in {state}", file=sys.stderr)
    else:
        down(state, quiet=True)
        try:
            url = _start_detached(state)
        except BaseException as exc:
            print(f"cluster-up failed: {exc}\n{logs(state)}", file=sys.stderr)
            down(state, quiet=True)
            if not isinstance(exc, Exception):
                raise
            return 1
        (state / "adapter.url").write_text(url + "\n")
    print(f"KUBECONFIG={state / 'admin.kubeconfig'}")
    print(f"ADAPTER_URL={(state / 'adapter.url').read_text().strip()}")
    return 0


def down(state: Path, *, quiet: bool = False) -> int:
    stopped = [name for name in ORDER if stop_pid_file(pid_path(state, name))]
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
        "--state", type=Path, default=DEFAULT_STATE, help=f"default {DEFAULT_STATE}"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    state = args.state.expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    return up(state) if args.command == "up" else down(state)


if __name__ == "__main__":
    sys.exit(main())
