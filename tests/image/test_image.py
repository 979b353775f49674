"""The built image, run by Podman as Kubernetes runs it: the user, a read-only root with /tmp
writable, the version, standalone serving with its HEALTHCHECK, what it must not hold, its
size."""

from __future__ import annotations

import itertools
import json
import os
import time
import tomllib
from collections.abc import Iterator

import pytest
import yaml

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import parse_scaled_object
from tests.support import triggers
from tests.support.controlplane import wait_for
from tests.support.image import READ_ONLY, REPO, Image, podman, run, run_options

pytestmark = pytest.mark.image

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
UID = 65532
"""The Dockerfile's USER, which deploy/ and the chart's runAsUser name too."""
MAX_SIZE = 400_000_000
"""343 MB measured (a 152 MB Debian base, 190 MB of virtualenv); the bound leaves room for
dependency updates and flags a base or a build stage leaking into the runtime."""
STARTUP_MARGIN = 3
"""A serving adapter does more than `version` (certificates, sockets, the first poll): three
times the measured start-up, at least."""
DESIRED = 7
_NAMES = itertools.count()

# Run inside the image: who it runs as, and where it can write.
WRITE_PROBE = """
import errno, json, os
writes = {}
for path in ("/tmp/certs/probe", "/probe", "/opt/metrics-adapter/probe", "/etc/probe",
             "/var/tmp/probe", "/run/probe"):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
        writes[path] = "written"
    except OSError as exc:
        writes[path] = errno.errorcode[exc.errno]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "writes": writes}))
"""

# Run inside the image as root, so nothing is hidden by permissions: what it holds.
INVENTORY = """
import glob, json, os, shutil
found = {"compiler": [], "pip cache": [], "apt lists": [], "wheels": []}
for name in ("gcc", "cc", "c++", "g++", "clang", "tcc", "x86_64-linux-gnu-gcc-12"):
    if shutil.which(name):
        found["compiler"].append(shutil.which(name))
found["compiler"] += glob.glob("/usr/lib/gcc/*/*/cc1")
for top in ("/root", "/home", "/tmp", "/opt", "/var", "/wheels", "/src"):
    for root, dirs, files in os.walk(top):
        if root.endswith("/.cache/pip") or "/.cache/pip/" in root:
            found["pip cache"].append(root)
        if root.startswith("/var/lib/apt/lists"):
            found["apt lists"] += [os.path.join(root, f) for f in files if f != "lock"]
        if root.startswith("/var/cache/apt"):
            found["apt lists"] += [os.path.join(root, f) for f in files if f.endswith(".deb")]
        found["wheels"] += [os.path.join(root, f) for f in files if f.endswith(".whl")]
if os.path.exists("/wheels"):
    found["wheels"].append("/wheels")
print(json.dumps(found))
"""


def test_runs_as_65532_writing_only_under_tmp(image: Image) -> None:
    done = run(image.reference, "-c", WRITE_PROBE, options=(*READ_ONLY, "--entrypoint", "python"))
    assert done.returncode == 0, f"the probe did not run in the image: {done.stderr}"
    seen = json.loads(done.stdout)
    assert (seen["uid"], seen["gid"]) == (UID, UID), f"the image runs as {seen}, not {UID}"
    writes = seen["writes"]
    assert writes.pop("/tmp/certs/probe") == "written", (
        f"the adapter cannot write its certificates under /tmp/certs: {seen}"
    )
    refused = {path: outcome for path, outcome in writes.items() if outcome != "EROFS"}
    assert not refused, f"with --read-only, only /tmp may be written; elsewhere: {refused}"


