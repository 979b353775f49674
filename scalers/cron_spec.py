"""The cron expressions KEDA accepts: robfig/cron v3's standard five fields, and no more.

KEDA parses ``start`` and ``end`` with ``cron.NewParser(Minute | Hour | Dom | Month | Dow)``
(``pkg/scalers/cron_scaler.go``). That grammar is narrower than croniter's in some ways
(no ``L``, ``W``, ``#``, ``@hourly``, day of week 7) and wider in others (``?`` in any
field, ``+5``, ``5/15`` meaning ``5-59/15``). :func:`canonical` checks an expression by
robfig's rules and rewrites it in the plain form croniter reads the same way, so what we
accept, and when it fires, is KEDA's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from scalers.errors import quote


@dataclass(frozen=True, slots=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """Lower-case names for ``low``, ``low + 1``, ... (robfig's ``months`` and ``dow``)."""


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day of month", 1, 31),
    _Bounds(
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    _Bounds("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


@functools.lru_cache(maxsize=4096)
def canonical(expr: str) -> str:
    """``expr`` as croniter should read it; ``ValueError`` naming the field if robfig/cron
    refuses it. Cached: thousands of triggers share a few schedules."""
    if expr.strip().startswith("@"):
        raise ValueError("descriptors such as @hourly are not accepted; write five fields")
    fields = expr.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}")
    return " ".join(_field(text, bounds) for text, bounds in zip(fields, _FIELDS, strict=True))


def _field(text: str, bounds: _Bounds) -> str:
    parts = [p for p in text.split(",") if p]  # Go's FieldsFunc drops empty parts
    if not parts:
        raise ValueError(f"{bounds.name}: empty")
    return ",".join(_range(part, bounds) for part in parts)


def _range(expr: str, bounds: _Bounds) -> str:
    """robfig's ``getRange``: ``*``/``?``, ``a``, ``a-b``, each with an optional ``/step``."""
    range_and_step = expr.split("/")
    if len(range_and_step) > 2:
        raise ValueError(f"{bounds.name}: too many slashes in {quote(expr)}")
    low_high = range_and_step[0].split("-")
    if len(low_high) > 2:
        raise ValueError(f"{bounds.name}: too many hyphens in {quote(expr)}")
    star = low_high[0] in ("*", "?")
    if star:
        start, end = bounds.low, bounds.high
    else:
        start = _number(low_high[0], bounds)
        end = _number(low_high[1], bounds) if len(low_high) == 2 else start
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1], _Bounds(bounds.name, 0, 2**31))
        if len(low_high) == 1 and not star:  # robfig: "5/15" runs to the field's end
            end = bounds.high
    if start < bounds.low or end > bounds.high:
        raise ValueError(f"{bounds.name}: {quote(expr)} is outside {bounds.low}-{bounds.high}")
    if start > end:
        raise ValueError(f"{bounds.name}: {quote(expr)} begins after it ends")
    if step == 0:
        raise ValueError(f"{bounds.name}: the step of {quote(expr)} must be positive")
    if star and step == 1:
        return "*"  # keeps croniter's day-of-month/day-of-week rule the same as robfig's
    if step != 1:
        return f"{start}-{end}/{step}"
    return f"{start}-{end}" if start != end else str(start)


def _number(text: str, bounds: _Bounds) -> int:
    """robfig's ``parseIntOrName``: a name of the field, else Go's ``Atoi``, not negative."""
    if text.lower() in bounds.names:
        return bounds.low + bounds.names.index(text.lower())
    digits = text.removeprefix("+")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise ValueError(f"{bounds.name}: {quote(text)} is not a number")
    return int(digits)
