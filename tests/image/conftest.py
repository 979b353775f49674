"""The image, built once per session by ``hack/build-image.sh``; its build time, size and
start-up printed at the end.

In CI (``CI`` set) an image that cannot be built is a failure, never a skip: the script
installs buildah, podman and mmdebstrap from Debian's packages itself.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.image import NEEDS, Image, build, can_build, run, run_options
from tests.support.servers import require_in_ci

require_in_ci(can_build(), NEEDS)
REPORT: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the container image with Buildah and runs it with Podman"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_line("image: " + ", ".join(f"{k} {v}" for k, v in REPORT.items()))


@pytest.fixture(scope="session")
def image() -> Image:
    if not can_build():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    try:
        built = build()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"the image did not build: {exc}")
    REPORT["reference"] = built.reference
    REPORT["built in"] = f"{built.build_seconds:.1f}s"
    REPORT["size"] = f"{built.size / 1e6:.0f} MB"
    return built


@pytest.fixture(scope="session")
def startup(image: Image) -> float:
    """Seconds from ``podman run`` to the exit of ``metrics-adapter version``: a container,
    an interpreter and the CLI's imports, on this machine under its present load. Waits on
    the adapter in a container are derived from it."""
    began = time.monotonic()
    done = run(image.reference, "version")
    seconds = time.monotonic() - began
    assert done.returncode == 0, f"`metrics-adapter version` failed: {done.stderr}"
    REPORT["container start-up"] = f"{seconds:.2f}s"
    REPORT["run options"] = " ".join(run_options())
    return seconds
