"""Graceful overload: while polls are behind a value is served as it ages; past
``--stale-intervals`` polling intervals without an answer it is an error (once per interval
toward fallback), and the backlog is in /metrics and the log.

Time is given to :meth:`Poller.check_backlog` (monotonic seconds), so nothing here waits.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.config.settings import Settings
from metrics_adapter.errors import ServiceUnavailable
from metrics_adapter.metrics.backlog import REPEAT_SECONDS, Backlog, BacklogReport
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from metrics_adapter.server import build_poller
from tests.support.triggers import always_cron, new_poller, reading, scaled_object

INTERVAL = 30
TIMEOUT = 3.0
BOUND = 3 * INTERVAL
"""The default --stale-intervals (3) times the interval: more than interval + timeout + 1."""

REFUSED = {"url": "http://127.0.0.1:1/v", "valueLocation": "v", "targetValue": "5"}
"""A metrics-api trigger whose source refuses at once: nothing listens on port 1."""


def cron_trigger(name: str = "w", **spec: object) -> BoundTrigger:
    """A trigger whose query needs no server (a cron window always open)."""
    doc = scaled_object(name, "apps", always_cron(4), pollingInterval=INTERVAL, **spec)
    (bound,) = bind(parse_scaled_object(doc), Inventory())
    return bound


def polled(telemetry: Telemetry | None = None) -> tuple[Poller, BoundTrigger]:
    poller = new_poller(TIMEOUT, telemetry=telemetry)
    bound = cron_trigger()
    poller.set_triggers(bound.so, [bound])
    return poller, bound


def served(store: MetricStore, bound: BoundTrigger) -> float:
    body = json.loads(store.answer(bound.so.namespace, bound.so.name, bound.metric_name))
    return float(body["items"][0]["value"])


async def test_a_value_ages_and_is_served_until_the_bound_then_is_an_error() -> None:
    poller, bound = polled()
    await poller.poll(bound.scaler.query)
    answered = time.monotonic()
    assert served(poller.store, bound) == 4

    behind = poller.check_backlog(answered + INTERVAL + TIMEOUT + 2)
    assert (behind.overdue, behind.stale) == (1, 0)
    assert served(poller.store, bound) == 4  # older, still served

    stale = poller.check_backlog(answered + BOUND + 1)
    assert (stale.overdue, stale.stale) == (1, 1)
    with pytest.raises(ServiceUnavailable):
        poller.store.answer(bound.so.namespace, bound.so.name, bound.metric_name)
    error = reading(poller.store, bound).error
    assert error is not None
    assert f"more than {BOUND}s (--stale-intervals=3 polling intervals)" in error
    assert reading(poller.store, bound).value == 4  # kept for explain, never served


async def test_staleness_counts_one_failure_per_interval_toward_fallback() -> None:
    poller, bound = polled()
    await poller.poll(bound.scaler.query)
    answered = time.monotonic()
    for seconds in (BOUND + 1, BOUND + 2, BOUND + INTERVAL - 1):
        poller.check_backlog(answered + seconds)
    assert reading(poller.store, bound).failures == 1
    poller.check_backlog(answered + BOUND + 1 + INTERVAL)
    assert reading(poller.store, bound).failures == 2


async def test_an_answer_serves_a_value_again_and_clears_the_backlog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    poller, bound = polled()
    await poller.poll(bound.scaler.query)
    poller.check_backlog(time.monotonic() + BOUND + 1)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await poller.poll(bound.scaler.query)
        backlog = poller.check_backlog(time.monotonic())
    assert served(poller.store, bound) == 4
    assert reading(poller.store, bound).failures == 0
    assert (backlog.overdue, backlog.stale) == (0, 0)
    messages = [r.getMessage() for r in caplog.records]
    # One line for the whole backlog, none per trigger.
    assert not any("trigger recovered" in m for m in messages), messages
    assert any(m.startswith("polls caught up after") for m in messages), messages


async def test_a_source_error_is_an_error_at_once_and_resets_the_age() -> None:
    """Errors are answers: they are not staleness, and fallback counts them as before."""
    poller = new_poller(TIMEOUT)
    doc = scaled_object(
        "w",
        "apps",
        {
            "type": "metrics-api",
            "metadata": {"url": "http://127.0.0.1:1/v", "valueLocation": "v", "targetValue": "5"},
        },
        pollingInterval=INTERVAL,
    )
    (bound,) = bind(parse_scaled_object(doc), Inventory())
    poller.set_triggers(bound.so, [bound])
    try:
        await poller.poll(bound.scaler.query)
    finally:
        await poller.clients.aclose()
    error = reading(poller.store, bound).error
    assert error is not None and "stale" not in error
    assert poller.check_backlog(time.monotonic()).overdue == 0


def test_a_query_never_answered_is_aged_from_when_its_loop_began() -> None:
    poller, bound = polled()
    began = time.monotonic()
    assert poller.check_backlog(began + INTERVAL).overdue == 0
    late = poller.check_backlog(began + BOUND + 2)
    assert (late.overdue, late.stale) == (1, 1)
    assert reading(poller.store, bound).error is not None


@pytest.mark.parametrize(
    ("stale_intervals", "interval", "timeout", "bound"),
    [
        (3, 30, 3, 90),
        (1, 30, 3, 34),  # never less than an interval and a timed-out poll (and the check)
        (5, 1, 3, 5),
        (1, 1, 3, 5),
    ],
)
def test_the_bound_is_intervals_but_never_less_than_one_poll_timing_out(
    stale_intervals: float, interval: float, timeout: float, bound: float
) -> None:
    settings = Settings(scaler_timeout=timeout, stale_intervals=stale_intervals)
    poller = build_poller(settings, MetricStore(), Telemetry())
    assert poller.stale_after(interval) == bound


async def test_the_ages_are_in_metrics_per_trigger_and_the_backlog_as_gauges() -> None:
    telemetry = Telemetry()
    poller, bound = polled(telemetry)
    await poller.poll(bound.scaler.query)
    registry = telemetry.registry
    labels = {
        "namespace": "apps",
        "metric": bound.metric_name,
        "scaledObject": "w",
        "scaler": bound.scaler_label,
        "triggerIndex": "0",
        "type": "scaledobject",
    }
    age = registry.get_sample_value("metrics_adapter_scaler_poll_age_seconds", labels)
    assert age is not None and 0 <= age < 5
    poller.check_backlog(time.monotonic() + BOUND + 1)
    assert registry.get_sample_value("metrics_adapter_polls_overdue") == 1
    assert registry.get_sample_value("metrics_adapter_polls_stale") == 1
    oldest = registry.get_sample_value("metrics_adapter_poll_oldest_answer_seconds")
    assert oldest is not None and oldest >= BOUND
    poller.remove(bound.so)
    assert registry.get_sample_value("metrics_adapter_scaler_poll_age_seconds", labels) is None


def test_the_backlog_is_logged_when_it_starts_every_half_minute_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = BacklogReport(Telemetry(), 3)
    behind = Backlog(queries=10, overdue=4, stale=0, oldest_s=40)
    worse = Backlog(queries=10, overdue=6, stale=2, oldest_s=95)
    with caplog.at_level(logging.INFO):
        report.report(Backlog(10, 0, 0, 20), 0)
        report.report(behind, 1)
        report.report(worse, 2)
        report.report(behind, 1 + REPEAT_SECONDS)
        report.report(Backlog(10, 0, 0, 25), 40)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0][0] == logging.WARNING and "4 of 10 queries overdue" in lines[0][1]
    assert "2 of them unanswered too long" not in lines[1][1]  # the line of the later state
    assert "the oldest answer 40s old (at worst 95s)" in lines[1][1]
    assert lines[2] == (
        logging.INFO,
        "polls caught up after 39s; the oldest answer was 95s old",
    )


def test_stale_intervals_below_one_is_refused_with_the_flag_and_value() -> None:
    with pytest.raises(ValueError, match=r"--stale-intervals: 0.5 must be at least 1"):
        Settings(stale_intervals=0.5)
