"""The Prometheus text exposition format, read as KEDA's ``metrics-api`` trigger reads it.

KEDA (``format: prometheus``) parses the answer with ``expfmt.TextParser`` and its
``valueLocation`` with PromQL's ``ParseMetricSelector``, then returns the first sample of
the named family whose labels hold every matcher's value. Two of its rules surprise:

- a matcher's operator is not applied: ``{queue!="a"}`` and ``{queue=~"a"}`` both pick the
  sample whose ``queue`` label is ``a``, and a label the sample lacks never matches;
- only untyped, counter and gauge samples have a value: a summary's or histogram's
  ``_sum``, ``_count`` and ``_bucket`` lines belong to their family and are never found.

The syntax is expfmt's (v0.66.1, KEDA's, checked against it): a sample line is
``name{labels} value [timestamp]`` with nothing after it, names may be quoted
(``{"my.metric", "a.b"="x"}``), ``HELP`` and ``TYPE`` come at most once per family and
``TYPE`` before its samples. Any syntax error fails the whole answer, as for KEDA.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_PLAIN_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PLAIN_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = ("counter", "gauge", "summary", "untyped", "histogram", "gauge_histogram")
_SIMPLE = ("counter", "gauge", "untyped")
"""Types whose samples carry one value KEDA reads; the others' samples are skipped."""
_BLANK = " \t"
_TEXT_ESCAPES = {"\\": "\\", "n": "\n", '"': '"'}


class FormatError(ValueError):
    """The answer is not the text format: ``line 3: expected float as value, got "x"``."""


@dataclass(slots=True)
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: list[tuple[dict[str, str], float | None]] = field(default_factory=list)
    """Each sample's labels and value; ``None`` for a part of a summary or histogram."""


def parse_families(text: str) -> dict[str, Family]:
    """Every family with at least one sample, by name; raise :class:`FormatError`."""
    families: dict[str, Family] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            _parse_line(line.lstrip(_BLANK), families)
        except FormatError as exc:
            raise FormatError(f"line {number}: {exc}") from None
    return {name: family for name, family in families.items() if family.samples}


def _parse_line(line: str, families: dict[str, Family]) -> None:
    if not line:
        return
    if line.startswith("#"):
        _parse_comment(line[1:].lstrip(_BLANK), families)
        return
    reader = _Reader(line)
    labels: dict[str, str] = {}
    if line.startswith("{"):
        reader.pos += 1
        name = _read_labels(reader, None, labels)
    else:
        name = reader.metric_name()
        if not name:
            raise FormatError("invalid metric name")
        reader.skip_blanks()
        if reader.peek() == "{":
            reader.pos += 1
            _read_labels(reader, name, labels)
    reader.skip_blanks()
    family = _family(families, name)
    family.type = family.type or "untyped"
    special = {"summary": "quantile", "histogram": "le"}.get(family.type)
    if special in labels:  # a quantile or a bucket bound: a number, or the answer fails
        _parse_float(labels[special], f"expected float as value for {special!r} label")
    value = _parse_float(reader.until_blank())
    if reader.peek():
        reader.skip_blanks()
        stamp = reader.until_blank()
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", stamp) or not -(2**63) <= int(stamp) < 2**63:
            raise FormatError(f"expected integer as timestamp, got {stamp!r}")
        if reader.peek():  # even a trailing blank, as expfmt
            raise FormatError(f"spurious string after timestamp: {reader.line[reader.pos :]!r}")
    family.samples.append((labels, value if family.type in _SIMPLE else None))


def _parse_comment(body: str, families: dict[str, Family]) -> None:
    keyword, _, rest = _split_blank(body)
    if keyword not in ("HELP", "TYPE") or not rest:
        return  # any other comment, or a HELP/TYPE line that ends early: not an error
    reader = _Reader(rest.lstrip(_BLANK))
    name = reader.metric_name()
    after = reader.line[reader.pos :]
    if not after:
        return
    if after[0] not in _BLANK:
        raise FormatError("invalid metric name in comment")
    family = _family(families, name or "")
    text = after.lstrip(_BLANK)
    if not text:
        return
    if keyword == "HELP":
        if family.help is not None:
            raise FormatError(f"second HELP line for metric name {family.name!r}")
        family.help = _unescape(text)
        return
    if family.type is not None:
        raise FormatError(
            f"second TYPE line for metric name {family.name!r}, or TYPE reported after samples"
        )
    if text.lower() not in _TYPES:
        raise FormatError(f"unknown metric type {text!r}")
    family.type = text.lower()


