"""KEDA's metric names (keda-semantics §2 and §5) and its activation rule (§4)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from scalers.base import Scaler, indexed_metric_name, is_active, normalize
from scalers.errors import Problems
from scalers.params import TriggerInputs
from scalers.registry import KINDS


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("a/b", "a-b"),
        ("a.b", "a-b"),
        ("a:b", "a-b"),
        ("a%b", "a-b"),
        ("a(b)", "a-b-"),
        ("http://h:80/p.q(1)%", "http---h-80-p-q-1--"),
        ("plain_Name-1", "plain_Name-1"),
        ("", ""),
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize(raw) == normalized


@pytest.mark.parametrize(
    ("index", "name", "expected"),
    [(0, "nats-jetstream-JOBS", "s0-nats-jetstream-JOBS"), (12, "cron-x", "s12-cron-x")],
)
def test_indexed_metric_name(index: int, name: str, expected: str) -> None:
    assert indexed_metric_name(index, name) == expected


def scaler(type_name: str, metadata: Mapping[str, str]) -> Scaler[object]:
    problems = Problems()
    built = KINDS[type_name].create(TriggerInputs(metadata), problems)
    assert [str(p) for p in problems] == []
    assert built is not None
    return built


NATS = {"natsServerMonitoringEndpoint": "nats:8222", "account": "$G", "consumer": "c"}


@pytest.mark.parametrize(
    ("stream", "name"),
    [
        ("JOBS", "nats-jetstream-JOBS"),
        ("orders.v1", "nats-jetstream-orders-v1"),
        ("a:b", "nats-jetstream-a-b"),
    ],
)
def test_nats_jetstream_metric_name(stream: str, name: str) -> None:
    s = scaler("nats-jetstream", {**NATS, "stream": stream})
    assert s.metric_name == name
    assert indexed_metric_name(0, s.metric_name) == f"s0-{name}"


@pytest.mark.parametrize(
    ("timezone", "start", "end", "name"),
    [
        ("Europe/Paris", "0 8 * * 1-5", "0 20 * * 1-5", "cron-Europe-Paris-08xx1-5-020xx1-5"),
        ("UTC", "*/15 * * * *", "5 * * * *", "cron-UTC-xSl15xxxx-5xxxx"),
        ("Asia/Kolkata", "0 9 ? * 1,3", "0 17 ? * 1,3", "cron-Asia-Kolkata-09Qmx1Cm3-017Qmx1Cm3"),
        (
            "America/Argentina/Buenos_Aires",
            "30 6 1 1 *",
            "0 7 1 1 *",
            "cron-America-Argentina-Buenos_Aires-30611x-0711x",
        ),
    ],
)
def test_cron_metric_name(timezone: str, start: str, end: str, name: str) -> None:
    meta = {"timezone": timezone, "start": start, "end": end, "desiredReplicas": "3"}
    assert scaler("cron", meta).metric_name == name


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("components.worker.tasks", "metric-api-components-worker-tasks"),
        ("items.0.value", "metric-api-items-0-value"),
        ("queue.#", "metric-api-queue-#"),
        ("value", "metric-api-value"),
    ],
)
def test_metrics_api_metric_name(location: str, name: str) -> None:
    meta = {"url": "http://api:8080/stats", "valueLocation": location, "targetValue": "5"}
    assert scaler("metrics-api", meta).metric_name == name


@pytest.mark.parametrize(
    ("value", "threshold", "active"),
    [
        (1, 0, True),
        (0.5, 0, True),
        (0, 0, False),
        (-1, 0, False),
        (10, 10, False),
        (10.001, 10, True),
        (-1, -2, True),
        (math.nan, 0, False),
        (math.inf, 0, True),
    ],
)
def test_is_active_is_strictly_greater(value: float, threshold: float, active: bool) -> None:
    assert is_active(value, threshold) is active


def test_scaler_targets_and_labels() -> None:
    nats = scaler("nats-jetstream", {**NATS, "stream": "S", "activationLagThreshold": "4"})
    assert (nats.target, nats.activation_target, nats.value_label) == (10.0, 4.0, "lag")
    cron = scaler(
        "cron",
        {"timezone": "UTC", "start": "0 8 * * *", "end": "0 9 * * *", "desiredReplicas": "2"},
    )
    assert (cron.target, cron.activation_target, cron.value_label) == (1.0, 0.0, "replicas")
    api = scaler(
        "metrics-api",
        {
            "url": "http://a/",
            "valueLocation": "v",
            "targetValue": "2.5",
            "activationTargetValue": "1",
        },
    )
    assert (api.target, api.activation_target, api.value_label) == (2.5, 1.0, "value")
