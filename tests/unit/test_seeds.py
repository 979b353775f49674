"""Every ScaledObject in the user documents (``shared/seeds``) parses.

The seeds are prose with YAML embedded in it. Most blocks keep their indentation; one had it
flattened by the page capture, so it is re-indented from the ScaledObject schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import SPEC_FIELDS, ObjectRef, parse_scaled_object

SHARED = Path(__file__).resolve().parents[3] / "shared"
SEEDS = SHARED / "seeds"

_KEY_LINE = re.compile(r"^(- )?[A-Za-z][\w.-]*:(\s|$)")
_START = "apiVersion: keda.sh/v1alpha1"

# For a flattened block: which keys each nested mapping may hold (None: any key).
_SCHEMA: dict[str, frozenset[str] | None] = {
    "top": frozenset({"apiVersion", "kind", "metadata", "spec"}),
    "metadata": frozenset({"name", "namespace", "labels", "annotations"}),
    "spec": SPEC_FIELDS,
    "scaleTargetRef": frozenset({"name", "kind", "apiVersion", "envSourceContainerName"}),
    "trigger": frozenset(
        {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
    ),
    "authenticationRef": frozenset({"name", "kind"}),
    "trigger.metadata": None,
}
_CHILD = {
    ("top", "metadata"): "metadata",
    ("top", "spec"): "spec",
    ("spec", "scaleTargetRef"): "scaleTargetRef",
    ("spec", "triggers"): "triggers",
    ("trigger", "metadata"): "trigger.metadata",
    ("trigger", "authenticationRef"): "authenticationRef",
}


def _blocks(text: str) -> list[list[str]]:
    """YAML blocks that start with ``apiVersion: keda.sh/v1alpha1``, up to where prose resumes."""
    lines = text.splitlines()
    blocks: list[list[str]] = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() != _START:
            i += 1
            continue
        block = [lines[i]]
        i += 1
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                following = next((x for x in lines[i + 1 :] if x.strip()), "")
                if not following[:1].isspace():
                    break
            elif not (line[:1].isspace() or _KEY_LINE.match(line)):
                break
            block.append(line)
            i += 1
        blocks.append(block)
    return blocks


def _reindent(block: list[str]) -> str:
    """Indent a flattened ScaledObject block again, using which keys belong where."""
    stack: list[tuple[str, int]] = [("top", 0)]  # (mapping kind, indent of its keys)
    out: list[str] = []
    for raw in block:
        line = raw.strip()
        item = line.startswith("- ")
        key = line[2:].split(":", 1)[0] if item else line.split(":", 1)[0]
        if item:
            while stack[-1][0] != "triggers":
                stack.pop()
            indent = stack[-1][1]
            stack.append(("trigger", indent + 2))
        else:
            while (allowed := _SCHEMA[stack[-1][0]]) is not None and key not in allowed:
                stack.pop()
            indent = stack[-1][1]
        out.append(" " * indent + line)
        child = _CHILD.get((stack[-1][0], key))
        if child is not None and line.endswith(":"):
            stack.append((child, indent + 2))
    return "\n".join(out)


def seed_documents(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every ``kind`` document of the seeds, as (origin, document)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(SEEDS.glob("*.txt")):
        for n, block in enumerate(_blocks(path.read_text(encoding="utf-8"))):
            flattened = not any(line[:1].isspace() for line in block)
            doc = yaml.safe_load(_reindent(block) if flattened else "\n".join(block))
            if isinstance(doc, dict) and doc.get("kind") == kind:
                found.append((f"{path.name}#{n}", doc))
    return found


SEED_OBJECTS = seed_documents("ScaledObject")


def test_the_shared_directory_is_found() -> None:
    assert (SHARED / "DESIGN.md").is_file()
    assert (SHARED / "reference" / "keda-semantics.md").is_file()
    assert len(SEED_OBJECTS) >= 8


@pytest.mark.parametrize(("origin", "doc"), SEED_OBJECTS, ids=[o for o, _ in SEED_OBJECTS])
def test_seed_scaled_object_parses(origin: str, doc: dict[str, Any]) -> None:
    so = parse_scaled_object(doc)
    assert so.ref.name == doc["metadata"]["name"]
    assert so.scale_target_ref.name == doc["spec"]["scaleTargetRef"]["name"]
    assert len(so.triggers) == len(doc["spec"]["triggers"])


def test_the_flattened_echo_worker_is_rebuilt_and_binds() -> None:
    docs = [d for _, d in SEED_OBJECTS if d["metadata"]["name"] == "echo-worker"]
    assert len(docs) == 1
    so = parse_scaled_object(docs[0])
    assert so.ref == ObjectRef("event-demo", "echo-worker")
    assert (so.min_replica_count, so.max_replica_count) == (0, 5)
    assert (so.polling_interval, so.cooldown_period) == (5, 60)
    assert dict(so.triggers[0].metadata) == {
        "natsServerMonitoringEndpoint": "nats-headless.messaging:8222",
        "account": "$G",
        "stream": "JOBS",
        "consumer": "echo-workers",
        "lagThreshold": "10",
        "activationLagThreshold": "0",
    }
    [bound] = bind(so, Inventory())
    assert bound.metric_name == "s0-nats-jetstream-JOBS"
    assert bound.scaler.target == 10.0


def test_the_seed_cron_schedule_binds_with_keda_metric_names() -> None:
    [doc] = [d for _, d in SEED_OBJECTS if d["metadata"]["name"] == "scheduled-scaler"]
    bound = bind(parse_scaled_object(doc), Inventory())
    assert [b.metric_name for b in bound] == [
        "s0-cron-America-New_York-09xx1-5-018xx1-5",
        "s1-cron-America-New_York-018xx1-5-09xx1-5",
        "s2-cron-America-New_York-00xx0Cm6-023xx0Cm6",
    ]


def test_unknown_seed_fields_become_warnings() -> None:
    [doc] = [d for _, d in SEED_OBJECTS if d["metadata"]["name"] == "job-processor"]
    so = parse_scaled_object(doc)
    assert so.warnings == ("fallbacks: unknown field, ignored",)
    assert so.advanced.hpa_behavior is not None


def test_seed_names_cover_every_document() -> None:
    names = {d["metadata"]["name"] for _, d in SEED_OBJECTS}
    assert {
        "echo-worker",
        "job-processor",
        "sqs-scaler",
        "kafka-consumer",
        "scheduled-scaler",
        "eventless-scaler",
        "dual-scaler",
        "prometheus-scaler",
        "reliable-scaler",
        "text-processor",
    } <= names
