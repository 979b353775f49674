"""The container image, built by ``hack/build-image.sh`` (Buildah, no engine) and run by
rootful Podman, for tests/image/.

Containers run with ``--network none``: a network namespace of their own holding only its
loopback, so the image's HEALTHCHECK finds the adapter on 127.0.0.1:6443 inside without
taking a port of the host.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-image.sh"
TOOLS = ("buildah", "podman", "mmdebstrap", "runc")
NEEDS = (
    "buildah, podman, mmdebstrap and runc (Debian: apt-get install buildah podman mmdebstrap"
    " runc; hack/build-image.sh installs them where it can use apt-get) and PyPI for pip"
)
BUILD_TIMEOUT = 20 * 60.0
"""A guard, not a wait: cold, the build took 80 s here (mmdebstrap 30 s, pip 45 s); a slow
mirror or PyPI may take several times that."""
PODMAN_TIMEOUT = 120.0
"""A guard against a hung podman command, not a wait on the adapter's behaviour."""
PODMAN_NPROC = 32768
"""containers.conf's default ``nproc``: podman lowers its own limit to it."""


def can_build() -> bool:
    """The tools are there, or the script can install them from Debian's packages."""
    if all(shutil.which(tool) for tool in TOOLS):
        return True
    return shutil.which("apt-get") is not None and (
        os.geteuid() == 0 or shutil.which("sudo") is not None
    )


@dataclass(frozen=True)
class Image:
    reference: str
    build_seconds: float
    build_log: str

    def inspect(self) -> dict[str, Any]:
        [found] = json.loads(podman("image", "inspect", self.reference).stdout)
        assert isinstance(found, dict)
        return found

    @property
    def size(self) -> int:
        return int(self.inspect()["Size"])


def build() -> Image:
    """Run the build script; raise with the end of its output when it fails."""
    began = time.monotonic()
    done = subprocess.run(
        [str(BUILD_SCRIPT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed:\n{done.stderr[-4000:]}")
    return Image(done.stdout.strip(), time.monotonic() - began, done.stderr)


def _hard_limit(kind: int, cap: int) -> int:
    hard = resource.getrlimit(kind)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def run_options() -> list[str]:
    """What every ``podman run`` here adds.

    runc, not Debian's default crun 1.8, which refuses hosts with cgroup v1 controllers and a
    cgroup v2 hierarchy mounted together ("cgroups in hybrid mode not supported"); runc runs
    on v1, hybrid and v2. Podman's default ulimits (nofile 1048576, nproc 32768) are more
    than a process without CAP_SYS_RESOURCE, as in sandboxed VMs, may raise to, and the
    runtime then fails with "setrlimit RLIMIT_NOFILE: Operation not permitted": the
    container gets the test's own hard limits instead.
    """
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 1 << 20)
    nproc = _hard_limit(resource.RLIMIT_NPROC, PODMAN_NPROC)
    return [
        "--runtime",
        "runc",
        "--network",
        "none",
        "--ulimit",
        f"nofile={nofile}:{nofile}",
        "--ulimit",
        f"nproc={nproc}:{nproc}",
    ]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``; with ``check``, raise with its output when it fails."""
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=PODMAN_TIMEOUT, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def run(image: str, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """A one-shot container: ``podman run --rm OPTIONS IMAGE ARGS``, not checked."""
    return podman("run", "--rm", *run_options(), *options, image, *args, check=False)


READ_ONLY = ("--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp")
"""As Kubernetes runs it (readOnlyRootFilesystem, an emptyDir on /tmp): podman would add
tmpfs on /run and /var/tmp too unless told not to."""
