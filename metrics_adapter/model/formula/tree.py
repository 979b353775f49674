"""The syntax tree a formula parses into: frozen nodes that carry their offset in the text KEDA
compiles (``float(…)`` around the formula), so that every message can point at its column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

MAX_DEPTH = 128
"""Levels of nesting: bounds the recursion of the parser, the checker and the evaluator."""


class Fault(Exception):
    """A problem at an offset of the source; the public API turns it into a FormulaError."""

    def __init__(self, message: str, pos: int | None) -> None:
        self.message, self.pos = message, pos


@dataclass(frozen=True, slots=True)
class Const:
    value: int | float | bool | None
    pos: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    """``a < b <= c``: expr's ``a < b && b <= c``, with ``b`` evaluated once."""

    operands: tuple[Node, ...]
    ops: tuple[tuple[str, int], ...]

    @property
    def pos(self) -> int:
        return self.ops[0][1]


@dataclass(frozen=True, slots=True)
class Cond:
    test: Node
    then: Node
    other: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


Node: TypeAlias = "Const | Name | Unary | Binary | Compare | Cond | Call"


def children(node: Node) -> tuple[Node, ...]:
    match node:
        case Unary():
            return (node.operand,)
        case Binary():
            return node.left, node.right
        case Compare():
            return node.operands
        case Cond():
            return node.test, node.then, node.other
        case Call():
            return node.args
    return ()


def depth_exceeded(root: Node) -> Node | None:
    """The first node deeper than MAX_DEPTH, found without recursion (a long chain ``a+a+…``
    is deep, though the parser builds it in a loop)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        stack.extend((child, depth + 1) for child in children(node))
    return None