def _family(families: dict[str, Family], name: str) -> Family:
    """expfmt's ``setOrCreateCurrentMF``: ``x_count`` and ``x_sum`` join a summary ``x``,
    and ``x_bucket`` too a histogram ``x``, when that family was seen first."""
    found = families.get(name)
    if found is not None:
        return found
    for suffixes, kind in (
        (("_count", "_sum"), "summary"),
        (("_count", "_sum", "_bucket"), "histogram"),
    ):
        for suffix in suffixes:
            base = families.get(name.removesuffix(suffix)) if len(name) > len(suffix) else None
            if name.endswith(suffix) and base is not None and base.type == kind:
                return base
    family = families[name] = Family(name)
    return family


def _read_labels(reader: _Reader, name: str | None, labels: dict[str, str]) -> str:
    """The label pairs after ``{``, up to ``}``; a line that starts with ``{`` names its
    metric inside (a bare, usually quoted, name). Returns the metric's name."""
    inside = name is None
    while True:
        reader.skip_blanks()
        if reader.peek() == "}":
            reader.pos += 1
            break
        label = reader.label_name()
        if not label:
            raise FormatError(f"invalid label name for metric {name or ''!r}")
        reader.skip_blanks()
        if reader.peek() != "=":
            if not inside:
                raise FormatError(f"expected '=' after label name, found {reader.peek()!r}")
            if name is not None:
                raise FormatError(f"multiple metric names for metric {name!r}")
            name = label
            if reader.peek() == ",":
                reader.pos += 1
                continue
            if reader.peek() == "}":
                reader.pos += 1
                break
            raise FormatError(f"unexpected end of metric name {reader.peek()!r}")
        reader.pos += 1
        if label == "__name__":
            raise FormatError('label name "__name__" is reserved')
        if label in labels:
            raise FormatError(f"duplicate label names for metric {name or ''!r}")
        reader.skip_blanks()
        labels[label] = reader.label_value()
        reader.skip_blanks()
        end = reader.peek()
        reader.pos += 1
        if end == "}":
            break
        if end != ",":
            raise FormatError(f"unexpected end of label value {labels[label]!r}")
    if name is None:
        raise FormatError("invalid metric name")
    return name


class _Reader:
    """A cursor over one line."""

    def __init__(self, line: str) -> None:
        self.line, self.pos = line, 0

    def peek(self) -> str:
        return self.line[self.pos : self.pos + 1]

    def skip_blanks(self) -> None:
        while self.peek() and self.peek() in _BLANK:
            self.pos += 1

    def until_blank(self) -> str:
        start = self.pos
        while self.peek() and self.peek() not in _BLANK:
            self.pos += 1
        return self.line[start : self.pos]

    def metric_name(self) -> str:
        return self._name(_PLAIN_NAME)

    def label_name(self) -> str:
        return self._name(_PLAIN_LABEL)

    def _name(self, plain: re.Pattern[str]) -> str:
        if self.peek() == '"':
            return self._quoted("name")
        found = plain.match(self.line, self.pos)
        if found is None:
            return ""
        self.pos = found.end()
        return found.group()

    def label_value(self) -> str:
        if self.peek() != '"':
            raise FormatError(f"expected '\"' at start of label value, found {self.peek()!r}")
        value = self._quoted("label value")
        if any("\udc80" <= char <= "\udcff" for char in value):  # undecodable bytes
            raise FormatError(f"invalid label value {value!r}")
        return value

    def _quoted(self, what: str) -> str:
        """A ``"…"`` string with expfmt's escapes (``\\\\``, ``\\n``, ``\\"``)."""
        end = self.pos + 1
        while True:
            end = self.line.find('"', end)
            if end < 0:
                raise FormatError(
                    f"{what} {self.line[self.pos + 1 :]!r} contains unescaped new-line"
                )
            backslashes = len(self.line[:end]) - len(self.line[:end].rstrip("\\"))
            if backslashes % 2 == 0:
                break
            end += 1
        text = _unescape(self.line[self.pos + 1 : end])
        self.pos = end + 1
        return text


def _unescape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) not in _TEXT_ESCAPES:
            raise FormatError(f"invalid escape sequence '\\{match.group(1)}'")
        return _TEXT_ESCAPES[match.group(1)]

    return re.sub(r"\\(.?)", replace, text, flags=re.S)


def _split_blank(text: str) -> tuple[str, str, str]:
    found = re.search(r"[ \t]", text)
    if found is None:
        return text, "", ""
    return text[: found.start()], found.group(), text[found.end() :]


