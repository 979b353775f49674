"""``metrics-adapter explain PATH`` lists, per object, what it sets and nothing reads: the
same list as the IgnoredFields Event, in the table and in ``-o json``, for an object that
does not bind as well (a typo may be why)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrics_adapter.cli import NOT_READY, main

OBJECTS = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  pollingIntervall: 5
  triggers:
  - type: cron
    metadata: {timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "2",
               desiredReplica: "3"}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: broken, namespace: shop}
spec:
  scaleTargetRef: {name: broken}
  triggers:
  - type: cron
    metadata: {timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplica: "3"}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: crunch, namespace: shop}
spec:
  jobTargetRef: {template: {spec: {containers: [{name: t, image: t}]}}}
  triggers:
  - type: cron
    metadata: {timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "1",
               strat: "x"}
"""

TYPO = "triggers[0].metadata.desiredReplica: not a parameter of cron; ignored (a typo of "
TYPO += "desiredReplicas?)"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    return tmp_path


def test_the_table_lists_each_objects_warnings(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(directory)]) == NOT_READY
    out = capsys.readouterr().out
    web = out[out.index("shop/web ->") :].split("\n\n")[0]
    assert "  warning: pollingIntervall: unknown field, ignored" in web
    assert f"  warning: {TYPO}" in web
    broken = out[out.index("shop/broken: not ready") :].split("\n\n")[0]
    assert broken.splitlines()[1:] == [f"  warning: {TYPO}"]
    crunch = out[out.index("ScaledJob shop/crunch") :].split("\n\n")[0]
    assert (
        "  warning: triggers[0].metadata.strat: not a parameter of cron; ignored (a typo of start?)"
    ) in crunch


def test_json_carries_them_too(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(directory), "-o", "json"]) == NOT_READY
    reports = {
        r.get("scaled_object") or r.get("scaled_job"): r
        for r in json.loads(capsys.readouterr().out)
    }
    assert reports["shop/web"]["warnings"] == ["pollingIntervall: unknown field, ignored", TYPO]
    assert reports["shop/broken"]["warnings"] == [TYPO]
