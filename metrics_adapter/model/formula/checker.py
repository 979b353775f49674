"""Types as expr's checker derives them (checker/checker.go, checker/types.go, builtin
validation), knowing that every trigger is a float64: what it rejects, KEDA rejects when the
ScaledObject is applied."""

from __future__ import annotations

from collections.abc import Collection

from metrics_adapter.model.formula.runtime import (
    AGGREGATES,
    BOOL,
    FLOAT,
    INT,
    ONE_ARG,
    arithmetic,
    type_of,
    wrap,
)
from metrics_adapter.model.formula.tree import (
    Binary,
    Call,
    Compare,
    Cond,
    Const,
    Name,
    Node,
    Unary,
)

NIL, UNKNOWN = "nil", "unknown"
NUMBERS = (INT, FLOAT)
_OTHER_BUILTINS = frozenset({
    "len", "type", "string", "trim", "trimPrefix", "trimSuffix", "upper", "lower", "split",
    "splitAfter", "replace", "repeat", "join", "indexOf", "lastIndexOf", "hasPrefix",
    "hasSuffix", "toJSON", "fromJSON", "toBase64", "fromBase64", "now", "duration", "date",
    "timezone", "first", "last", "get", "take", "keys", "values", "toPairs", "fromPairs", "sort",
    "concat", "flatten", "uniq", "bitand", "bitor", "bitxor", "bitnand", "bitnot", "bitshl",
    "bitshr", "bitushr",
})  # fmt: skip


def _either(left: str, right: str, *allowed: str) -> bool:
    """expr's ``or``: one side unknown and the other unknown or allowed."""
    return (left == UNKNOWN and (right == UNKNOWN or right in allowed)) or (
        right == UNKNOWN and left in allowed
    )


def _binary_type(op: str, left: str, right: str) -> str | None:
    both_numbers = left in NUMBERS and right in NUMBERS
    if op in ("==", "!="):
        comparable = UNKNOWN in (left, right) or NIL in (left, right) or both_numbers
        return BOOL if comparable or left == right else None
    if op in ("||", "or", "&&", "and"):
        return BOOL if left == right == BOOL or _either(left, right, BOOL) else None
    if op in ("<", ">", "<=", ">="):
        return BOOL if both_numbers or _either(left, right, *NUMBERS) else None
    if op in ("+", "-", "*"):
        if both_numbers:
            return FLOAT if FLOAT in (left, right) else INT
        return UNKNOWN if _either(left, right, *NUMBERS) else None
    if op in ("/", "**", "^"):
        return FLOAT if both_numbers or _either(left, right, *NUMBERS) else None
    if op == "%":
        return INT if left == right == INT or _either(left, right, INT) else None
    if NIL in (left, right):  # ??
        return right if left == NIL else left
    return left if left == right != UNKNOWN else UNKNOWN


def call_type(name: str, types: list[str]) -> str:
    """A builtin's ``Validate`` (builtin/builtin.go, builtin/validation.go)."""
    if name in ONE_ARG:
        if len(types) != 1:
            raise ValueError(f"invalid number of arguments (expected 1, got {len(types)})")
        if types[0] not in (*NUMBERS, UNKNOWN):
            raise ValueError(f"invalid argument for {name} (type {types[0]})")
        return {"float": FLOAT, "int": INT, "abs": types[0]}.get(name, FLOAT)
    if not types:
        raise ValueError(f"not enough arguments to call {name}")
    for t in types:
        if t == UNKNOWN:
            return UNKNOWN
        if t not in NUMBERS:
            raise ValueError(f"invalid argument for {name} (type {t})")
    return types[0]


def _const_int(node: Node) -> int | None:
    """The value expr's constant folding gives an all-literal int expression."""
    match node:
        case Const(value=int() as v) if not isinstance(v, bool):
            return v
        case Unary(op="-" | "+", operand=operand):
            folded = _const_int(operand)
            return None if folded is None else wrap(-folded if node.op == "-" else folded)
        case Binary(op="+" | "-" | "*" | "%", left=left, right=right):
            a, b = _const_int(left), _const_int(right)
            if a is None or b is None or (node.op == "%" and b == 0):
                return None
            result = arithmetic(node.op, a, b, node.pos)
            return result if isinstance(result, int) else None
    return None


class Checker:
    """One pass over the tree: the type of each node, every problem (not only the first, as
    expr stops at), and the trigger names the formula reads."""

    def __init__(self, names: Collection[str]) -> None:
        self.names, self.problems, self.used = names, list[tuple[str, int | None]](), set[str]()

    def error(self, message: str, pos: int) -> str:
        self.problems.append((message, pos))
        return UNKNOWN

    def check(self, node: Node) -> str:
        match node:
            case Const(value=v):
                return NIL if v is None else BOOL if isinstance(v, bool) else type_of(v)
            case Name(name=name) if name in self.names:
                self.used.add(name)
                return FLOAT
            case Name(name=name):
                hint = f"; call it as {name}(…)" if name in ONE_ARG | AGGREGATES else ""
                return self.error(f"unknown name {name}{hint}", node.pos)
            case Unary(op=op, operand=operand):
                t = self.check(operand)
                if op in ("!", "not") and t in (BOOL, UNKNOWN):
                    return BOOL
                if op in ("-", "+") and t in (*NUMBERS, UNKNOWN):
                    return t
                return self.error(f"invalid operation: {op} (mismatched type {t})", node.pos)
            case Binary(op=op, left=left, right=right):
                lt, rt = self.check(left), self.check(right)
                if op == "%" and _const_int(right) == 0 and _const_int(left) is not None:
                    return self.error("integer divide by zero", node.pos)  # expr's folding
                return self.operation(op, lt, rt, node.pos)
            case Compare(operands=operands, ops=ops):
                types = [self.check(o) for o in operands]
                for (op, pos), lt, rt in zip(ops, types, types[1:], strict=False):
                    self.operation(op, lt, rt, pos)
                return BOOL
            case Cond(test=test, then=then, other=other):
                c = self.check(test)
                if c not in (BOOL, UNKNOWN):
                    self.error(f"non-bool expression (type {c}) used as condition", test.pos)
                t1, t2 = self.check(then), self.check(other)
                if NIL in (t1, t2):
                    return t2 if t1 == NIL else t1
                return t1 if t1 == t2 != UNKNOWN else UNKNOWN
            case Call(name=name, args=args):
                types = [self.check(a) for a in args]
                if name not in ONE_ARG | AGGREGATES:
                    if name in self.names:
                        return self.error(f"{FLOAT} is not callable", node.pos)
                    if name in _OTHER_BUILTINS:
                        return self.error(f"not supported here: the builtin {name}()", node.pos)
                    return self.error(f"unknown name {name}", node.pos)
                try:
                    return call_type(name, types)
                except ValueError as e:
                    return self.error(str(e), node.pos)
        raise AssertionError(node)  # pragma: no cover

    def operation(self, op: str, left: str, right: str, pos: int) -> str:
        t = _binary_type(op, left, right)
        if t is None:
            return self.error(f"invalid operation: {op} (mismatched types {left} and {right})", pos)
        return t
