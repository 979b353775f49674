"""The Dockerfile's invariants, read from the file: no container engine runs here.

Pinned bases, a builder stage that never reaches the runtime, a numeric non-root user, the
console script as entrypoint, and a healthcheck that needs nothing but Python.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PINNED = re.compile(r"^[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*@sha256:[0-9a-f]{64}$")
"""name:exact-version-tag@sha256:digest"""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON-array form, which runs without a shell (signals reach the process)."""
        parsed = json.loads(self.arguments)
        assert isinstance(parsed, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return [str(item) for item in parsed]


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    return found


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each stage, the global ARGs before the first FROM dropped."""
    result: list[list[Instruction]] = []
    for instruction in parsed:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


PARSED = instructions(DOCKERFILE.read_text())
BUILDER, RUNTIME = stages(PARSED)[0], stages(PARSED)[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    [found] = [i for i in stage if i.keyword == keyword]
    return found


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for instruction in PARSED:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    return args


def base_image(stage: list[Instruction]) -> str:
    image = only(stage, "FROM").arguments.split()[0]
    match = re.fullmatch(r"\$\{(\w+)\}", image)
    return global_args()[match[1]] if match else image


def test_multi_stage_with_every_base_pinned_by_tag_and_digest() -> None:
    assert len(stages(PARSED)) >= 2
    for stage in stages(PARSED):
        image = base_image(stage)
        assert PINNED.match(image), f"FROM {image} is not pinned by exact tag and digest"
    assert "AS builder" in only(BUILDER, "FROM").arguments


def test_the_builder_installs_from_the_lock_and_the_runtime_copies_only_the_venv() -> None:
    build = " ".join(i.arguments for i in BUILDER if i.keyword == "RUN")
    assert "PIP_CONSTRAINT=constraints.txt pip wheel" in build  # pins the build env too
    copies = [i.arguments for i in RUNTIME if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/metrics-adapter /opt/metrics-adapter"]
    assert not [i for i in RUNTIME if i.keyword == "RUN"], "the runtime stage runs nothing"


def test_runs_as_a_numeric_non_root_user() -> None:
    user = [i.arguments for i in RUNTIME if i.keyword == "USER"]
    assert user, "no USER: the image would run as root"
    uid, _, gid = user[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user[-1]}: runAsNonRoot needs a numeric uid"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    deployment = yaml.safe_load((REPO / "deploy" / "deployment.yaml").read_text())
    values = REPO / "deploy" / "helm" / "metrics-adapter" / "values.yaml"
    chart = yaml.safe_load(values.read_text())
    # The manifests name the same user, so runAsNonRoot and file ownership agree with the image.
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert chart["securityContext"]["runAsUser"] == int(uid)
    assert chart["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_the_console_script_serving_in_cluster() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert only(RUNTIME, "ENTRYPOINT").exec_form() == ["metrics-adapter"]
    assert "metrics-adapter" in scripts
    assert only(RUNTIME, "CMD").exec_form() == ["serve", "--in-cluster"]


def test_exposes_the_secure_and_metrics_ports() -> None:
    assert only(RUNTIME, "EXPOSE").arguments.split() == ["6443", "8080"]


def test_the_healthcheck_needs_only_python_and_asks_livez() -> None:
    options, _, command = only(RUNTIME, "HEALTHCHECK").arguments.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = Instruction("CMD", command).exec_form()
    assert argv[:2] == ["python", "-c"]
    assert "https://127.0.0.1:6443/livez" in argv[2]
    assert "_create_unverified_context" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")
    assert "curl" not in command and "wget" not in command


def test_the_build_command_is_documented_at_the_top() -> None:
    header = DOCKERFILE.read_text().split("\nARG ", 1)[0]
    assert re.search(r"^#\s+docker build .* \.$", header, re.MULTILINE), header


def test_dockerignore_sends_only_the_sources() -> None:
    """Nothing local (.venv, .git, certs/, tests) reaches the build context."""
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "exclude everything, then allow what the image installs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "constraints.txt",
        "metrics_adapter",
        "scalers",
    }
