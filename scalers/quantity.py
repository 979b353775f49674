"""Kubernetes quantities: KEDA's rounding and the canonical text the HPA parses."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

# Wide enough to hold any finite float, in milli units, as an integer (max ~1.8e308).
_WIDE = Context(prec=400)
_SUFFIXES = ("", "k", "M", "G", "T", "P", "E")
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))"  # number
    r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"  # exponent or suffix
)


def format_quantity(value: float) -> str:
    """Canonical DecimalSI text of ``value`` rounded to milli units, as KEDA ≥ 2.20 serves it.

    Negative values, NaN and infinities become ``"0"``: the HPA must never see them.
    """
    if not math.isfinite(value) or value <= 0:
        return "0"
    milli = int(
        Decimal(repr(value)).scaleb(3).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_WIDE)
    )
    if milli == 0:
        return "0"
    if milli % 1000:
        return f"{milli}m"
    whole, exp = milli // 1000, 0
    while whole % 1000 == 0 and exp < len(_SUFFIXES) - 1:
        whole //= 1000
        exp += 1
    return f"{whole}{_SUFFIXES[exp]}"


def parse_quantity(text: str) -> float:
    """Parse a Kubernetes quantity (``1500m``, ``2k``, ``1Gi``, ``1e3``) into a float."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc
    if exponent:
        value = value.scaleb(int(exponent[1:]))
    elif suffix in _BINARY_SI:
        value *= 2 ** _BINARY_SI[suffix]
    elif suffix:
        value = value.scaleb(_DECIMAL_SI[suffix])
    return float(value)
