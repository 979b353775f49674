"""What a check finds, and the one message that names every finding in a stable order.

KEDA returns the first failing check, picked from a Go map (so which one is random). Here
every finding is reported, sorted by KEDA's rule order (its §2.2 numbering), then by field
path (``triggers[2]`` before ``triggers[10]``), then by text; the parser's problems come after
KEDA's rules. Where a KEDA rule says what the parser also says about the same field (replica
bounds, duplicate trigger names…), KEDA's wording is kept, because clients match on it, and
the parser's sentence is dropped: each fact is stated once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from scalers.errors import ConfigError, Problem

OTHER_SCALED_OBJECT = 1
OTHER_SCALED_OBJECT_HPA = 2
FOREIGN_HPA = 3
MISSING_REQUESTS = 4
SCALE_TO_ZERO = 5
REPLICAS = 6
FALLBACK = 7
SCALING_MODIFIERS = 8
NAME_LENGTH = 9
TRIGGERS = 10
POD_IDENTITY = 11
OAUTH2 = 12
PARSER = 20
"""After KEDA's rules: what our own parser (or binding) finds."""

INVALID_SPEC = "invalid-spec"
"""The reason of the parser's problems (KEDA has none: its Go types and the CRD schema refuse
those before the webhook is asked)."""
MAX_SHOWN = 100
MAX_MESSAGE = 32 * 1024
"""Findings, and characters, one message holds: a hostile object with thousands of bad
triggers, or field names of kilobytes, still gets an answer of bounded size, which says how
many more problems there are."""

_NUMBERS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason to refuse: KEDA's rule number and reason (the metrics label), the field."""

    rule: int
    reason: str
    path: str
    message: str
    supersedes: tuple[str, ...] = ()
    """Paths whose parser problems state this same fact in other words."""

    @property
    def problem(self) -> Problem:
        return Problem(self.path, self.message)


def parser_findings(problems: Iterable[Problem]) -> list[Finding]:
    return [Finding(PARSER, INVALID_SPEC, p.path, p.message) for p in problems]


def merged(findings: Iterable[Finding]) -> list[Finding]:
    """Every finding once, in the stable order; the parser's problems that a KEDA rule
    states in its own words are dropped."""
    found = set(findings)
    covered = {path for f in found for path in f.supersedes}
    kept = (f for f in found if f.rule != PARSER or f.path not in covered)
    return sorted(kept, key=_order)


def _order(f: Finding) -> tuple[int, list[tuple[str, int]], str]:
    parts = _NUMBERS.split(f.path)  # text, number, text, …: numbers compare as numbers
    key = [
        (text, int(number or -1))
        for text, number in zip(parts[::2], [*parts[1::2], ""], strict=True)
    ]
    return f.rule, key, f.message


def refusal(subject: str, findings: list[Finding]) -> str:
    """``ScaledObject ns/name: path: message; path: message`` (the repository's one format
    for an object's problems, as in ``Ready=False``)."""
    shown: list[Problem] = []
    size = len(subject)
    for f in findings[:MAX_SHOWN]:
        size += len(f.path) + len(f.message) + 4
        if size > MAX_MESSAGE:
            break
        shown.append(f.problem)
    if len(shown) < len(findings):
        shown.append(Problem("", f"and {len(findings) - len(shown)} more"))
    return str(ConfigError(subject, shown))
