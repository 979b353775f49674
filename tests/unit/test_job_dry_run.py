"""Standalone ScaledJobs' dry run: the plan of each reading, logged once per change and at
most once per pollingInterval; no Jobs ever counted; paused ScaledJobs left alone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.control.activator import TriggerState
from metrics_adapter.control.job_dry_run import DryRunJobs
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.annotations import PAUSED
from metrics_adapter.model.scaled_job import ScaledJob, parse_scaled_job

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NATS = {
    "natsServerMonitoringEndpoint": "n:8222",
    "account": "$G",
    "stream": "JOBS",
    "consumer": "thumbnailers",
    "lagThreshold": "10",
}
LOGGER = "metrics_adapter.control.job_dry_run"


def scaled_job(annotations: dict[str, str] | None = None, **spec: Any) -> ScaledJob:
    template = {"spec": {"containers": [{"name": "t", "image": "busybox"}]}}
    metadata: dict[str, Any] = {"name": "thumbnailer", "namespace": "media"}
    if annotations:
        metadata["annotations"] = annotations
    body = {
        "jobTargetRef": {"template": template},
        "pollingInterval": 30,
        "maxReplicaCount": 4,
        "triggers": [{"type": "nats-jetstream", "metadata": NATS}],
        **spec,
    }
    return parse_scaled_job({"kind": "ScaledJob", "metadata": metadata, "spec": body})


def lag(sj: ScaledJob, value: float | None, error: str | None = None) -> list[TriggerState]:
    (bound,) = bind(sj, Inventory())
    reading = Reading(bound.metric_name, value, NOW, value, bool(value), error)
    return [TriggerState(bound, reading)]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return found


def test_the_plan_is_logged_with_no_jobs_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    dry, sj = DryRunJobs(), scaled_job()

    decided = dry.evaluate(sj, lag(sj, 45), NOW)
    assert decided is not None and (decided.running, decided.pending) == (0, 0)
    active, created = messages(caplog)
    assert active == "ScaledJob media/thumbnailer is active: s0-nats-jetstream-JOBS lag 45 > 0"
    assert created.startswith(
        "would create 4 Jobs for media/thumbnailer: queue 45, target 10, running 0, "
        "pending 0, strategy default ("
    )

    # The same plan within the interval (another trigger's reading): no second line.
    dry.evaluate(sj, lag(sj, 45), NOW + timedelta(seconds=10))
    assert messages(caplog) == []
    # A new interval, or another plan, logs again; KEDA would create them again.
    dry.evaluate(sj, lag(sj, 45), NOW + timedelta(seconds=30))
    assert len(messages(caplog)) == 1
    dry.evaluate(sj, lag(sj, 15), NOW + timedelta(seconds=31))
    (fewer,) = messages(caplog)
    assert fewer.startswith("would create 2 Jobs for media/thumbnailer: queue 15,")

    drained = dry.evaluate(sj, lag(sj, 0), NOW + timedelta(seconds=60))
    assert drained is not None and drained.jobs_to_create == 0
    assert messages(caplog) == [
        "ScaledJob media/thumbnailer is inactive: s0-nats-jetstream-JOBS lag 0 <= 0"
    ]


def test_a_failing_trigger_creates_nothing_and_a_paused_job_is_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    dry, sj = DryRunJobs(), scaled_job()
    failing = dry.evaluate(sj, lag(sj, 45, error="connection refused"), NOW)
    assert failing is not None and (failing.active, failing.jobs_to_create) == (False, 0)
    assert messages(caplog) == []

    paused = scaled_job({PAUSED: "true"})
    assert dry.evaluate(paused, lag(paused, 45), NOW) is None
    assert messages(caplog) == [
        f"ScaledJob media/thumbnailer is paused by {PAUSED}: no Jobs would be created"
    ]
    assert dry.evaluate(paused, lag(paused, 45), NOW + timedelta(seconds=30)) is None
    assert messages(caplog) == []  # said once


def test_min_replica_count_keeps_it_active_and_tops_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sj = scaled_job(minReplicaCount=2, maxReplicaCount=10)
    decided = DryRunJobs().evaluate(sj, lag(sj, 0), NOW)
    assert decided is not None and (decided.active, decided.jobs_to_create) == (True, 2)
    active, created = messages(caplog)
    assert active == "ScaledJob media/thumbnailer is active: minReplicaCount 2 keeps it active"
    assert created.startswith("would create 2 Jobs for media/thumbnailer: queue 0,")
