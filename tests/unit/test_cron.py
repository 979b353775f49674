"""The cron trigger: a replica floor inside a recurring window (keda-semantics §5, cron)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from scalers import cron, cron_spec
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
        (
            {"start": "0 0 8 * * *"},
            f'{P}.start: "0 0 8 * * *" is not a 5-field cron expression: '
            "expected exactly 5 fields, found 6",
        ),
        (
            {"end": "0 20 * *"},
            f'{P}.end: "0 20 * *" is not a 5-field cron expression: '
            "expected exactly 5 fields, found 4",
        ),
        (
            {"end": "61 20 * * *"},
            f'{P}.end: "61 20 * * *" is not a 5-field cron expression: '
            'minute: "61" is outside 0-59',
        ),
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
        f'{P}.start: "bad" is not a 5-field cron expression: expected exactly 5 fields, found 1',
        f'{P}.end: "bad" is not a 5-field cron expression: expected exactly 5 fields, found 1',
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


@pytest.mark.parametrize(
    ("expr", "croniter_form"),
    [
        ("0 8 * * 1-5", "0 8 * * 1-5"),
        ("0 8 * * MON-FRI", "0 8 * * 1-5"),
        ("0 0 1 jan *", "0 0 1 1 *"),
        ("0 0 1 * ?", "0 0 1 * *"),
        ("? * * * *", "* * * * *"),  # robfig takes ? in any field, croniter only in days
        ("+5 * * * *", "5 * * * *"),  # Go's Atoi
        ("5/15 * * * *", "5-59/15 * * * *"),  # robfig: from 5 to the field's end
        ("*/15 9-17 * * *", "0-59/15 9-17 * * *"),
        ("0,30 8,,20 * * *", "0,30 8,20 * * *"),
    ],
)
def test_what_keda_accepts_and_how_croniter_reads_it(expr: str, croniter_form: str) -> None:
    """KEDA parses schedules with robfig/cron v3 (five fields): the same accepted here,
    rewritten so that croniter fires when robfig would."""
    assert cron_spec.canonical(expr) == croniter_form


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 0 L * *", 'day of month: "L" is not a number'),
        ("0 0 1W * *", 'day of month: "1W" is not a number'),
        ("0 0 * * 5#3", 'day of week: "5#3" is not a number'),
        ("0 0 * * 7", 'day of week: "7" is outside 0-6'),
        ("@hourly", "descriptors such as @hourly are not accepted; write five fields"),
        ("*/0 * * * *", 'minute: the step of "*/0" must be positive'),
        ("5-3 * * * *", 'minute: "5-3" begins after it ends'),
        ("1-2-3 * * * *", 'minute: too many hyphens in "1-2-3"'),
        ("1/2/3 * * * *", 'minute: too many slashes in "1/2/3"'),
        ("0 0 0 * *", 'day of month: "0" is outside 1-31'),
        ("0 0 * 13 *", 'month: "13" is outside 1-12'),
    ],
)
def test_what_keda_refuses_is_refused(expr: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        cron_spec.canonical(expr)


def test_day_of_month_or_week_as_robfig_combines_them() -> None:
    """Both restricted: either matches; one of them ``?`` or ``*``: the other decides."""
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)  # a Thursday
    both = croniter(cron_spec.canonical("0 0 15 * MON"), start)
    assert [both.get_next(datetime).day for _ in range(3)] == [5, 12, 15]
    only_monday = croniter(cron_spec.canonical("0 0 ? * MON"), start)
    assert [only_monday.get_next(datetime).day for _ in range(2)] == [5, 12]
