"""The one exception tree of metrics-adapter.

It is rooted here, in the lowest layer, so that scalers and the service share it::

    MetricsAdapterError
    ├── ConfigError              bad user input: every problem of one object, with field paths
    ├── ScalerError              an event source could not be read (never a zero)
    │   ├── SourceUnreachable    connection refused, DNS, TLS
    │   │   └── SourceTimeout    no answer within the timeout
    │   └── SourceResponseError  the source answered, but not with what the trigger needs
    ├── APIError                 (metrics_adapter.errors) mapped to a Kubernetes Status
    └── KubeError                (metrics_adapter.errors) a call to kube-apiserver failed
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class MetricsAdapterError(Exception):
    """Root of every error metrics-adapter raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One wrong field: ``triggers[1].metadata.lagThreshold: "ten" is not a number``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(MetricsAdapterError):
    """A user's object cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, subject: str, problems: Iterable[Problem]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        super().__init__(f"{subject}: {self.reasons}")

    @property
    def reasons(self) -> str:
        """Every problem in one line, without the subject: ``a.b: ...; c: ...``."""
        return "; ".join(str(p) for p in self.problems)


class Problems:
    """Collects problems while parsing so that one pass reports all of them."""

    def __init__(self) -> None:
        self._items: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self._items.append(Problem(path, message))

    def extend(self, other: Iterable[Problem]) -> None:
        self._items.extend(other)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self._items)

    def raise_for(self, subject: str) -> None:
        if self._items:
            raise ConfigError(subject, self._items)


class ScalerError(MetricsAdapterError):
    """Reading an event source failed. Callers must treat it as "unknown", never as zero."""


class SourceUnreachable(ScalerError):
    """The source could not be reached at all."""


class SourceTimeout(SourceUnreachable):
    """The source did not answer within the timeout."""


class SourceResponseError(ScalerError):
    """The source answered, but the answer does not hold what the trigger asks for."""


QUOTE_LIMIT = 120
"""Characters of a value a message shows; a hostile value must not make a huge message."""


def quote(value: object) -> str:
    """A user's value as it appears in messages: ``"ten"``, with escapes, never Python's repr;
    JSON-like, cut with ``…`` after about :data:`QUOTE_LIMIT` characters or 8 levels deep, so
    that self-referencing or enormous values still quote quickly."""
    out: list[str] = []
    _render(value, out, [QUOTE_LIMIT], 0)
    return "".join(out)


def _render(value: object, out: list[str], budget: list[int], depth: int) -> None:
    if budget[0] <= 0:
        return
    if depth > 8:
        piece = "…"
    elif isinstance(value, Mapping):
        _render_items(list(value.items()), "{", "}", out, budget, depth)
        return
    elif isinstance(value, list | tuple | set | frozenset):
        _render_items(list(value), "[", "]", out, budget, depth)
        return
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        piece = f"<a {value.bit_length()}-bit integer>"  # str() of it may even raise
    else:
        try:
            piece = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, TypeError):
            piece = f"<{type(value).__name__}>"
    if len(piece) > budget[0]:
        piece = piece[: budget[0]] + "…"
    budget[0] -= len(piece)
    out.append(piece)


def _render_items(
    items: list[Any], opening: str, closing: str, out: list[str], budget: list[int], depth: int
) -> None:
    out.append(opening)
    for i, item in enumerate(items):
        if budget[0] <= 0:
            out.append("…")
            break
        if i:
            out.append(", ")
        if opening == "{":
            key, item = item
            _render(str(key), out, budget, depth + 1)
            out.append(": ")
        _render(item, out, budget, depth + 1)
    out.append(closing)
