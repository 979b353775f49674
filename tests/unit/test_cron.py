"""The cron trigger: a replica floor inside a recurring window (keda-semantics §5, cron)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scalers import cron
from scalers.clients import Clients
from scalers.errors import Problems, ScalerError, quote
from scalers.params import TriggerInputs, parse_params

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS_8_TO_20 = ("0 8 * * 1-5", "0 20 * * 1-5")
NIGHT_22_TO_6 = ("0 22 * * *", "0 6 * * *")


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        # 2026-03-04 is a Wednesday, 2026-03-07 a Saturday.
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 4, 12, 0, tzinfo=PARIS), True),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 4, 8, 0, tzinfo=PARIS), True),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 4, 7, 59, tzinfo=PARIS), False),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 4, 19, 59, 59, tzinfo=PARIS), True),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 4, 20, 0, tzinfo=PARIS), False),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 7, 12, 0, tzinfo=PARIS), False),
        (WEEKDAYS_8_TO_20, datetime(2026, 3, 6, 21, 0, tzinfo=NEW_YORK), False),
        (NIGHT_22_TO_6, datetime(2026, 3, 4, 23, 0, tzinfo=TOKYO), True),
        (NIGHT_22_TO_6, datetime(2026, 3, 5, 0, 30, tzinfo=TOKYO), True),
        (NIGHT_22_TO_6, datetime(2026, 3, 5, 5, 59, tzinfo=TOKYO), True),
        (NIGHT_22_TO_6, datetime(2026, 3, 5, 6, 0, tzinfo=TOKYO), False),
        (NIGHT_22_TO_6, datetime(2026, 3, 4, 12, 0, tzinfo=TOKYO), False),
        (NIGHT_22_TO_6, datetime(2026, 3, 4, 21, 59, tzinfo=TOKYO), False),
        # The night Paris moves to summer time (02:00 -> 03:00 on 2026-03-29).
        (("0 1 * * *", "0 4 * * *"), datetime(2026, 3, 29, 3, 30, tzinfo=PARIS), True),
        (("0 1 * * *", "0 4 * * *"), datetime(2026, 3, 29, 4, 30, tzinfo=PARIS), False),
    ],
)
def test_in_window(window: tuple[str, str], now: datetime, inside: bool) -> None:
    assert cron.in_window(*window, now) is inside


# One instant, 2026-03-04 12:00 UTC: 13:00 in Paris, 07:00 in New York, 21:00 in Tokyo.
INSTANT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "inside"),
    [("Europe/Paris", True), ("America/New_York", False), ("Asia/Tokyo", False), ("UTC", True)],
)
async def test_window_run_reads_the_clock_in_the_trigger_time_zone(
    timezone: str, inside: bool
) -> None:
    asked: list[ZoneInfo] = []

    def clock(zone: ZoneInfo) -> datetime:
        asked.append(zone)
        return INSTANT.astimezone(zone)

    window = cron.CronWindow(timezone, *WEEKDAYS_8_TO_20, clock=clock)
    assert await window.run(Clients()) is inside
    assert asked == [ZoneInfo(timezone)]


def test_window_equality_ignores_the_clock() -> None:
    a = cron.CronWindow("UTC", *NIGHT_22_TO_6)
    b = cron.CronWindow("UTC", *NIGHT_22_TO_6, clock=lambda zone: INSTANT)
    assert a == b
    assert hash(a) == hash(b)
    assert a.describe() == 'cron "0 22 * * *".."0 6 * * *" in UTC'


def metadata(**change: str) -> dict[str, str]:
    base = {
        "timezone": "Europe/Paris",
        "start": WEEKDAYS_8_TO_20[0],
        "end": WEEKDAYS_8_TO_20[1],
        "desiredReplicas": "5",
    }
    base.update(change)
    return base


def parse(raw: dict[str, str]) -> tuple[cron.Metadata | None, list[str]]:
    problems = Problems()
    meta = parse_params(cron.Metadata, TriggerInputs(raw, path="triggers[0].metadata"), problems)
    return meta, [str(p) for p in problems]


def test_valid_metadata_builds_a_scaler() -> None:
    meta, problems = parse(metadata())
    assert problems == []
    assert meta == cron.Metadata("Europe/Paris", "0 8 * * 1-5", "0 20 * * 1-5", 5)
    scaler = cron.build(meta)
    assert scaler.query == cron.CronWindow("Europe/Paris", "0 8 * * 1-5", "0 20 * * 1-5")
    assert scaler.measure(True) == 5.0
    assert scaler.measure(False) == 0.0


P = "triggers[0].metadata"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"start": "0 0 8 * * *"}, f'{P}.start: "0 0 8 * * *" is not a 5-field cron expression'),
        ({"end": "0 20 * *"}, f'{P}.end: "0 20 * *" is not a 5-field cron expression'),
        ({"end": "61 20 * * *"}, f'{P}.end: "61 20 * * *" is not a 5-field cron expression'),
        ({"end": "0 8 * * 1-5"}, f'{P}.end: "0 8 * * 1-5" must differ from start'),
        (
            {"desiredReplicas": "0"},
            f'{P}.desiredReplicas: "0" is not a number of replicas to hold (expected 1 or more)',
        ),
        ({"desiredReplicas": "two"}, f'{P}.desiredReplicas: "two" is not a number'),
        ({"timezone": ""}, f"{P}.timezone: is required"),
    ],
)
def test_metadata_problems(change: dict[str, str], problem: str) -> None:
    meta, problems = parse(metadata(**change))
    assert meta is None
    assert problems == [problem]


def test_every_check_problem_at_once() -> None:
    meta, problems = parse(metadata(timezone="Nowhere", start="bad", end="bad"))
    assert meta is None
    assert problems == [
        f'{P}.start: "bad" is not a 5-field cron expression',
        f'{P}.end: "bad" is not a 5-field cron expression',
        f'{P}.end: "bad" must differ from start',
    ]


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "../etc/passwd", "America"])
async def test_an_unknown_time_zone_fails_the_trigger_when_polled(timezone: str) -> None:
    """KEDA loads the zone when it polls: the object is accepted, the trigger fails."""
    meta, problems = parse(metadata(timezone=timezone))
    assert problems == [] and meta is not None
    scaler = cron.build(meta)
    with pytest.raises(ScalerError) as info:
        await scaler.query.run(Clients())
    assert str(info.value) == (
        f"timezone {quote(timezone)} is not an IANA time zone this host knows "
        "(e.g. Europe/Paris, UTC)"
    )


def test_a_negative_desired_replicas_is_accepted_and_never_active() -> None:
    """KEDA refuses only 0; a negative count is served as it is, below any activation."""
    meta, problems = parse(metadata(desiredReplicas="-2"))
    assert problems == [] and meta is not None
    assert cron.build(meta).measure(True) == -2.0
