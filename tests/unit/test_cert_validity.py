"""How long self-managed certificates live: ``--serving-cert-validity`` and
``--ca-cert-validity``, checked at the edge and honoured by the renewal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import cast

import pytest

from metrics_adapter.certs.issue import issue_serving, new_ca
from metrics_adapter.certs.self_managed import SelfManaged, Stored
from metrics_adapter.config.settings import Settings
from metrics_adapter.kube.client import KubeClient


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"serving_cert_validity": 599.0},
            "--serving-cert-validity: 599 must be at least 600 seconds",
        ),
        (
            {"serving_cert_validity": 3600.0, "ca_cert_validity": 1800.0},
            r"--ca-cert-validity: 1800 must be at least --serving-cert-validity \(3600\)",
        ),
    ],
)
def test_a_validity_too_short_is_refused_by_name(flags: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(scaledobjects=Path("."), **flags)  # type: ignore[arg-type]


def keeper(serving: float, ca: float) -> SelfManaged:
    """Only the renewal's arithmetic runs: no request is made."""
    return SelfManaged(
        cast(KubeClient, None),
        "keda",
        "certs",
        "metrics-adapter",
        None,
        lambda pair: None,
        serving_validity=dt.timedelta(seconds=serving),
        ca_validity=dt.timedelta(seconds=ca),
    )


def life_after_now(not_after: dt.datetime) -> float:
    return (not_after - dt.datetime.now(dt.UTC)).total_seconds()


def test_new_certificates_live_as_long_as_the_flags_say() -> None:
    stored = keeper(600, 1800)._renewed(None, dt.datetime.now(dt.UTC))
    assert 590 < life_after_now(stored.serving.not_after) <= 600
    assert 1790 < life_after_now(stored.ca.not_after) <= 1800
    assert stored.serving.signed_by(stored.ca)


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    """A CA made under shorter flags signs a pair that ends with it, not after it."""
    now = dt.datetime.now(dt.UTC)
    short = keeper(600, 900)._renewed(None, now)
    damaged = Stored(short.ca, (), issue_serving(new_ca("elsewhere"), ["metrics-adapter"]))
    renewed = keeper(3000, 3000)._renewed(damaged, now)
    assert renewed.ca == short.ca and renewed.serving.signed_by(short.ca)
    assert renewed.serving.not_after == short.ca.not_after
