"""Kubernetes label selectors, parsed as apimachinery's ``labels.Parse`` parses them.

A selector a trigger names (``podSelector``) is sent to kube-apiserver, which would refuse a
bad one on every poll; parsing it here, with the same grammar and the same key and value
rules, refuses it once, when the object is read, naming the value. The parsed selector's
text is the one ``Selector.String()`` writes (requirements by key, set values sorted,
spaces dropped), so selectors written differently but meaning the same are one upstream
query.

The grammar, equality- and set-based: ``app=x,tier in (a,b),!legacy,track!=canary,gen>3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOLS = frozenset({")", ",", "!", "==", "=", ">", "<", "!=", "("})
_KEYWORDS = frozenset({"in", "notin"})
_ID, _END = "identifier", "end of string"
_OPERATORS = ("in", "notin", "=", "==", "!=", "gt", "lt")
"""As apimachinery lists its binary operators in the message of a bad one."""

_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(f"^{_NAME}$")
_VALUE_RE = re.compile(f"^({_NAME})?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT64 = re.compile(r"^[+-]?[0-9]+$")
MAX_NAME, MAX_PREFIX = 63, 253


class SelectorError(ValueError):
    """The text is not a label selector; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    """``=``, ``==``, ``!=``, ``in``, ``notin``, ``>``, ``<``, ``exists`` or ``!`` (does not
    exist)."""
    values: tuple[str, ...] = ()
    """Sorted and unique, as apimachinery keeps them."""

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        joined = ",".join(self.values)
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({joined})"
        return f"{self.key}{self.operator}{joined}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """The selector ``text`` (empty: every object); raise :class:`SelectorError`."""
    tokens = _lex(text)
    parser = _Parser(tokens)
    requirements = parser.parse()
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))  # stable, as Go's


def _lex(text: str) -> list[tuple[str, str]]:
    """``(kind, literal)`` tokens: kind is the symbol or keyword itself, ``identifier``, or
    ``end of string``. Symbols are matched longest first (``!=`` before ``!``)."""
    tokens: list[tuple[str, str]] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos == size:
            tokens.append((_END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            symbol = text[pos]
            if text[pos : pos + 2] in _SYMBOLS:
                symbol = text[pos : pos + 2]
            tokens.append((symbol, symbol))
            pos += len(symbol)
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        tokens.append((word if word in _KEYWORDS else _ID, word))


class _Parser:
    """apimachinery's recursive-descent parser: where a value is expected, ``in`` and
    ``notin`` are plain words (``env in (in)`` is valid)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._as(self.tokens[self.pos], values)

    def take(self, values: bool = True) -> tuple[str, str]:
        self.pos += 1
        return self._as(self.tokens[self.pos - 1], values)

    @staticmethod
    def _as(token: tuple[str, str], values: bool) -> tuple[str, str]:
        return (_ID, token[1]) if values and token[0] in _KEYWORDS else token

    def parse(self) -> list[Requirement]:
        found: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == _END:
                return found
            if kind not in (_ID, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or end of string")
            found.append(self.requirement())
            kind, literal = self.take()
            if kind == _END:
                return found
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or end of string")
            kind, literal = self.peek()
            if kind not in (_ID, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_operator()
        if operator in ("exists", "!"):
            return _requirement(key, operator, ())
        kind, literal = self.take(values=False)
        if kind not in ("in", "notin", "=", "==", "!=", ">", "<"):
            raise SelectorError(f"found '{literal}', expected: {', '.join(_OPERATORS)}")
        values = self.set_values() if kind in ("in", "notin") else self.exact_value()
        return _requirement(key, kind, tuple(sorted(values)))

    def key_and_operator(self) -> tuple[str, str]:
        kind, literal = self.take()
        negated = kind == "!"
        if negated:
            kind, literal = self.take()
        if kind != _ID:
            raise SelectorError(f"found '{literal}', expected: identifier")
        _check_key(literal)
        if negated:
            return literal, "!"
        return literal, ("exists" if self.peek()[0] in (_END, ",") else "")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (_END, ","):
            return {""}
        kind, literal = self.take()
        if kind != _ID:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}

    def set_values(self) -> set[str]:
        kind, literal = self.take()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == ")":  # "()" is the set of the empty value
            self.take()
            return {""}
        if kind not in (_ID, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.identifiers()
        if self.take()[0] != ")":
            raise SelectorError(f"found '{literal}', expected: ')'")
        return values

    def identifiers(self) -> set[str]:
        """Words between commas; an empty place (``(,a)``, ``(a,,b)``, ``(a,)``) is the
        empty value, as apimachinery reads it."""
        values: set[str] = set()
        while True:
            kind, literal = self.take()
            if kind == _ID:
                values.add(literal)
                after, shown = self.peek()
                if after == ")":
                    return values
                if after != ",":
                    raise SelectorError(f"found '{shown}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.add("")
                after = self.peek()[0]
                if after == ")":
                    values.add("")
                    return values
                if after == ",":
                    self.take()
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")


def _requirement(key: str, operator: str, values: tuple[str, ...]) -> Requirement:
    """apimachinery's ``NewRequirement``: every problem of the requirement at once."""
    problems = [*_key_problems(key)]
    if operator in (">", "<"):
        problems += [
            f"value '{v}' for '{operator}' must be an integer" for v in values if not _is_int64(v)
        ]
    for value in values:
        if len(value) > MAX_NAME:
            problems.append(f"value '{value}' must be no more than {MAX_NAME} characters")
        if not _VALUE_RE.match(value):
            problems.append(
                f"value '{value}' must be empty or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character"
            )
    if problems:
        raise SelectorError("; ".join(problems))
    return Requirement(key, operator, values)


def _check_key(key: str) -> None:
    problems = _key_problems(key)
    if problems:
        raise SelectorError("; ".join(problems))


def _key_problems(key: str) -> list[str]:
    """apimachinery's ``IsQualifiedName``: ``[prefix/]name``, the prefix a DNS subdomain."""
    parts = key.split("/")
    if len(parts) > 2:
        return [f"key '{key}' must be a name with an optional DNS subdomain prefix and '/'"]
    name = parts[-1]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append(f"key '{key}': prefix part must be non-empty")
        else:
            if len(prefix) > MAX_PREFIX:
                problems.append(f"key '{key}': prefix must be no more than {MAX_PREFIX} characters")
            if not _SUBDOMAIN_RE.match(prefix):
                problems.append(
                    f"key '{key}': prefix must be a lowercase DNS subdomain (e.g. example.com)"
                )
    if not name:
        problems.append(f"key '{key}': name part must be non-empty")
        return problems
    if len(name) > MAX_NAME:
        problems.append(f"key '{key}': name part must be no more than {MAX_NAME} characters")
    if not _NAME_RE.match(name):
        problems.append(
            f"key '{key}': name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def _is_int64(text: str) -> bool:
    return bool(_INT64.match(text)) and -(2**63) <= int(text) < 2**63
