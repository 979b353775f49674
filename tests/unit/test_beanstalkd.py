"""beanstalkd's parameters, metric name and stats parsing, as KEDA reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scalers import beanstalkd
from scalers.errors import Problems
from scalers.params import TriggerInputs

BASE = {"server": "127.0.0.1:11300", "tube": "jobs", "value": "5"}


def _parse(**meta: str) -> tuple[beanstalkd.BeanstalkdScaler | None, list[str]]:
    problems = Problems()
    built = beanstalkd.KIND.create(TriggerInputs({**BASE, **meta}), problems)
    assert built is None or isinstance(built, beanstalkd.BeanstalkdScaler)
    return built, [str(p) for p in problems]


@pytest.mark.parametrize(
    ("tube", "metric"),
    [
        ("jobs", "beanstalkd-jobs"),
        ("a/b", "beanstalkd-a-2Fb"),  # url.QueryEscape, then NormalizeString
        ("with space", "beanstalkd-with+space"),
        ("x.y:z(1)", "beanstalkd-x-y-3Az-281-29"),
    ],
)
def test_metric_name_as_keda_escapes_and_normalises_it(tube: str, metric: str) -> None:
    built, _ = _parse(tube=tube)
    assert built is not None and built.metric_name == metric


def test_defaults_as_keda() -> None:
    built, _ = _parse()
    assert built is not None
    assert built.meta.timeout == timedelta(milliseconds=30)  # KEDA's default=30: milliseconds
    assert built.meta.include_delayed is False
    assert (built.target, built.activation_target) == (5, 0)


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"server": "beanstalkd"}, 'metadata.server: "beanstalkd" is not host:port'),
        ({"value": "0"}, 'metadata.value: "0" must be greater than 0'),
        ({"value": "five"}, 'metadata.value: "five" is not a number'),
        ({"includeDelayed": "yes"}, 'metadata.includeDelayed: "yes" is not a boolean'),
        ({"timeout": "-1s"}, 'metadata.timeout: "-1s" is negative'),
        ({"timeout": "soon"}, 'metadata.timeout: "soon" is not a duration'),
    ],
)
def test_bad_parameters_name_the_value(meta: dict[str, str], problem: str) -> None:
    built, problems = _parse(**meta)
    assert built is None
    assert any(p.startswith(problem) for p in problems), problems


def test_stats_are_parsed_strictly() -> None:
    assert beanstalkd.parse_stats("---\nname: jobs\ncurrent-jobs-ready: 3\n") == {
        "name": "jobs",
        "current-jobs-ready": "3",
    }
    with pytest.raises(Exception, match="not 'key: value'"):
        beanstalkd.parse_stats("---\nname jobs\n")