def _parse_float(text: str, what: str = "expected float as value") -> float:
    """Go's ``strconv.ParseFloat`` as expfmt calls it: no hex, no ``_``, no overflow."""
    bad = FormatError(f"{what}, got {text!r}")
    if (
        not text.isascii()
        or text != text.strip()
        or any(c in text for c in "pP_")
        or text.lower() in ("+nan", "-nan")
    ):
        raise bad
    try:
        value = float(text)
    except ValueError:
        raise bad from None
    if math.isinf(value) and "inf" not in text.lower():
        raise bad  # 1e999: Go reports a range error
    return value


@dataclass(frozen=True, slots=True)
class Selector:
    """What ``valueLocation`` names: a metric and the label values a sample must have."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()


def find_value(families: dict[str, Family], selector: Selector) -> float:
    """KEDA's lookup: the first sample of the family with every label of the selector;
    raise :class:`LookupError` naming what is missing."""
    family = families.get(selector.name)
    if family is None:
        raise LookupError(f"metric {selector.name!r} not found")
    for labels, value in family.samples:
        if value is not None and all(labels.get(k) == v for k, v in selector.labels):
            return value
    raise LookupError("no untyped, counter or gauge sample of it has these labels")


_SELECTOR_TOKEN = re.compile(
    r"""\s*(?:(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    |(?P<op>=~|!~|!=|=)|(?P<punct>[{},]))""",
    re.X,
)
_GO_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"])|([0-7]{3})|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))",
    re.S,
)
_GO_CHARS = dict(zip("abfnrtv\\'\"", "\a\b\f\n\r\t\v\\'\"", strict=True))


def parse_selector(text: str) -> Selector:
    """PromQL's ``ParseMetricSelector`` (``name``, ``name{a="x", b!~"y"}``, ``{"my.name"}``),
    keeping what KEDA uses: the name and each matcher's label and value. Raise ValueError."""
    tokens = _selector_tokens(text)
    name: str | None = None
    if tokens and tokens[0][0] == "name":
        name = tokens.pop(0)[1]
    labels: list[tuple[str, str]] = []
    if tokens:
        if tokens.pop(0) != ("punct", "{") or not tokens or tokens[-1] != ("punct", "}"):
            raise ValueError("expected a metric name and its label matchers in {…}")
        for item in _split_matchers(tokens[:-1]):
            if len(item) == 1 and item[0][0] == "string":  # {"my.metric"}: the name
                label, value = "__name__", _unquote(item[0][1])
            elif len(item) == 3 and item[0][0] in ("name", "string") and item[1][0] == "op":
                label = item[0][1] if item[0][0] == "name" else _unquote(item[0][1])
                if item[2][0] != "string" or ":" in label:
                    raise ValueError(f"unexpected {' '.join(t for _, t in item)!r} in the matchers")
                value = _unquote(item[2][1])
                if item[1][1] in ("=~", "!~"):
                    _check_regex(value)
            else:
                raise ValueError(f"unexpected {' '.join(t for _, t in item)!r} in the matchers")
            if label == "__name__":
                if name is not None:
                    raise ValueError(f"metric name must not be set twice: {name!r} or {value!r}")
                name = value
            else:
                labels.append((label, value))
    if not name:
        raise ValueError("names no metric")
    return Selector(name, tuple(labels))


def _selector_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while text[pos:].strip():
        found = _SELECTOR_TOKEN.match(text, pos)
        if found is None or found.lastgroup is None:
            raise ValueError(f"unexpected {text[pos:].strip()[:20]!r}")
        tokens.append((found.lastgroup, found.group(found.lastgroup)))
        pos = found.end()
    return tokens


def _split_matchers(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The matchers between the braces, split at commas; one trailing comma is allowed."""
    items: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if token == ("punct", ","):
            if not items[-1]:
                raise ValueError("unexpected ',' in the matchers")
            items.append([])
        else:
            items[-1].append(token)
    return items[:-1] if not items[-1] else items


def _unquote(literal: str) -> str:
    """A PromQL string as Go's ``strconv.Unquote`` reads it (raw between backquotes)."""
    if literal[0] == "`":
        return literal[1:-1]

    def replace(match: re.Match[str]) -> str:
        char, octal, *hexes, bad = match.groups()
        if char is not None:
            return _GO_CHARS[char]
        if octal is not None:
            return chr(int(octal, 8))
        for digits in hexes:
            if digits is not None:
                return chr(int(digits, 16))
        raise ValueError(f"invalid escape sequence '\\{bad}' in {literal}")

    return _GO_ESCAPE.sub(replace, literal[1:-1])


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
