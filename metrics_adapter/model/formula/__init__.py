"""``scalingModifiers.formula``: the subset of expr-lang/expr (v1.17, what KEDA v2.20 compiles)
that KEDA users write, parsed once at bind time and evaluated without Python ``eval``.

KEDA compiles ``float(<formula>)`` (unless the formula already starts with ``float(``) against
the names of the non-cpu/memory triggers, each bound to -1.0, and runs it once: whatever fails
then rejects the object. :func:`compile_formula` does the same on the same wrapped text, so a
position is the one KEDA reports (``unknown name cpu_metric (1:51)``) and KEDA's accidents carry
over: a trailing ``// comment`` hides the closing parenthesis. Unlike expr, every type error and
unknown name is reported at once, not only the first.

The supported subset, its precedence, its types and what is refused by name are documented
for users in docs/migrating-from-keda.md (section "scalingModifiers"); a trigger's value is a
float64, or nil when the trigger is in fallback (``fallback.behavior: scalingModifiers``).
With ``??`` in a wrapped formula a nil result stays nil (KEDA v2.20+: ``fallback.replicas``
applies).

Hostile input stays cheap: at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels
(a chain ``a + b + c`` counts a level per operator); evaluation visits each node once, and
``**`` works on floats, so ``10 ** 10 ** 10`` is +Inf, not a huge integer. Results are ±Inf or
NaN exactly when KEDA's are (``**`` uses the C library's pow, which can differ from Go's in the
last bit); the composite metric never serves them (:mod:`metrics_adapter.metrics.composite`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from metrics_adapter.model.formula.checker import NIL, Checker, call_type
from metrics_adapter.model.formula.runtime import BOOL, call, evaluate, is_number, type_of
from metrics_adapter.model.formula.syntax import Parser, lex
from metrics_adapter.model.formula.tree import MAX_DEPTH, Call, Fault, Node, depth_exceeded
from scalers.errors import ConfigError, Problem

__all__ = ["FORMULA_PATH", "MAX_DEPTH", "MAX_LENGTH", "Formula", "FormulaError", "compile_formula"]

MAX_LENGTH = 4096
"""Characters a formula may have: every real formula is far shorter."""
FORMULA_PATH = "advanced.scalingModifiers.formula"
_WRAP = "float("


class FormulaError(ConfigError):
    """The formula cannot be used, or one evaluation failed. ``problems`` carry expr's
    ``message (line:column)``; :meth:`detail` adds the source line and a caret, as KEDA shows."""

    def __init__(self, source: str, located: list[tuple[str, int | None]], path: str) -> None:
        self.source = source
        self.located = tuple(located)
        super().__init__("formula", [Problem(path, _at(source, m, p)) for m, p in located])

    def detail(self) -> str:
        return "\n".join(_at(self.source, m, p, caret=True) for m, p in self.located)


def _at(source: str, message: str, pos: int | None, caret: bool = False) -> str:
    if pos is None:
        return message
    start = source.rfind("\n", 0, pos) + 1
    end = source.find("\n", pos)
    line, column = source.count("\n", 0, pos) + 1, pos - start
    text = f"{message} ({line}:{column + 1})"
    if caret:
        snippet = source[start : end if end >= 0 else len(source)].replace("\t", " ")
        text += f"\n | {snippet}"
        if snippet[: column + 1].isascii():  # expr leaves the caret out past multi-byte runes
            text += f"\n | {'.' * column}^"
    return text


@dataclass(frozen=True, slots=True)
class Formula:
    """A compiled formula: evaluate it once per poll with the triggers' values."""

    text: str
    inputs: tuple[str, ...]
    """The trigger names it reads, sorted."""
    path: str
    _body: Node = field(repr=False)
    """What KEDA's ``float(…)`` wraps, or the whole formula when it was not wrapped."""
    _source: str = field(repr=False)
    _cast: bool = field(repr=False)
    _keeps_nil: bool = field(repr=False)

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        """The composite value, or None when the formula (with ``??``) ends in nil. A value
        of None, or a missing name, is nil: a trigger in fallback. Raises FormulaError."""
        env: dict[str, float | None] = {}
        for name in self.inputs:
            v = values.get(name)
            if v is not None and not is_number(v):
                raise FormulaError(self._source, [(f"{name} is not a number", None)], self.path)
            env[name] = None if v is None else float(v)
        try:
            result = evaluate(self._body, env)
            if result is None and self._keeps_nil:
                return None
            if self._cast:
                result = call("float", [result], 0)
            elif not is_number(result):
                raise Fault(f"the result must be a number, not {type_of(result)}", 0)
        except Fault as fault:
            raise FormulaError(self._source, [(fault.message, fault.pos)], self.path) from None
        return float(result)  # type: ignore[arg-type]


def compile_formula(text: str, names: Collection[str], *, path: str = FORMULA_PATH) -> Formula:
    """Parse and check ``text`` against the trigger ``names``, then run it once with every
    name bound to -1.0, as KEDA's validation does. Raises FormulaError listing every problem."""
    source = text if text.startswith(_WRAP) else f"{_WRAP}{text})"
    if not text.strip():
        raise FormulaError(source, [("the formula is empty", None)], path)
    if len(text) > MAX_LENGTH:
        message = f"is {len(text)} characters long; at most {MAX_LENGTH} are allowed"
        raise FormulaError(source, [(message, None)], path)
    try:  # the wrapped text, as KEDA: a trailing // comment swallows the closing parenthesis
        root = Parser(lex(source)).parse()
    except Fault as fault:
        raise FormulaError(source, [(fault.message, fault.pos)], path) from None
    if (deep := depth_exceeded(root)) is not None:
        message = f"the formula nests deeper than {MAX_DEPTH} levels"
        raise FormulaError(source, [(message, deep.pos)], path)
    names = frozenset(names)
    checker = Checker(names)
    keeps_nil = "??" in text
    body, cast = root, False
    if source != text and isinstance(root, Call) and root.pos == 0 and len(root.args) == 1:
        body, cast = root.args[0], True  # our wrapper: with ?? a nil result stays nil
    result = checker.check(body)
    if cast and not (keeps_nil and result == NIL):
        try:
            call_type("float", [result])
        except ValueError as e:
            checker.problems.insert(0, (str(e), 0))
    elif not cast and result in (BOOL, NIL) and not (keeps_nil and result == NIL):
        checker.problems.insert(0, (f"the result must be a number, not {result}", 0))
    if checker.problems:
        raise FormulaError(source, sorted(checker.problems, key=lambda p: p[1] or 0), path)
    formula = Formula(text, tuple(sorted(checker.used)), path, body, source, cast, keeps_nil)
    formula.evaluate(dict.fromkeys(names, -1.0))
    return formula
