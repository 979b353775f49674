"""kube-apiserver's clock from the Date of its answers (metrics_adapter.kube.clock)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from metrics_adapter.kube.clock import SAMPLES, ServerClock

LOCAL = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def answered(clock: ServerClock, server: datetime, at: datetime = LOCAL) -> None:
    clock.observe(format_datetime(server, usegmt=True), at, at + timedelta(milliseconds=4))


def test_a_clock_five_minutes_ahead_reads_the_servers_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ServerClock(wall=lambda: LOCAL)
    assert clock.now() == LOCAL  # nothing heard yet: the local clock
    for _ in range(3):
        answered(clock, LOCAL - timedelta(minutes=5))
    assert abs(clock.now() - (LOCAL - timedelta(minutes=5))) < timedelta(seconds=1)
    assert "clock is 300 s ahead of kube-apiserver's" in caplog.text
    assert caplog.records[0].levelno == logging.WARNING


def test_within_the_headers_second_the_local_clock_is_kept() -> None:
    clock = ServerClock(wall=lambda: LOCAL)
    answered(clock, LOCAL.replace(microsecond=0))
    answered(clock, LOCAL + timedelta(milliseconds=300))
    assert clock.offset == 0.0
    assert clock.now() == LOCAL


def test_the_median_of_recent_answers_outvotes_a_stray_one() -> None:
    clock = ServerClock(wall=lambda: LOCAL)
    for _ in range(SAMPLES - 1):
        answered(clock, LOCAL + timedelta(seconds=60))
    answered(clock, LOCAL - timedelta(hours=1))  # a proxy's cached answer, say
    assert 59 < clock.offset < 62


@pytest.mark.parametrize("header", [None, "", "yesterday", "Sun, 06 Dec 2026 12:00:00"])
def test_a_missing_or_unreadable_date_is_ignored(header: str | None) -> None:
    clock = ServerClock(wall=lambda: LOCAL)
    clock.observe(header, LOCAL, LOCAL)
    assert clock.offset == 0.0
