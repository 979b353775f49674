"""`metrics-adapter explain PATH` against a real nats-server: values, activity, the HPA's
arithmetic and the activator's decision, for healthy, failing and invalid objects; and for
ScaledJobs, the queue, the Jobs counted (none, without a cluster), the formula and the Jobs
KEDA's poll would create."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from metrics_adapter.cli import NOT_READY, main
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


JOBS = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {{name: thumbnailer, namespace: event-demo}}
spec:
  jobTargetRef: {{template: {{spec: {{containers: [{{name: t, image: t}}]}}}}}}
  maxReplicaCount: 4
  triggers:
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: workers, lagThreshold: "10"}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {{name: summer, namespace: event-demo}}
spec:
  jobTargetRef: {{template: {{spec: {{containers: [{{name: t, image: t}}]}}}}}}
  maxReplicaCount: 20
  scalingStrategy: {{strategy: accurate, multipleScalersCalculation: sum}}
  triggers:
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: workers, lagThreshold: "10"}}
  - type: cron
    metadata: {{timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "3"}}
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: nobody}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {{name: paused-job, namespace: event-demo,
           annotations: {{autoscaling.keda.sh/paused: "true"}}}}
spec:
  jobTargetRef: {{template: {{spec: {{containers: [{{name: t, image: t}}]}}}}}}
  triggers:
  - type: nats-jetstream
    metadata: {{natsServerMonitoringEndpoint: "{endpoint}", account: "$G", stream: JOBS,
                consumer: workers, lagThreshold: "10"}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {{name: typo-job, namespace: event-demo}}
spec:
  jobTargetRef: {{template: {{spec: {{containers: [{{name: t, image: t}}]}}}}}}
  triggers:
  - type: cron
    metricType: Value
    metadata: {{timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "3"}}
"""


@pytest.fixture
def objects(tmp_path: Path, nats_server: NatsServer) -> Path:
    asyncio.run(jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=42))
    (tmp_path / "objects.yaml").write_text(OBJECTS.format(endpoint=nats_server.monitoring_endpoint))
    return tmp_path


def test_json_explains_every_object(objects: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(objects), "-o", "json"]) == NOT_READY
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
    assert echo["decision"] == (
        "would scale from 0 to 5: s0-nats-jetstream-JOBS lag 42 > 0; "
        "the HPA's first step: s0-nats-jetstream-JOBS: ceil(42 / 10) = 5"
    )
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
    assert main(["explain", str(objects)]) == NOT_READY
    out = capsys.readouterr().out
    assert "event-demo/echo-worker -> Deployment/echo-worker (min 0, max 5, now 0)" in out
    row = next(
        line for line in out.splitlines() if "s0-nats-jetstream-JOBS" in line and "ceil" in line
    )
    for cell in ("0:nats-jetstream", "42", "10 (AverageValue)", "lag 42 > 0", "ceil(42 / 10) = 5"):
        assert cell in row
    assert "activator: would scale from 0 to 5" in out
    assert "HPA: holds its replicas while a metric cannot be read" in out
    assert 'event-demo/typo: not ready: triggers[0].metadata.lagThreshold: "ten"' in out


def test_a_missing_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.fixture
def with_jobs(objects: Path, nats_server: NatsServer) -> Path:
    """The ScaledObjects above, and ScaledJobs reading the same 42 messages."""
    (objects / "jobs.yaml").write_text(JOBS.format(endpoint=nats_server.monitoring_endpoint))
    return objects


