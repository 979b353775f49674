"""Fallback: after failureThreshold failures the HPA is served target x replicas, a trigger
in fallback counts as active, and the status says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.control.activator import TriggerState, decide, fallback_value, set_fallbacks
from metrics_adapter.control.status import status_patch
from metrics_adapter.errors import ServiceUnavailable
from metrics_adapter.metrics.store import Fallback, MetricStore
from metrics_adapter.model.keda import ScaledObject, parse_scaled_object

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NATS = {
    "natsServerMonitoringEndpoint": "n:8222",
    "account": "$G",
    "stream": "S",
    "consumer": "c",
    "lagThreshold": "10",
}


def so(fallback: dict[str, Any] | None, metric_type: str = "AverageValue") -> ScaledObject:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "w"},
        "triggers": [{"type": "nats-jetstream", "metricType": metric_type, "metadata": NATS}],
    }
    if fallback is not None:
        spec["fallback"] = fallback
    return parse_scaled_object({"metadata": {"name": "w", "namespace": "apps"}, "spec": spec})


def bound(obj: ScaledObject) -> BoundTrigger:
    (b,) = bind(obj, Inventory())
    return b


def served(store: MetricStore, b: BoundTrigger) -> str:
    body = json.loads(store.answer("apps", "w", b.metric_name))
    return str(body["items"][0]["value"])


@pytest.mark.parametrize(
    ("fallback", "metric_type", "current", "expected"),
    [
        ({"failureThreshold": 3, "replicas": 6}, "AverageValue", 2, 60),
        ({"failureThreshold": 3, "replicas": 6}, "Value", 2, 30),  # HPA: ceil(2 x 30/10) = 6
        ({"failureThreshold": 3, "replicas": 6}, "Value", 0, None),  # no pods: KEDA fails too
        (
            {"failureThreshold": 3, "replicas": 6, "behavior": "currentReplicas"},
            "AverageValue",
            4,
            40,
        ),
        (
            {"failureThreshold": 3, "replicas": 6, "behavior": "currentReplicasIfHigher"},
            "AverageValue",
            4,
            60,
        ),
        (
            {"failureThreshold": 3, "replicas": 6, "behavior": "currentReplicasIfLower"},
            "AverageValue",
            4,
            40,
        ),
        (None, "AverageValue", 4, None),
    ],
)
def test_the_value_that_makes_the_hpa_compute_the_fallback(
    fallback: dict[str, Any] | None, metric_type: str, current: int, expected: float | None
) -> None:
    obj = so(fallback, metric_type)
    assert fallback_value(obj, bound(obj), current) == expected


def test_the_store_serves_the_fallback_only_past_the_threshold() -> None:
    obj = so({"failureThreshold": 2, "replicas": 5})
    b, store = bound(obj), MetricStore()
    store.register(obj.ref, [b.metric_name])
    set_fallbacks(store, obj, [b], current=1)
    store.record_value(obj.ref, b.metric_name, 7, True, NOW)
    for _ in range(2):
        store.record_error(obj.ref, b.metric_name, "refused")
        with pytest.raises(ServiceUnavailable):  # at the threshold: still an error
            store.answer("apps", "w", b.metric_name)
    reading = store.record_error(obj.ref, b.metric_name, "refused")
    assert reading is not None and reading.in_fallback
    assert served(store, b) == "50"  # 10 x 5: the HPA computes 5
    store.register(obj.ref, [b.metric_name])  # re-binding keeps the fallback
    assert served(store, b) == "50"
    store.record_value(obj.ref, b.metric_name, 3, True, NOW)
    assert served(store, b) == "3"
    store.set_fallback(obj.ref, b.metric_name, None)
    for _ in range(4):
        store.record_error(obj.ref, b.metric_name, "refused")
    with pytest.raises(ServiceUnavailable):
        store.answer("apps", "w", b.metric_name)


def test_a_trigger_in_fallback_is_active_and_reported() -> None:
    obj = so({"failureThreshold": 0, "replicas": 3})
    b, store = bound(obj), MetricStore()
    store.register(obj.ref, [b.metric_name])
    store.set_fallback(obj.ref, b.metric_name, Fallback(0, 30))
    reading = store.record_error(obj.ref, b.metric_name, "refused")
    assert reading is not None
    states = [TriggerState(b, reading)]
    decision = decide(obj, 0, states, None, NOW)
    assert (decision.replicas, decision.active) == (3, True)  # from zero to the fallback replicas
    status: dict[str, Any] = status_patch(
        obj, problem=None, states=states, decision=decision, original_replicas=0
    ).to_json()
    fallback = next(c for c in status["conditions"] if c["type"] == "Fallback")
    assert (fallback["status"], fallback["reason"]) == ("True", "FallbackExists")
    assert status["health"] == {b.metric_name: {"numberOfFailures": 1, "status": "Failing"}}
