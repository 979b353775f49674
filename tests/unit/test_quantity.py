"""Kubernetes quantities as the HPA reads them (keda-semantics §3, "Response")."""

from __future__ import annotations

import math

import pytest

from scalers.quantity import format_quantity, parse_quantity


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (10, "10"),
        (1.5, "1500m"),
        (1500, "1500"),
        (2000, "2k"),
        (0, "0"),
        (0.0, "0"),
        (0.0004, "0"),
        (0.0005, "1m"),
        (0.0015, "2m"),
        (0.0025, "3m"),
        (0.1 + 0.2, "300m"),
        (1e6, "1M"),
        (1234567, "1234567"),
        (2.5e9, "2500M"),
        (3e9, "3G"),
        (1e18, "1E"),
        (999.9999, "1k"),
    ],
)
def test_format_quantity_is_canonical_milli_rounded(value: float, text: str) -> None:
    assert format_quantity(value) == text


@pytest.mark.parametrize("value", [-1, -0.0004, -2000, math.nan, math.inf, -math.inf])
def test_format_quantity_never_serves_negative_nan_or_inf(value: float) -> None:
    assert format_quantity(value) == "0"


def test_format_quantity_of_a_huge_value_does_not_raise() -> None:
    assert parse_quantity(format_quantity(1e30)) == pytest.approx(1e30)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500m", 1.5),
        ("2k", 2000.0),
        ("1Gi", 2.0**30),
        ("1.5Ki", 1536.0),
        ("1e3", 1000.0),
        ("2E-3", 0.002),
        ("0.5", 0.5),
        (".5", 0.5),
        ("-1", -1.0),
        ("+2", 2.0),
        ("3M", 3e6),
        ("100u", 0.0001),
        (" 7 ", 7.0),
    ],
)
def test_parse_quantity(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1.2.3", "1KB", "e3", "1e", "k", "1 k", "1ki", "0x10", "nan", "inf", "1_000"],
)
def test_parse_quantity_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("text", ["0", "1", "10", "1500m", "1m", "2k", "1M", "2500M", "7G", "1E"])
def test_canonical_text_round_trips(text: str) -> None:
    assert format_quantity(parse_quantity(text)) == text
