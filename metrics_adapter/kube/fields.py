"""A cursor over raw YAML/JSON that reads typed fields and records every problem with its path."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from metrics_adapter.kube.wire import parse_time
from scalers.errors import Problems, quote

INT32_MAX = 2**31 - 1


class Fields:
    """Typed reads from one JSON object at ``path``; problems go to the shared collector."""

    def __init__(self, raw: object, path: str, problems: Problems, warnings: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.warnings = warnings
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            problems.add(path, f"must be an object, not {quote(raw)}")
            raw = {}
        self.raw: Mapping[str, object] = raw

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.problems.add(self.at(key), "is required")
            return default
        if not isinstance(value, str):
            self.problems.add(self.at(key), f"{quote(value)} must be a string")
            return default
        return str(value)

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        required: bool = False,
    ) -> int | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.problems.add(self.at(key), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(self.at(key), f"{quote(value)} is not an integer")
            return default
        if minimum is not None and value < minimum:
            self.problems.add(self.at(key), f"{quote(value)} must be at least {minimum}")
            return default
        if value > INT32_MAX:  # every integer field of the CRDs is an int32
            self.problems.add(self.at(key), f"{quote(value)} must be at most {INT32_MAX}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problems.add(self.at(key), f"{quote(value)} is not a boolean")
            return default
        return value

    def enum(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in allowed:
            self.problems.add(self.at(key), f"{quote(value)} is not one of: {', '.join(allowed)}")
            return default
        return value

    def string_map(self, key: str) -> dict[str, str]:
        """A ``map[string]string``: numbers and booleans are refused, as the API server would."""
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problems.add(self.at(key), f"must be a map of strings, not {quote(value)}")
            return {}
        result = {}
        for k, v in value.items():
            if not isinstance(v, str):
                self.problems.add(
                    f"{self.at(key)}.{k}", f"{quote(v)} must be a string (quote it in YAML)"
                )
            else:
                result[str(k)] = v
        return result

    def strings(self, key: str) -> tuple[str, ...]:
        """A ``[]string`` (finalizers): an item that is not a string is a problem."""
        value = self.raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.add(self.at(key), f"must be a list of strings, not {quote(value)}")
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.problems.add(f"{self.at(key)}[{i}]", f"{quote(item)} must be a string")
        return tuple(item for item in value if isinstance(item, str))

    def time(self, key: str) -> datetime | None:
        """A Kubernetes timestamp (RFC 3339); ``None`` when absent."""
        text = self.string(key)
        if not text:
            return None
        moment = parse_time(text)
        if moment is None:
            self.problems.add(self.at(key), f"{quote(text)} is not an RFC 3339 time")
        return moment

    def child(self, key: str) -> Fields:
        return Fields(self.raw.get(key), self.at(key), self.problems, self.warnings)

    def items(self, key: str) -> Iterator[Fields]:
        value = self.raw.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.problems.add(self.at(key), f"must be a list, not {quote(value)}")
            return
        for i, item in enumerate(value):
            yield Fields(item, f"{self.at(key)}[{i}]", self.problems, self.warnings)

    def warn_unknown(self, known: frozenset[str]) -> None:
        for key in self.raw:
            if key not in known:
                self.warnings.append(f"{self.at(str(key))}: unknown field, ignored")
