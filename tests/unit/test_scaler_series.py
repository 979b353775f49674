"""KEDA's per-trigger series, made at scrape time from a row per trigger: what each write
shows, and that a forgotten trigger or composite shows nothing."""

from __future__ import annotations

from metrics_adapter.metrics.composite import Outcome
from metrics_adapter.metrics.telemetry import Telemetry, scaler_labels
from tests.support.triggers import bound_trigger

METADATA = {"url": "http://127.0.0.1:1/v", "valueLocation": "v", "targetValue": "1"}


def sample(t: Telemetry, name: str, labels: dict[str, str]) -> float | None:
    return t.registry.get_sample_value(name, labels)


def test_a_reading_shows_value_latency_and_activity_then_errors_count() -> None:
    t, bound = Telemetry(), bound_trigger("so", METADATA, "metrics-api")
    labels = dict(zip(t.scalers._labelnames, scaler_labels(bound), strict=True))
    assert sample(t, "keda_scaler_metrics_value", labels) is None  # nothing written yet
    t.observe(bound, 7.5, True, 0.25)
    assert sample(t, "keda_scaler_metrics_value", labels) == 7.5
    assert sample(t, "keda_scaler_metrics_latency_seconds", labels) == 0.25
    assert sample(t, "keda_scaler_active", labels) == 1
    assert sample(t, "keda_scaler_detail_errors_total", labels) is None
    t.error(bound)
    t.error(bound)
    assert sample(t, "keda_scaler_detail_errors_total", labels) == 2
    assert sample(t, "keda_scaler_active", labels) == 0
    assert sample(t, "keda_scaler_metrics_value", labels) == 7.5  # the last value stays
    t.observe(bound, 1.0, None, 0.1)  # under scalingModifiers: no activity of its own
    assert sample(t, "keda_scaler_active", labels) == 0
    t.forget(bound)
    for name in ("keda_scaler_metrics_value", "keda_scaler_detail_errors_total"):
        assert sample(t, name, labels) is None, name


def test_a_composite_shows_what_is_served_and_goes_when_forgotten() -> None:
    t, bound = Telemetry(), bound_trigger("so", METADATA, "metrics-api")
    ref = bound.so
    labels = dict(zip(t.scalers._labelnames, t._composite_labels(ref), strict=True))
    t.composite(ref, Outcome(error="no value"))
    assert sample(t, "keda_scaler_metrics_value", labels) is None
    assert sample(t, "keda_scaler_active", labels) == 0
    t.composite(ref, Outcome(result=3.0, served=3.0, active=True))
    assert sample(t, "keda_scaler_metrics_value", labels) == 3.0
    assert sample(t, "keda_scaler_active", labels) == 1
    t.forget_composite(ref)
    assert sample(t, "keda_scaler_active", labels) is None
