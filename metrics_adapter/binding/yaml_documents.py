"""YAML text to documents, with the safe loader (libyaml's when installed), for the files of
standalone mode.

YAML allows scalars Python cannot make: an integer of over 4,300 digits, a 13th month.
PyYAML raises a bare ``ValueError`` for those, naming neither the document nor the field;
here the error names both, and the value, like every other problem of an object:
``document 0: spec.minReplicaCount: "99999…" is out of range (5000 digits)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from scalers.errors import quote

# libyaml's loader is ~10x faster than the pure-Python one; same safe subset of YAML.
_BASE: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ScalarError(ValueError):
    """A scalar that YAML allows and Python cannot make; the message says where it is."""


class _Unmade(ValueError):
    def __init__(self, node: yaml.ScalarNode, message: str) -> None:
        super().__init__(message)
        self.node = node


class _Loader(_BASE):  # type: ignore[misc]
    """The safe loader, whose impossible scalars raise :class:`_Unmade` with their node."""


def _checked(tag: str, message: Callable[[str, ValueError], str]) -> None:
    construct = _Loader.yaml_constructors[tag]

    def checked(loader: Any, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except ValueError as exc:
            raise _Unmade(node, message(str(node.value), exc)) from exc

    _Loader.add_constructor(tag, checked)


_checked(
    "tag:yaml.org,2002:int",
    lambda text, _: f"{quote(text)} is out of range ({len(text.strip('+-'))} digits)",
)
_checked("tag:yaml.org,2002:timestamp", lambda text, exc: f"{quote(text)} is not a date ({exc})")


def load_all(text: str) -> list[Any]:
    """Every document of ``text``, empty ones included as ``None``. Raises
    :class:`yaml.YAMLError` for text that is not YAML, :class:`ScalarError` for a scalar
    Python cannot make, and ``RecursionError`` for nesting deeper than Python recurses."""
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except _Unmade as exc:
        raise ScalarError(f"{_place(text, exc.node)}: {exc}") from None


def _place(text: str, target: yaml.Node) -> str:
    """``document <n>: <field path>`` of the node at ``target``'s position in ``text``."""
    at = target.start_mark.index
    try:
        for number, root in enumerate(yaml.compose_all(text, Loader=_BASE)):
            path = _path_to(root, at, "", set())
            if path is not None:
                return f"document {number}: {path or '(the document)'}"
    except (yaml.YAMLError, RecursionError):
        pass
    return f"line {target.start_mark.line + 1}"


def _path_to(node: yaml.Node, at: int, path: str, seen: set[int]) -> str | None:
    if isinstance(node, yaml.ScalarNode):
        return path if node.start_mark.index == at else None
    if id(node) in seen:  # an alias of a node it is inside of: &loop [*loop]
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            found = _path_to(value, at, f"{path}.{name}" if path else str(name), seen)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _path_to(item, at, f"{path}[{index}]", seen)
            if found is not None:
                return found
    return None
