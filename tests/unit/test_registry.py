"""The trigger registry: every kind in scalers/ is listed, each loads under its own name,
and a kind's client library is imported only when its type is first asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from scalers.registry import KINDS, MODULES

SCALERS = Path(__file__).resolve().parents[2] / "scalers"
NOT_TRIGGERS = {"registry", "resource"}
"""Modules with a ``KINDS`` that are not polled kinds (the HPA reads resource triggers)."""
BACKENDS = ("aiokafka", "botocore", "redis", "grpc", "nats", "asyncpg", "aiomysql", "aiormq")


def defines_kinds(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    return bool(names & {"KIND", "KINDS"})


def test_every_module_with_kinds_is_listed() -> None:
    modules = {p.stem for p in SCALERS.glob("*.py") if defines_kinds(p)} - NOT_TRIGGERS
    assert modules == set(MODULES.values())


def test_each_type_loads_its_own_kind() -> None:
    assert sorted(KINDS) == sorted(MODULES)
    for type_name in MODULES:
        assert KINDS[type_name].type_name == type_name
    assert KINDS.get("no-such-trigger") is None
    assert "no-such-trigger" not in KINDS


def test_serving_imports_only_the_backends_in_use() -> None:
    probe = f"""
import sys
import metrics_adapter.server
from scalers.registry import KINDS
loaded = lambda: sorted(m for m in {BACKENDS!r} if m in sys.modules)
assert loaded() == [], ("at start", loaded())
KINDS["metrics-api"]
assert loaded() == [], ("after metrics-api", loaded())
KINDS["kafka"]
assert loaded() == ["aiokafka"], ("after kafka", loaded())
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
