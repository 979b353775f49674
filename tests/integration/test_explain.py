"""`metrics-adapter explain PATH` against a real nats-server: values, activity, the HPA's
arithmetic and the activator's decision, for healthy, failing and invalid objects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from metrics_adapter.cli import main
from tests.support import jetstream
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

OBJECTS = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: echo-worker, namespace: event-demo}}
spec:
  scaleTargetRef: {{name: echo-worker}}
  maxReplicaCount: 5
  triggers:
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: workers, lagThreshold: "10"}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: half-broken, namespace: event-demo}}
spec:
  scaleTargetRef: {{name: batch}}
  minReplicaCount: 2
  triggers:
  - type: cron
    metadata: {{timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "3"}}
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: nobody}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: typo, namespace: event-demo}}
spec:
  scaleTargetRef: {{name: t}}
  triggers:
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: workers, lagThreshold: "ten"}}
"""


@pytest.fixture
def objects(tmp_path: Path, nats_server: NatsServer) -> Path:
    asyncio.run(jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=42))
    (tmp_path / "objects.yaml").write_text(OBJECTS.format(endpoint=nats_server.monitoring_endpoint))
    return tmp_path


def test_json_explains_every_object(objects: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(objects), "-o", "json"]) == 0
    reports = {r["scaled_object"]: r for r in json.loads(capsys.readouterr().out)}

    echo = reports["event-demo/echo-worker"]
    (lag,) = echo["triggers"]
    assert (lag["metric"], lag["value"], lag["target"], lag["active"]) == (
        "s0-nats-jetstream-JOBS",
        42,
        10,
        True,
    )
    assert (lag["replicas"], lag["formula"]) == (5, "ceil(42 / 10) = 5")
    assert lag["activation"] == "lag 42 > 0"
    assert echo["decision"] == "would scale from 0 to 1: s0-nats-jetstream-JOBS lag 42 > 0"
    assert (
        echo["hpa"] == "keda-hpa-echo-worker would compute 5: s0-nats-jetstream-JOBS: "
        "ceil(42 / 10) = 5"
    )

    half = reports["event-demo/half-broken"]
    cron, failing = half["triggers"]
    assert (cron["value"], cron["replicas"], cron["active"]) == (3, 3, True)
    assert failing["value"] is None and failing["active"] is None
    assert 'consumer "nobody" not found in stream "JOBS"' in failing["error"]
    assert half["decision"].startswith("active, stays at 2")
    assert half["hpa"] is None  # a failing metric: the HPA would not act on a partial picture

    assert (
        reports["event-demo/typo"]["problem"]
        == 'triggers[0].metadata.lagThreshold: "ten" is not a number'
    )


def test_text_is_a_table_with_the_arithmetic(
    objects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(objects)]) == 0
    out = capsys.readouterr().out
    assert "event-demo/echo-worker -> Deployment/echo-worker (min 0, max 5, now 0)" in out
    row = next(
        line for line in out.splitlines() if "s0-nats-jetstream-JOBS" in line and "ceil" in line
    )
    for cell in ("0:nats-jetstream", "42", "10 (AverageValue)", "lag 42 > 0", "ceil(42 / 10) = 5"):
        assert cell in row
    assert "activator: would scale from 0 to 1" in out
    assert "HPA: holds its replicas while a metric cannot be read" in out
    assert 'event-demo/typo: not ready: triggers[0].metadata.lagThreshold: "ten"' in out


def test_a_missing_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
