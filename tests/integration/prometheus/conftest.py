"""Prometheus fixtures: one scraping a target the tests control, one behind TLS and basic auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import Pki, make_pki
from tests.support.prometheus import NEEDS, Exposition, PrometheusServer, binary
from tests.support.servers import require_in_ci

PROMETHEUS_BINARY = binary()
require_in_ci(PROMETHEUS_BINARY is not None, NEEDS)

SAMPLES = {
    'queue_depth{queue="jobs"}': 42.0,
    'queue_depth{queue="mail"}': 7.0,
    "queue_ratio": 0.25,
    "queue_negative": -3.0,
    "queue_nan": float("nan"),
    "queue_inf": float("inf"),
}
"""What the target serves from the start; tests that change values use series of their own."""


def _binary() -> Path:
    if PROMETHEUS_BINARY is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    return PROMETHEUS_BINARY


@pytest.fixture(scope="session")
def exposition() -> Iterator[Exposition]:
    target = Exposition()
    for series, value in SAMPLES.items():
        target.set(series, value)
    try:
        yield target
    finally:
        target.close()


@pytest.fixture(scope="session")
def prometheus(exposition: Exposition) -> Iterator[PrometheusServer]:
    """Scrapes ``exposition`` every second; ready once the first scrape is queryable (~6 s)."""
    server = PrometheusServer(_binary(), target=exposition.address).start()
    try:
        server.wait_for("count(queue_depth)", lambda r: len(r) == 1 and r[0]["value"][1] == "2")
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh_prometheus() -> Iterator[PrometheusServer]:
    """A server of the test's own, to stop or pause; it scrapes nothing."""
    server = PrometheusServer(_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def prometheus_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("prometheus-pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA that did not sign the server's certificate."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="session")
def secure_prometheus(prometheus_pki: Pki) -> Iterator[PrometheusServer]:
    """HTTPS only, a client certificate required, and basic auth (web.config.file)."""
    server = PrometheusServer(_binary(), pki=prometheus_pki).start()
    try:
        yield server
    finally:
        server.cleanup()
