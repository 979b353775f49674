"""A real external scaler (:mod:`tests.support.external_scaler`) per test, plain or over TLS.

Each test has its own: it is in-process, starts in milliseconds, and its call counts are
the test's alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.external_scaler import ExternalScalerServer, serving
from tests.support.pki import Pki, make_pki


@pytest.fixture
async def scaler() -> AsyncIterator[ExternalScalerServer]:
    async with serving() as server:
        yield server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("external-pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second CA: its certificates are strangers to :func:`pki`'s."""
    return make_pki(tmp_path_factory.mktemp("external-other-pki"))


@pytest.fixture
async def tls_scaler(pki: Pki) -> AsyncIterator[ExternalScalerServer]:
    async with serving(pki) as server:
        yield server


@pytest.fixture
async def mtls_scaler(pki: Pki) -> AsyncIterator[ExternalScalerServer]:
    async with serving(pki, mutual=True) as server:
        yield server
