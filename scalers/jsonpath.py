"""The part of gjson's path syntax ``valueLocation`` uses: ``a.b.0.c``, ``a\\.b``, ``list.#``."""

from __future__ import annotations


class PathNotFound(LookupError):
    """The path does not lead to a value in the document."""


def split_path(path: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def lookup(document: object, path: str) -> object:
    """The value at ``path`` of a decoded JSON document; raise :class:`PathNotFound`
    naming the first missing step."""
    node = document
    walked: list[str] = []
    for part in split_path(path):
        if isinstance(node, list):
            if part == "#":
                node = len(node)
            elif part.isascii() and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise PathNotFound(_where(walked, part))
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PathNotFound(_where(walked, part))
        walked.append(part)
    return node


def _where(walked: list[str], part: str) -> str:
    prefix = ".".join(walked)
    return f"{prefix + '.' if prefix else ''}{part}"