def test_version_is_pyprojects(image: Image) -> None:
    done = run(image.reference, "version", options=READ_ONLY)
    assert done.returncode == 0, f"`metrics-adapter version` failed: {done.stderr}"
    assert done.stdout == f"metrics-adapter {VERSION}\n", (
        f"the image says {done.stdout!r}; pyproject.toml says {VERSION}"
    )
    labels = image.inspect()["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION, labels


def _serving_deadline(image: Image, startup: float) -> float:
    """The image promises health within its HEALTHCHECK's start period; a machine slower
    than that promise assumes gets its measured start-up times the margin."""
    healthcheck = image.inspect().get("Healthcheck")
    assert healthcheck, "the image has no HEALTHCHECK (OCI's format drops it: --format docker)"
    return max(float(healthcheck["StartPeriod"]) / 1e9, STARTUP_MARGIN * startup)


@pytest.fixture(scope="module")
def serving(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The adapter serving standalone in the image, read-only, one ScaledObject (an always
    active cron trigger, no backend needed) mounted read-only; yields the container's name."""
    objects = tmp_path_factory.mktemp("objects")
    doc = triggers.scaled_object(
        "worker", "default", triggers.always_cron(DESIRED), minReplicaCount=0
    )
    (objects / "worker.yaml").write_text(yaml.safe_dump(doc))
    # The container's user is not the test's: it only needs to read them.
    objects.chmod(0o755)
    (objects / "worker.yaml").chmod(0o644)
    name = f"metrics-adapter-test-{os.getpid()}-{next(_NAMES)}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        *run_options(),
        *READ_ONLY,
        "--volume",
        f"{objects}:/objects:ro",
        image.reference,
        *("serve", "--scaledobjects", "/objects", "--cert-dir", "/tmp/certs"),
    )
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def _running(name: str) -> None:
    state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
    if state != "running":
        logs = podman("logs", name, check=False)
        raise AssertionError(f"the adapter's container is {state}:\n{logs.stdout}{logs.stderr}")


def test_serves_standalone_and_its_healthcheck_passes(
    image: Image, startup: float, serving: str
) -> None:
    deadline = _serving_deadline(image, startup)
    began = time.monotonic()

    def healthy() -> bool:
        _running(serving)
        return podman("healthcheck", "run", serving, check=False).returncode == 0

    try:
        wait_for("the image's HEALTHCHECK to pass", healthy, deadline, interval=0.25)
    except TimeoutError as exc:
        logs = podman("logs", serving, check=False)
        raise AssertionError(f"{exc}; the adapter's log:\n{logs.stdout}{logs.stderr}") from exc
    status = podman("inspect", "--format", "{{.State.Health.Status}}", serving).stdout.strip()
    assert status == "healthy", f"podman records the container as {status!r}"
    print(f"healthy {time.monotonic() - began:.2f}s into the wait (deadline {deadline:.0f}s)")


def test_serves_the_mounted_scaledobject_over_tls_from_tmp_certs(
    image: Image, startup: float, serving: str
) -> None:
    """The HPA's read, from inside the container, trusting the certificate the adapter wrote
    under --cert-dir: the objects were read and the certificate is where it was told."""
    doc = triggers.scaled_object("worker", "default", triggers.always_cron(DESIRED))
    metric = bind(parse_scaled_object(doc), Inventory())[0].metric_name
    url = (
        f"https://127.0.0.1:6443/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"
        f"{metric}?labelSelector=scaledobject.keda.sh%2Fname%3Dworker"
    )
    read = (
        "import ssl, urllib.request\n"
        "ctx = ssl.create_default_context(cafile='/tmp/certs/apiserver.crt')\n"
        f"print(urllib.request.urlopen({url!r}, context=ctx, timeout=4).read().decode())"
    )

    def value() -> str | None:
        _running(serving)
        done = podman("exec", serving, "python", "-c", read, check=False)
        if done.returncode != 0:
            return None
        items = json.loads(done.stdout)["items"]
        return str(items[0]["value"]) if items else None

    served = wait_for(f"{metric} to be served", value, _serving_deadline(image, startup), 0.25)
    assert served == str(DESIRED), f"{metric} is {served}, the cron trigger asks {DESIRED}"


@pytest.fixture(scope="module")
def inventory(image: Image) -> dict[str, list[str]]:
    done = run(image.reference, "-c", INVENTORY, options=("--user", "0", "--entrypoint", "python"))
    assert done.returncode == 0, f"the inventory did not run in the image: {done.stderr}"
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("kind", ["compiler", "pip cache", "apt lists", "wheels"])
def test_holds_no(inventory: dict[str, list[str]], kind: str) -> None:
    assert not inventory[kind], f"the image holds a {kind}: {inventory[kind]}"


def test_size_is_bounded(image: Image) -> None:
    size = image.size
    print(f"{image.reference}: {size / 1e6:.0f} MB")
    assert size < MAX_SIZE, f"the image is {size / 1e6:.0f} MB, over {MAX_SIZE / 1e6:.0f} MB"


def test_the_build_script_reports_the_size(image: Image) -> None:
    last = image.build_log.strip().splitlines()[-1]
    megabytes = (image.size + 500_000) // 1_000_000  # rounded as the script rounds
    assert last.endswith(f"{image.reference}, {megabytes} MB"), last
