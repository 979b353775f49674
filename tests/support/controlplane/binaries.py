"""Where the Kubernetes binaries are cached, and building them when one is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.controlplane.errors import ControlPlaneError

REPO = Path(__file__).resolve().parents[3]
K8S_VERSION = "1.34.4"
CACHE = Path(os.environ.get("METRICS_ADAPTER_CACHE") or Path.home() / ".cache" / "metrics-adapter")
BIN_DIR = CACHE / f"k8s-v{K8S_VERSION}" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
BUILD_SCRIPT = REPO / "hack" / "build-control-plane.sh"


def missing_binaries(bin_dir: Path = BIN_DIR) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def ensure_binaries(timeout: float = 3600) -> Path:
    """The cached binaries, built first when one is missing (minutes cold, progress on stderr)."""
    if missing_binaries():
        subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if missing := missing_binaries():
        raise ControlPlaneError(f"{BUILD_SCRIPT} did not produce {missing} in {BIN_DIR}")
    return BIN_DIR
