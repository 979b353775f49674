"""beanstalkd against the real server: what KEDA computes for real tube states.

A tube holds ready, reserved (by a connection the test keeps open), delayed (for an hour,
so no clock moves them) and buried jobs; KEDA counts ready + reserved, plus delayed with
``includeDelayed``, and never buried.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from scalers.base import is_active
from scalers.beanstalkd import BeanstalkdScaler
from tests.support.beanstalkd import BeanstalkClient, BeanstalkdProcess
from tests.support.triggers import measure_once, trigger

pytestmark = pytest.mark.integration

# (ready, reserved, delayed, buried)
MIXED = (5, 3, 4, 2)
RESERVED_ONLY = (0, 2, 0, 0)
DELAYED_ONLY = (0, 0, 6, 0)
BURIED_ONLY = (0, 0, 0, 3)

# (tube state, trigger metadata) -> (value, active, HPA replicas = ceil(value / value param))
FIDELITY = [
    (MIXED, {}, 8, True, 2),
    (MIXED, {"includeDelayed": "true"}, 12, True, 3),
    (MIXED, {"value": "1"}, 8, True, 8),
    (MIXED, {"value": "2.5"}, 8, True, 4),
    (MIXED, {"activationValue": "7.5"}, 8, True, 2),
    (MIXED, {"activationValue": "8"}, 8, False, 2),
    (MIXED, {"includeDelayed": "true", "activationValue": "11"}, 12, True, 3),
    (RESERVED_ONLY, {}, 2, True, 1),
    (DELAYED_ONLY, {}, 0, False, 0),
    (DELAYED_ONLY, {"includeDelayed": "true"}, 6, True, 2),
    (DELAYED_ONLY, {"includeDelayed": "false"}, 0, False, 0),
    (BURIED_ONLY, {"includeDelayed": "true"}, 0, False, 0),
]


def _row_id(row: tuple[tuple[int, ...], dict[str, str], int, bool, int]) -> str:
    (ready, reserved, delayed, buried), meta, *_ = row
    flags = ",".join(f"{k}={v}" for k, v in meta.items()) or "defaults"
    return f"{ready}r-{reserved}res-{delayed}d-{buried}b-{flags}"


@pytest.fixture
def holder(beanstalkd: BeanstalkdProcess) -> Iterator[BeanstalkClient]:
    """The connection that reserves jobs: they stay reserved until it closes."""
    with beanstalkd.client() as client:
        yield client


def fill(client: BeanstalkClient, tube: str, state: tuple[int, int, int, int]) -> None:
    ready, reserved, delayed, buried = state
    client.put(tube, reserved + buried)
    client.reserve(tube, reserved)
    client.bury(tube, buried)
    client.put(tube, delayed, delay=3600)
    client.put(tube, ready)


def scaler(server: BeanstalkdProcess, tube: str, **meta: str) -> BeanstalkdScaler:
    built = trigger("beanstalkd", {"server": server.address, "tube": tube, "value": "5", **meta})
    assert isinstance(built, BeanstalkdScaler)
    return built


@pytest.mark.parametrize(
    ("state", "meta", "value", "active", "replicas"), FIDELITY, ids=[_row_id(r) for r in FIDELITY]
)
async def test_fidelity(
    beanstalkd: BeanstalkdProcess,
    holder: BeanstalkClient,
    tube: str,
    state: tuple[int, int, int, int],
    meta: dict[str, str],
    value: int,
    active: bool,
    replicas: int,
) -> None:
    fill(holder, tube, state)
    s = scaler(beanstalkd, tube, **meta)
    measured = await measure_once(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas


async def test_a_tube_the_server_does_not_know_is_zero_as_in_keda(
    beanstalkd: BeanstalkdProcess, tube: str
) -> None:
    assert await measure_once(scaler(beanstalkd, f"{tube}-never-used")) == 0


async def test_reserved_jobs_count_until_their_connection_closes(
    beanstalkd: BeanstalkdProcess, tube: str
) -> None:
    s = scaler(beanstalkd, tube)
    with beanstalkd.client() as worker:
        worker.put(tube, 3)
        worker.reserve(tube, 2)
        assert await measure_once(s) == 3
    # The worker is gone: beanstalkd releases its jobs, ready again, still 3.
    assert await measure_once(s) == 3
