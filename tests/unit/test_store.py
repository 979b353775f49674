"""The MetricStore: the request path's only source, answered from memory (DESIGN.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from metrics_adapter.errors import NotFound, ServiceUnavailable
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.model.keda import ObjectRef

SO = ObjectRef("apps", "echo")
NATS = "s0-nats-jetstream-JOBS"
CRON = "s1-cron-UTC-08xxxx-020xxxx"
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> MetricStore:
    s = MetricStore()
    s.register(SO, [NATS, CRON])
    return s


def value_of(body: bytes) -> str:
    [item] = json.loads(body)["items"]
    assert isinstance(item["value"], str)
    return item["value"]


def test_unknown_object_is_not_found(store: MetricStore) -> None:
    with pytest.raises(NotFound, match=r"^ScaledObject apps/other not found$"):
        store.answer("apps", "other", NATS)
    with pytest.raises(NotFound):
        store.answer("elsewhere", "echo", NATS)


def test_unknown_metric_lists_the_known_ones(store: MetricStore) -> None:
    with pytest.raises(NotFound) as info:
        store.answer("apps", "echo", "s9-kafka-x")
    assert str(info.value) == (
        "no matching metrics found for s9-kafka-x in ScaledObject apps/echo "
        f"(its metrics: {NATS}, {CRON})"
    )


def test_object_without_metrics_says_none() -> None:
    store = MetricStore()
    store.register(SO, [])
    with pytest.raises(NotFound, match=r"\(its metrics: none\)$"):
        store.answer("apps", "echo", NATS)


def test_no_value_yet_is_unavailable(store: MetricStore) -> None:
    with pytest.raises(ServiceUnavailable, match=f"^metric:{NATS} has no value yet"):
        store.answer("apps", "echo", NATS)


def test_a_value_is_served(store: MetricStore) -> None:
    reading = store.record_value(SO, NATS, 47, True, AT)
    assert reading is not None
    assert (reading.value, reading.active, reading.measured_at, reading.healthy) == (
        47,
        True,
        AT,
        True,
    )
    body = store.answer("apps", "echo", NATS)
    assert body == reading.body
    assert json.loads(body)["items"][0] == {
        "metricName": NATS,
        "metricLabels": None,
        "timestamp": "2026-05-01T12:00:00Z",
        "value": "47",
    }


def test_latest_value_wins(store: MetricStore) -> None:
    store.record_value(SO, NATS, 47, True, AT)
    store.record_value(SO, NATS, 1.5, True, AT + timedelta(seconds=30))
    assert value_of(store.answer("apps", "echo", NATS)) == "1500m"


def test_metric_lookup_is_case_insensitive(store: MetricStore) -> None:
    store.record_value(SO, NATS, 3, True, AT)
    assert value_of(store.answer("apps", "echo", NATS.lower())) == "3"
    assert value_of(store.answer("apps", "echo", NATS.upper())) == "3"


def test_an_error_hides_an_older_good_value(store: MetricStore) -> None:
    store.record_value(SO, NATS, 47, True, AT)
    reading = store.record_error(SO, NATS, "GET http://nats:8222/jsz: connection refused")
    assert reading is not None
    assert (reading.value, reading.error, reading.failures, reading.active) == (
        47,
        "GET http://nats:8222/jsz: connection refused",
        1,
        False,
    )
    assert reading.healthy is False
    with pytest.raises(ServiceUnavailable) as info:
        store.answer("apps", "echo", NATS)
    assert str(info.value) == (
        f"metric:{NATS} encountered error: GET http://nats:8222/jsz: connection refused"
    )


def test_failures_count_until_a_success(store: MetricStore) -> None:
    store.record_error(SO, NATS, "a")
    second = store.record_error(SO, NATS, "b")
    assert second is not None
    assert (second.failures, second.error) == (2, "b")
    healed = store.record_value(SO, NATS, 5, True, AT)
    assert healed is not None
    assert (healed.failures, healed.error) == (0, None)
    assert value_of(store.answer("apps", "echo", NATS)) == "5"


def test_other_metrics_keep_serving_while_one_fails(store: MetricStore) -> None:
    store.record_value(SO, CRON, 2, True, AT)
    store.record_error(SO, NATS, "boom")
    assert value_of(store.answer("apps", "echo", CRON)) == "2"


def test_broken_object_is_unavailable_with_its_reason(store: MetricStore) -> None:
    store.record_value(SO, NATS, 47, True, AT)
    store.mark_broken(SO, 'triggers[0].metadata.lagThreshold: "ten" is not a number')
    with pytest.raises(ServiceUnavailable) as info:
        store.answer("apps", "echo", NATS)
    assert str(info.value) == (
        'ScaledObject apps/echo is not ready: triggers[0].metadata.lagThreshold: "ten" is not '
        "a number"
    )
    assert store.broken_reason(SO) is not None
    assert store.readings(SO) == {}


def test_register_keeps_readings_of_names_still_present(store: MetricStore) -> None:
    store.record_value(SO, NATS, 47, True, AT)
    store.record_value(SO, CRON, 2, True, AT)
    store.register(SO, [NATS.upper(), "s2-metric-api-v"])
    readings = store.readings(SO)
    assert sorted(readings) == [NATS.lower(), "s2-metric-api-v"]
    assert readings[NATS.lower()].value == 47
    assert readings["s2-metric-api-v"].value is None
    assert value_of(store.answer("apps", "echo", NATS)) == "47"
    with pytest.raises(NotFound):
        store.answer("apps", "echo", CRON)


def test_register_clears_a_broken_object(store: MetricStore) -> None:
    store.mark_broken(SO, "bad")
    store.register(SO, [NATS])
    assert store.broken_reason(SO) is None
    with pytest.raises(ServiceUnavailable, match="has no value yet"):
        store.answer("apps", "echo", NATS)


def test_writes_for_unknown_objects_or_metrics_are_dropped(store: MetricStore) -> None:
    other = ObjectRef("apps", "other")
    assert store.record_value(other, NATS, 1, True, AT) is None
    assert store.record_error(other, NATS, "x") is None
    assert store.record_value(SO, "s7-unknown", 1, True, AT) is None
    assert store.record_error(SO, "s7-unknown", "x") is None
    assert store.objects() == [SO]
    assert sorted(store.readings(SO)) == [NATS.lower(), CRON.lower()]


def test_unregister_forgets_the_object(store: MetricStore) -> None:
    store.unregister(SO)
    store.unregister(SO)
    assert store.objects() == []
    with pytest.raises(NotFound):
        store.answer("apps", "echo", NATS)