def test_json_reports_scaled_jobs_after_the_scaled_objects(
    with_jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(with_jobs), "-o", "json"]) == NOT_READY
    found = json.loads(capsys.readouterr().out)
    # ScaledObject reports as they always were, first; then the ScaledJobs, by their kind.
    assert [r.get("kind") for r in found] == [None] * 3 + ["ScaledJob"] * 4
    assert all("scaled_object" in r and "kind" not in r for r in found[:3])
    jobs = {r["scaled_job"]: r for r in found[3:]}

    thumbnailer = jobs["event-demo/thumbnailer"]
    (lag,) = thumbnailer["triggers"]
    assert (lag["metric"], lag["value"], lag["target"], lag["activation"], lag["active"]) == (
        "s0-nats-jetstream-JOBS",
        42,
        10,
        "lag 42 > 0",
        True,
    )
    assert (thumbnailer["queue_length"], thumbnailer["running"], thumbnailer["pending"]) == (
        42,
        0,
        0,
    )
    assert thumbnailer["jobs_from"] == "no cluster: no Jobs counted"
    assert (thumbnailer["strategy"], thumbnailer["calculation"], thumbnailer["max_jobs"]) == (
        "default",
        "max",
        4,
    )
    # ceil(42 / 10) = 5 Jobs asked for, capped at maxReplicaCount 4.
    assert thumbnailer["jobs_to_create"] == 4
    assert "queue 42 / target 10" in thumbnailer["formula"]
    assert thumbnailer["formula"].endswith("= 4")
    assert thumbnailer["decision"] == (
        "would create 4 Jobs for event-demo/thumbnailer: queue 42, target 10, running 0, "
        "pending 0, strategy default"
    )

    summer = jobs["event-demo/summer"]
    lag, cron, failing = summer["triggers"]
    assert (lag["value"], cron["value"], cron["target"]) == (42, 3, 1)
    assert 'consumer "nobody" not found in stream "JOBS"' in failing["error"]
    assert failing["active"] is None
    # sum over the readable triggers: queue 42 + 3; maxValue 4.2 + 3 = 7.2 -> 8 Jobs
    # (accurate: 8 + 0 running - 0 pending <= max 20, so maxScale 8 - pending 0).
    assert (summer["strategy"], summer["calculation"], summer["queue_length"]) == (
        "accurate",
        "sum",
        45,
    )
    assert summer["jobs_to_create"] == 8
    assert summer["decision"].startswith("would create 8 Jobs for event-demo/summer: queue 45,")

    assert (
        jobs["event-demo/typo-job"]["problem"]
        == "triggers[0].metricType: cannot be set in a ScaledJob's triggers"
    )
    assert jobs["event-demo/typo-job"]["jobs_to_create"] == 0

    # KEDA stops a paused ScaledJob's loop: none created, whatever the queue says.
    paused = jobs["event-demo/paused-job"]
    assert (paused["paused"], paused["queue_length"], paused["jobs_to_create"]) == (True, 42, 0)
    assert paused["decision"] == (
        "paused by autoscaling.keda.sh/paused: creates no Jobs; unpaused, would create 5 Jobs "
        "for event-demo/paused-job: queue 42, target 10, running 0, pending 0, strategy default"
    )


def test_text_reports_a_scaled_job_with_its_formula(
    with_jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(with_jobs)]) == NOT_READY
    out = capsys.readouterr().out
    header = (
        "ScaledJob event-demo/thumbnailer (min 0, max 4, strategy default, "
        "multipleScalersCalculation max)"
    )
    assert out.index("event-demo/typo: not ready") < out.index(header)
    block = out[out.index(header) :].split("\n\n", 1)[0].splitlines()
    row = next(line for line in block if "0:nats-jetstream" in line)
    for cell in ("s0-nats-jetstream-JOBS", " 42 ", " 10 ", "lag 42 > 0"):
        assert cell in row
    assert "  Jobs: running 0, pending 0 (no cluster: no Jobs counted)" in block
    assert any(line.startswith("  formula: max picks s0-nats-jetstream-JOBS: ") for line in block)
    assert block[-1] == (
        "  would create 4 Jobs for event-demo/thumbnailer: queue 42, target 10, running 0, "
        "pending 0, strategy default"
    )
    assert "  error: s2-nats-jetstream-JOBS: " in out and "(left out, as KEDA does)" in out
    assert (
        "ScaledJob event-demo/typo-job: not ready: triggers[0].metricType: cannot be set in a "
        "ScaledJob's triggers" in out
    )
