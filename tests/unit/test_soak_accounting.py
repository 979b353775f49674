"""The soak benchmark's accounting: which failed reads a flap explains, which objects the
reader may ask for, and growth per hour. Its summary line rests on these."""

from __future__ import annotations

import time

import pytest

from bench.soak import GRACE, Flaps, Objects, slope_per_hour

INTERVAL = 30


def test_a_failure_is_explained_only_by_its_own_source_s_flap_and_its_tail() -> None:
    flaps = Flaps()
    flaps.add(1, 100.0, 160.0)
    assert flaps.explains(1, 130.0, INTERVAL)
    assert flaps.explains(1, 160.0 + INTERVAL + GRACE, INTERVAL)  # the poll that finds it back
    assert not flaps.explains(1, 160.0 + INTERVAL + GRACE + 1, INTERVAL)
    assert not flaps.explains(1, 99.0, INTERVAL)
    assert not flaps.explains(2, 130.0, INTERVAL)  # another source's object: unexplained


def test_the_reader_skips_objects_too_new_to_be_polled_and_those_about_to_go() -> None:
    objects = Objects(INTERVAL)
    objects.add("old", 0)
    objects.add("older-still", 1)
    objects.alive["old"] = (0, time.monotonic() - INTERVAL - GRACE - 1)
    objects.alive["older-still"] = (1, time.monotonic() - INTERVAL - GRACE - 5)
    objects.add("new", 2)
    assert sorted(objects.settled()) == [("old", 0), ("older-still", 1)]
    assert objects.retire_oldest() == "old"  # first created, whatever its age says
    assert objects.settled() == [("older-still", 1)]
    objects.remove("old")
    assert (objects.created, objects.deleted) == (3, 1)
    assert list(objects.alive) == ["older-still", "new"]


@pytest.mark.parametrize(
    ("points", "per_hour"),
    [
        ([(0.0, 100.0), (1800.0, 101.0), (3600.0, 102.0)], 2.0),
        ([(0.0, 50.0), (600.0, 50.0), (1200.0, 50.0)], 0.0),
        ([(0.0, 50.0)], 0.0),
    ],
)
def test_growth_is_the_least_squares_slope_per_hour(
    points: list[tuple[float, float]], per_hour: float
) -> None:
    assert slope_per_hour(points) == pytest.approx(per_hour)
