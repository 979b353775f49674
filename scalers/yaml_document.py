"""YAML answers read as KEDA's ``metrics-api`` trigger reads them (``format: yaml``).

KEDA decodes the answer with ``gopkg.in/yaml.v3`` into a ``map[string]interface{}`` and
walks ``valueLocation`` with its own ``GetValueByPath``, not gjson. So:

- plain scalars follow yaml.v3's resolver (YAML 1.2 core, plus ``_`` in numbers, ``0b``,
  ``0o`` and Go's octal ``012``): ``yes``, ``on`` and ``NaN`` stay strings, where PyYAML's
  YAML 1.1 would read booleans and numbers; a timestamp is not a number to either
  (checked against yaml.v3 v3.0.1 itself);
- the top level must be a mapping, only the first document counts, duplicate keys fail;
- the path is split at every ``.`` (no escapes, no ``#``); a list is entered by index;
  the walk stops at the first scalar, even with steps left (``count.x`` reads ``count``),
  and a path that ends on a mapping or a list does not lead to a value.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_PLAIN = "!go-plain"
_STANDARD = "tag:yaml.org,2002:"


class _Loader(yaml.SafeLoader):
    """Composes nodes only: every plain scalar is tagged :data:`_PLAIN` for :func:`_resolve`."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        None: [(_PLAIN, re.compile(r".*", re.S))]
    }


class YamlError(ValueError):
    """The answer is not YAML KEDA could decode into a mapping."""


def parse(body: str) -> dict[str, object] | None:
    """The first document: a mapping, or ``None`` when empty (which no path leads into)."""
    try:
        node = next(iter(yaml.compose_all(body, Loader=_Loader)), None)
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).replace("\n", " ")) from None
    if node is None:
        return None
    value = _value(node, top=True)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise YamlError(f"the document is a {_kind(value)}, expected a mapping")
    return value


def _value(node: yaml.Node, *, top: bool = False) -> object:
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_value(item) for item in node.value]
    assert isinstance(node, yaml.MappingNode)
    mapping: dict[str, object] = {}
    merged: dict[str, object] = {}
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.tag == _PLAIN
            and key_node.value == "<<"
        ):
            for source in _merge_sources(value_node):
                for key, value in source.items():
                    merged.setdefault(key, value)
            continue
        # yaml.v3 writes a key of the top mapping as its text; deeper, as Go's %v of its value
        key = key_node.value if top and isinstance(key_node, yaml.ScalarNode) else _key(key_node)
        if key in mapping:
            raise YamlError(
                f"line {key_node.start_mark.line + 1}: mapping key {key!r} already defined"
            )
        mapping[key] = _value(value_node)
    return {**merged, **mapping}


def _merge_sources(node: yaml.Node) -> list[dict[str, object]]:
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    values = [_value(source) for source in sources]
    if not all(isinstance(value, dict) for value in values):
        raise YamlError("map merge requires a mapping or a list of mappings")
    return [value for value in values if isinstance(value, dict)]


def _key(node: yaml.Node) -> str:
    value = _value(node)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, int | str):
        return str(value)
    raise YamlError(f"line {node.start_mark.line + 1}: a {_kind(value)} as a mapping key")


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest repr, exponent from 1e21 (``1e+21``), ``+Inf``."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    return re.sub(r"e([+-]?)0*(\d+)", lambda m: f"e{m.group(1) or '+'}{m.group(2).zfill(2)}", text)


_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[0-9]+)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}


def _scalar(node: yaml.ScalarNode) -> object:
    if node.tag != _PLAIN and node.tag not in (
        f"{_STANDARD}{t}" for t in ("int", "float", "bool", "null")
    ):
        return node.value  # quoted, or !!str, or a tag yaml.v3 leaves as text
    return _resolve(node.value)


def _resolve(text: str) -> object:
    """yaml.v3's ``resolve`` of a plain scalar, as it decodes into ``interface{}``."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    plain = text.replace("_", "")
    if text[:1] in "+-0123456789" and _INT.fullmatch(plain):
        number = _go_int(plain)
        if number is not None:
            return number
    if text[:1] in "+-.0123456789" and _FLOAT.fullmatch(plain if text[:1] != "." else text):
        return float(plain if text[:1] != "." else text)
    return text


def _go_int(plain: str) -> int | None:
    """Go's ``ParseInt(s, 0, 64)`` (then ``ParseUint``): a leading ``0`` is octal."""
    sign = -1 if plain.startswith("-") else 1
    digits = plain.lstrip("+-").lower()
    base = {"0x": 16, "0o": 8, "0b": 2}.get(
        digits[:2], 8 if len(digits) > 1 and digits[0] == "0" else 10
    )
    try:
        number = sign * int(digits[2:] if base in (16, 2) or digits[:2] == "0o" else digits, base)
    except ValueError:
        return None
    return number if -(2**63) <= number < 2**64 else None


def _kind(value: object) -> str:
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


class PathError(LookupError):
    """``valueLocation`` does not lead to a value."""


def value_at(document: dict[str, object] | None, path: str) -> object:
    """KEDA's ``GetValueByPath``: see the module docstring."""
    current: object = document or {}
    for key in path.split("."):
        if isinstance(current, list):
            current = {str(i): v for i, v in enumerate(current)}
        assert isinstance(current, dict)
        if key not in current:
            raise PathError(f"key {key!r} not found in path {path!r}")
        current = current[key]
        if not isinstance(current, dict | list):
            return current
    raise PathError(f"path {path!r} does not lead to a value")
