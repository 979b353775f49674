"""beanstalkd fixtures: one server for the module's reads, fresh ones to stop or freeze."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.beanstalkd import NEEDS, BeanstalkdProcess, binary
from tests.support.servers import require_in_ci

BEANSTALKD = binary()
require_in_ci(BEANSTALKD is not None, NEEDS)
_TUBES = itertools.count()


def _binary() -> Path:
    if BEANSTALKD is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return BEANSTALKD


@pytest.fixture(scope="module")
def beanstalkd() -> Iterator[BeanstalkdProcess]:
    """One server for the module: tests use tubes of their own."""
    server = BeanstalkdProcess(_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_beanstalkd() -> Iterator[BeanstalkdProcess]:
    """A server of the test's own, to stop, freeze or restart."""
    server = BeanstalkdProcess(_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def tube() -> str:
    return f"jobs-{next(_TUBES)}"
