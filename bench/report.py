"""What every benchmark prints: medians and percentiles, one table, one summary line.

A benchmark module exposes ``run(argv) -> list[str]``: it prints its tables as it goes and
returns its summary lines, which :func:`main` prints last (``python -m bench.X``) and
``python -m bench`` collects from every benchmark to print at the very end.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence

Cell = str | int | float | None


def median(values: Iterable[float]) -> float:
    found = list(values)
    if not found:
        raise ValueError("median of nothing")
    return float(statistics.median(found))


def percentile(values: Iterable[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): p50 is the median."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError(f"p{pct:g} of nothing")
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cell(value: Cell, digits: int = 2) -> str:
    """Integers with thousands separators, floats with ``digits`` decimals, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return value


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """A Markdown table (pasted as is into bench/README.md), numbers right-aligned."""
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in body) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if right else c.ljust(w)
            for c, w, right in zip(cells, widths, numeric, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if r else "-" * (w + 2)
            for w, r in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([f"\n{title}\n", line(headers), rule, *(line(r) for r in body), ""])


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
    print(table(title, headers, rows), flush=True)


def summary(name: str, **fields: Cell) -> str:
    """``name: key=value ...``, the machine-readable last lines (no thousands separators)."""
    parts = []
    for key, value in fields.items():
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text}")
    return f"{name}: " + " ".join(parts)


def note(text: str) -> None:
    """Progress on stderr, so stdout holds only the tables and the summary lines."""
    print(text, file=sys.stderr, flush=True)


def main(run: Callable[[Sequence[str] | None], list[str]]) -> None:
    for line in run(None):
        print(line, flush=True)
