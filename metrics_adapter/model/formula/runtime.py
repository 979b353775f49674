"""Evaluation with the values and errors of expr's runtime (vm/runtime, builtin/lib.go): Go's
64-bit ints that wrap, IEEE floats that divide by zero into ±Inf, NaN, and Go's messages."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import TypeAlias

from metrics_adapter.model.formula.tree import (
    Binary,
    Call,
    Compare,
    Cond,
    Const,
    Fault,
    Name,
    Node,
    Unary,
)

INT, FLOAT, BOOL = "int", "float64", "bool"
"""Go's names of the types, as expr's messages print them."""
ONE_ARG = frozenset({"float", "int", "abs", "ceil", "floor", "round"})
AGGREGATES = frozenset({"min", "max", "mean", "median"})
_INT_MIN, _INT_SPAN = -(2**63), 2**64

Value: TypeAlias = int | float | bool | None


def type_of(v: Value) -> str:
    """Go's ``%T`` of the value."""
    if v is None:
        return "<nil>"
    return BOOL if isinstance(v, bool) else INT if isinstance(v, int) else FLOAT


def is_number(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def wrap(v: int) -> int:
    """Go's int64 overflow: the value modulo 2**64, signed."""
    return (v - _INT_MIN) % _INT_SPAN + _INT_MIN


def _bool(v: Value, pos: int) -> bool:
    """Go's ``v.(bool)``, which expr's jumps and ``!`` do without asking the checker."""
    if not isinstance(v, bool):
        actual = "nil" if v is None else type_of(v)
        raise Fault(f"interface conversion: interface {{}} is {actual}, not bool", pos)
    return v


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _numeric(a: int | float, b: int | float) -> tuple[int, int] | tuple[float, float]:
    """The operands as expr's runtime compares them: int with int, float64 otherwise (so a
    huge int equals the float it rounds to, as in Go)."""
    if isinstance(a, int) and isinstance(b, int):
        return a, b
    return float(a), float(b)


def _less(a: int | float, b: int | float) -> bool:
    x, y = _numeric(a, b)
    return x < y


def _compare(op: str, a: Value, b: Value, pos: int) -> bool:
    if is_number(a) and is_number(b):
        x, y = _numeric(a, b)  # type: ignore[arg-type]
        return (x == y) == (op == "==") if op in ("==", "!=") else bool(_ORDER[op](x, y))
    if op in ("==", "!="):  # nil == nil, bool == bool; anything else is unequal
        return (type(a) is type(b) and a == b) == (op == "==")
    raise Fault(f"invalid operation: {type_of(a)} {op} {type_of(b)}", pos)


def _divide(a: float, b: float) -> float:
    if b == 0.0:  # IEEE, as Go: no error
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _power(x: float, y: float) -> float:
    """Go's math.Pow special cases where Python's math.pow raises."""
    odd = math.isfinite(y) and y % 2 == 1
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        if x == 0.0:  # zero to a negative power
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan  # negative base, non-integer power


def arithmetic(op: str, a: Value, b: Value, pos: int) -> Value:
    """``+ - * / % **`` as runtime.Add … runtime.Exponent compute them."""
    if op in ("**", "^"):
        for v in (a, b):
            if not is_number(v):
                raise Fault(f"invalid operation: float({type_of(v)})", pos)
        return _power(float(a), float(b))  # type: ignore[arg-type]
    if not (is_number(a) and is_number(b)):
        raise Fault(f"invalid operation: {type_of(a)} {op} {type_of(b)}", pos)
    assert isinstance(a, int | float) and isinstance(b, int | float)
    if op == "/":
        return _divide(float(a), float(b))
    if op == "%":
        if not (isinstance(a, int) and isinstance(b, int)):
            raise Fault(f"invalid operation: {type_of(a)} % {type_of(b)}", pos)
        if b == 0:
            raise Fault("runtime error: integer divide by zero", pos)
        remainder = abs(a) % abs(b)  # Go truncates: the sign follows the dividend
        return remainder if a >= 0 else -remainder
    if isinstance(a, int) and isinstance(b, int):
        return wrap(a + b if op == "+" else a - b if op == "-" else a * b)
    x, y = float(a), float(b)
    return x + y if op == "+" else x - y if op == "-" else x * y


def _go_int(x: float) -> int:
    """Go's int(float64): truncation; NaN and out-of-range give amd64's 0x8000000000000000."""
    return int(x) if math.isfinite(x) and _INT_MIN <= x < -_INT_MIN else _INT_MIN


def _rounding(name: str, x: float) -> float:
    if not math.isfinite(x):
        return x
    if name == "round":  # half away from zero, exact (math.modf is)
        fraction, whole = math.modf(x)
        return whole + math.copysign(1.0, x) if abs(fraction) >= 0.5 else whole
    whole = float(math.ceil(x) if name == "ceil" else math.floor(x))
    return math.copysign(whole, x) if whole == 0 else whole  # Go keeps the sign of zero


def call(name: str, args: list[Value], pos: int) -> Value:
    """A builtin whose arguments the checker has counted."""
    if name in AGGREGATES:
        return _aggregate(name, args, pos)
    (x,) = args
    if not is_number(x):
        if name in ("float", "int"):
            raise Fault(f"invalid operation: {name}({type_of(x)})", pos)
        raise Fault(f"invalid argument for {name} (type {type_of(x)})", pos)
    assert isinstance(x, int | float)
    if name == "float":
        return float(x)
    if name == "int":
        return x if isinstance(x, int) else _go_int(x)
    if name == "abs":
        return (wrap(-x) if isinstance(x, int) else -x) if x < 0 else x
    return float(x) if isinstance(x, int) else _rounding(name, x)


def _aggregate(name: str, args: list[Value], pos: int) -> Value:
    numbers: list[int | float] = []
    for v in args:
        if not is_number(v):
            if len(args) == 1 and name in ("min", "max"):
                return v  # expr's minMax hands a lone non-number back
            raise Fault(f"invalid argument for {name} (type {type_of(v)})", pos)
        numbers.append(v)  # type: ignore[arg-type]
    if name == "mean":  # summed in order, as Go does
        total = 0.0
        for v in numbers:
            total += v
        return total / len(numbers)
    if name == "median":
        values = sorted((float(v) for v in numbers), key=lambda v: (not math.isnan(v), v))
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    best = numbers[0]
    for v in numbers[1:]:
        if _less(best, v) if name == "max" else _less(v, best):
            best = v
    return best


def evaluate(node: Node, env: Mapping[str, float | None]) -> Value:
    """The node's value; each node is visited at most once, and the depth is capped."""
    match node:
        case Const(value=v):
            return v
        case Name(name=name):
            return env.get(name)
        case Unary(op=op, operand=operand):
            v = evaluate(operand, env)
            if op in ("!", "not"):
                return not _bool(v, node.pos)
            if op == "+":  # expr compiles unary + to nothing
                return v
            if not is_number(v):
                raise Fault(f"invalid operation: - {type_of(v)}", node.pos)
            return wrap(-v) if isinstance(v, int) else -v  # type: ignore[operator]
        case Binary(op="&&" | "and" | "||" | "or" as op, left=left, right=right):
            first = _bool(evaluate(left, env), node.pos)
            if first == (op in ("||", "or")):
                return first
            return evaluate(right, env)  # expr does not check the right side's type
        case Binary(op="??", left=left, right=right):
            v = evaluate(left, env)
            return evaluate(right, env) if v is None else v
        case Binary(op=op, left=left, right=right):
            return arithmetic(op, evaluate(left, env), evaluate(right, env), node.pos)
        case Compare(operands=operands, ops=ops):
            previous = evaluate(operands[0], env)
            for (op, pos), operand in zip(ops, operands[1:], strict=True):
                current = evaluate(operand, env)
                if not _compare(op, previous, current, pos):
                    return False
                previous = current
            return True
        case Cond(test=test, then=then, other=other):
            chosen = then if _bool(evaluate(test, env), node.pos) else other
            return evaluate(chosen, env)
        case Call(name=name, args=args):
            return call(name, [evaluate(a, env) for a in args], node.pos)
    raise AssertionError(node)  # pragma: no cover
