"""How both kinds of report write a trigger's reading and lay out their tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from metrics_adapter.control.activator import TriggerState
from metrics_adapter.metrics.store import Reading


def readable(reading: Reading) -> bool:
    """A value to compute with: the HPA holds, and KEDA's ScaledJob poll leaves the trigger
    out, while it fails or has no value yet."""
    return reading.value is not None and reading.error is None


def activation(state: TriggerState) -> str:
    """``lag 50 > 0``; or why there is nothing to compare (the error is listed apart)."""
    reading = state.reading
    if reading.error is not None:
        return "failing"
    if reading.value is None:
        return "no value yet"
    return state.why().removeprefix(state.bound.metric_name).strip()


def age_seconds(reading: Reading, now: datetime) -> float | None:
    """Seconds since the reading's value was measured; ``None`` before any value."""
    if reading.measured_at is None:
        return None
    return max(0.0, (now - reading.measured_at).total_seconds())


def value_cell(value: float | None, error: str | None) -> str:
    return "error" if error else "-" if value is None else f"{value:g}"


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows of cells in aligned columns, indented under their object."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def warning_lines(warnings: Sequence[str]) -> list[str]:
    """One ``warning:`` line per field an object sets and nothing reads."""
    return [f"  warning: {w}" for w in warnings]
