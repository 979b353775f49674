"""The scalingModifiers formula: expr-lang v1.17's precedence and Go's numbers, nil with ``??``,
KEDA's own validation cases, errors that point at a column, and hostile input that must stay
cheap. Expected values are worked out by hand from expr's operator table (parser/operator)."""

from __future__ import annotations

import contextlib
import math
import time
import tracemalloc
from collections.abc import Mapping
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_adapter.model.formula import (
    MAX_DEPTH,
    MAX_LENGTH,
    Formula,
    FormulaError,
    compile_formula,
)

INT_MIN = -(2**63)


def run(text: str, **values: float | None) -> float | None:
    return compile_formula(text, values.keys()).evaluate(values)


def problems(text: str, names: tuple[str, ...] = ("a", "b")) -> list[str]:
    with pytest.raises(FormulaError) as caught:
        compile_formula(text, names)
    return [p.message for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),  # * (60) above + (30)
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),  # left-associative
        ("100 / 10 / 5", 2),
        ("2 ** 3 ** 2", 512),  # ** right-associative: 2 ** 9
        ("2 ^ 3 ^ 2", 512),
        ("(2 ** 3) ** 2", 64),
        ("2 * 3 ** 2", 18),
        ("-2 ** 2", -4),  # unary - (90) below ** (100): -(2 ** 2)
        ("(-2) ** 2", 4),
        ("2 ** -1", 0.5),
        ("1 - -1", 2),
        ("- - 1", 1),
        ("7 % 4 * 2", 6),  # % and * share 60, left to right
        ("2 * 7 % 4", 2),
        ("-7 % 3", -1),  # Go's remainder keeps the dividend's sign
        ("7 % -3", 1),
        ("1 + 2 < 4 ? 10 : 20", 10),  # arithmetic, then comparison, then ?:
        ("!true || true ? 1 : 0", 1),  # (!true) || true
        ("not false && false ? 1 : 0", 0),  # not (50) above && (15): (not false) && false
        ("true || false && false ? 1 : 0", 1),  # && (15) above || (10)
        ("(true || false) && false ? 1 : 0", 0),
        ("!true == false ? 1 : 0", 1),  # ! (50) above == (20): (!true) == false
        ("3 > 2 > 1 ? 1 : 0", 1),  # chained: 3 > 2 && 2 > 1
        ("1 < 3 < 2 ? 1 : 0", 0),
        ("1 <= 1 >= 1 != 2 ? 1 : 0", 1),
        ("true ? false ? 1 : 2 : 3", 2),  # nested in the then-branch
        ("false ? 1 : false ? 2 : 3", 3),  # nested in the else-branch
        ("1 + (true ? 10 : 20)", 11),
        ("7 / 2", 3.5),  # / is always float
        ("6 / 3", 2),
        ("7 / 2 * 2", 7),
        ("int(7 / 2)", 3),
        ("int(-7 / 2)", -3),  # truncation toward zero
        ("1_000 + 0x10 + 0o10 + 0b10", 1026),
        ("1e3 + .5 + 1.", 1001.5),
        ("1 /* inner */ + 2", 3),
        ("1 +\n// a whole line\n2", 3),
        ("9223372036854775807 + 1", INT_MIN),  # Go's int64 wraps
        ("9007199254740993 == 9007199254740992.0 ? 1 : 0", 1),  # compared as float64
    ],
)
def test_precedence_associativity_and_numbers(text: str, expected: float) -> None:
    assert run(text) == expected


def test_precedence_with_triggers() -> None:
    assert run("1 + a > 1 ? 10 : 20", a=2) == 10  # (1 + a > 1) ? …
    assert run("1 + (a > 1 ? 10 : 20)", a=2) == 11
    for a, expected in ((3, 3), (2, 2), (0, 1)):
        assert run("a > 1 ? a > 2 ? 3 : 2 : 1", a=a) == expected
        assert run("a > 2 ? 3 : a > 1 ? 2 : 1", a=a) == expected


def test_comparisons_give_bools_that_only_a_ternary_or_logic_can_use() -> None:
    assert run("a == b ? 1 : 0", a=2, b=2.0) == 1
    assert run("a != b && a > 0 ? 1 : 0", a=1, b=2) == 1
    assert run("(a < b) == (b > a) ? 1 : 0", a=1, b=2) == 1
    assert problems("a > 1") == ["invalid argument for float (type bool) (1:1)"]
    assert problems("a ? 1 : 2") == ["non-bool expression (type float64) used as condition (1:7)"]
    assert problems("1 < 2 == true") == [
        "invalid argument for float (type bool) (1:1)",
        "invalid operation: == (mismatched types int and bool) (1:13)",  # 2 == true
    ]
    assert problems("a && true ? 1 : 0") == [
        "invalid operation: && (mismatched types float64 and bool) (1:9)"
    ]


def test_division_by_zero_is_ieee_as_in_go() -> None:
    assert run("a / 0", a=1) == math.inf
    assert run("a / 0", a=-1) == -math.inf
    assert math.isnan(run("a / 0", a=0) or 0)
    assert math.isnan(run("0 / 0") or 0)
    assert run("1 / -0.0") == -math.inf
    assert run("1 / ceil(-0.5)") == -math.inf  # ceil keeps the sign of zero
    assert run("10 ** 10 ** 10") == math.inf  # ** is float: no huge integer
    assert math.isnan(run("(-8) ** (1 / 3)") or 0)  # Go's Pow: NaN, not an error
    assert run("0 ** -1") == math.inf


def test_modulo_takes_ints_and_refuses_zero() -> None:
    assert problems("5 % 0") == ["integer divide by zero (1:9)"]  # expr folds constants
    assert problems("int(a) % 0") == ["runtime error: integer divide by zero (1:14)"]
    assert problems("a % 2") == ["invalid operation: % (mismatched types float64 and int) (1:9)"]
    formula = compile_formula("int(a) % int(b)", ["a", "b"])
    assert formula.evaluate({"a": -7, "b": 3}) == -1
    with pytest.raises(FormulaError, match=r"integer divide by zero \(1:14\)"):
        formula.evaluate({"a": 1, "b": 0.5})  # int(0.5) is 0


def test_nil_coalescing() -> None:
    formula = compile_formula("a ?? b ?? 8", ["a", "b"])
    assert formula.evaluate({"a": None, "b": None}) == 8
    assert formula.evaluate({"a": None, "b": 2}) == 2
    assert formula.evaluate({"a": 1, "b": None}) == 1
    assert formula.evaluate({}) == 8  # a missing value is nil too
    assert run("a ?? b", a=None, b=None) is None  # with ??, a nil result stays nil
    assert run("2 * a ?? 3", a=None) == 6  # ?? (500) binds tightest: 2 * (a ?? 3)
    assert run("-a ?? 5", a=None) == -5
    assert run("(a ?? 1) + 1", a=None) == 2
    assert run("max(a) ?? 4", a=None) == 4  # max of one nil is nil
    assert run("a == nil ? 0 : a", a=None) == 0
    mixed = "Operator (+) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses"
    assert problems("a ?? 1 + 2", ("a",)) == [f"{mixed}. (1:14)"]
    with pytest.raises(FormulaError, match=r"invalid operation: <nil> \+ int \(1:9\)"):
        run("a + 1", a=None)
    with pytest.raises(FormulaError, match=r"invalid operation: float\(<nil>\) \(1:1\)"):
        run("a", a=None)  # no ?? in the formula: KEDA's float(…) refuses nil


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float(3)", 3),
        ("int(2.9) + int(-2.9)", 0),
        ("int(1e300)", INT_MIN),  # out of range: amd64's conversion
        ("abs(-2) + abs(-2.5) + abs(3)", 7.5),
        ("abs(-9223372036854775807 - 1)", INT_MIN),  # Go's abs wraps too
        ("ceil(1.2) + ceil(-1.2) + ceil(2)", 3),
        ("floor(1.8) + floor(-1.2) + floor(2)", 1),
        ("round(0.5) + round(1.5) + round(2.5)", 6),  # half away from zero, not to even
        ("round(-0.5) + round(-2.5)", -4),
        ("round(0.49999999999999994)", 0),
        ("min(3, 1.5, 2)", 1.5),
        ("max(1, 2.5, 2)", 2.5),
        ("max(2, 2.0) / 2", 1),
        ("mean(1, 2, 4) * 3", 7),
        ("median(5, 1, 3)", 3),
        ("median(3, 1, 2, 10)", 2.5),
    ],
)
def test_builtins(text: str, expected: float) -> None:
    assert run(text) == pytest.approx(expected)


def test_builtin_arguments_are_checked() -> None:
    assert problems("abs()") == ["invalid number of arguments (expected 1, got 0) (1:7)"]
    assert problems("round(a, b)") == ["invalid number of arguments (expected 1, got 2) (1:7)"]
    assert problems("max()") == ["not enough arguments to call max (1:7)"]
    assert problems("abs(true)") == ["invalid argument for abs (type bool) (1:7)"]
    assert problems("min(a, nil)") == ["invalid argument for min (type nil) (1:7)"]
    with pytest.raises(FormulaError, match=r"invalid argument for max \(type <nil>\) \(1:7\)"):
        run("max(a, b)", a=None, b=1)


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        (  # kedacore/keda#6938, word for word
            "external_override > 0 ? external_override : cpu_metric",
            ("external_override",),
            ["unknown name cpu_metric (1:51)"],
        ),
        ("a + * b", ("a", "b"), ['unexpected token Operator("*") (1:11)']),
        ("(a + b", ("a", "b"), ["unexpected token EOF (1:14)"]),
        ("a + b)", ("a", "b"), ['unexpected token Bracket(")") (1:13)']),
        ("a ? b", ("a", "b"), ['unexpected token Bracket(")") (1:12)']),
        ("foo(a)", ("a",), ["unknown name foo (1:7)"]),
        ("a(1)", ("a",), ["float64 is not callable (1:7)"]),
        ("x + y * a", ("a",), ["unknown name x (1:7)", "unknown name y (1:11)"]),
        ("a +\n  b", ("a",), ["unknown name b (2:3)"]),
        ("not 1 > 2", (), [
            "invalid argument for float (type bool) (1:1)",
            "invalid operation: not (mismatched type int) (1:7)",  # (not 1) > 2
        ]),
        ("a // a comment", ("a",), ["unexpected token EOF (1:22)"]),  # it hides KEDA's ")"
        ("a @ b", ("a", "b"), ["unrecognized character: U+0040 '@' (1:9)"]),
        ("1a", (), ['bad number syntax: "1a" (1:7)']),
        ("99999999999999999999", (), [
            'invalid integer literal: strconv.ParseInt: parsing "99999999999999999999": '
            "value out of range (1:7)"
        ]),
        ("1e400", (), [
            'invalid float literal: strconv.ParseFloat: parsing "1e400": value out of range (1:7)'
        ]),
        ("len(a)", ("a",), ["not supported here: the builtin len() (1:7)"]),
        ("a in b", ("a", "b"), ["not supported here: the in operator (1:9)"]),
        ('"1"', (), ['not supported here: strings, except in $env["trigger-name"] (1:7)']),
        ("a ?: 1", ("a",), ["not supported here: the ?: shorthand (1:9)"]),
        ("", (), ["the formula is empty"]),
    ],
)  # fmt: skip
def test_errors_name_the_position_as_expr_does(
    text: str, names: tuple[str, ...], expected: list[str]
) -> None:
    assert problems(text, names) == expected


def test_error_detail_has_keda_s_caret_and_the_field_path() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("a +\n cpu", ["a"], path="spec.advanced.scalingModifiers.formula")
    error = caught.value
    assert [p.path for p in error.problems] == ["spec.advanced.scalingModifiers.formula"]
    assert error.detail() == "unknown name cpu (2:2)\n |  cpu)\n | .^"
    with pytest.raises(FormulaError) as caught:
        compile_formula("external_override > 0 ? external_override : cpu_metric", ["x"])
    first = caught.value.detail().split("\n")[:3]
    assert first == [
        "unknown name external_override (1:7)",
        " | float(external_override > 0 ? external_override : cpu_metric)",
        " | ......^",
    ]


NESTED_TERNARY = "float(trig_one < 2 ? trig_one+trig_two >= 2 ? 5 : 10 : 0)"


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [  # apis/keda/v1alpha1/scaledobject_webhook_test.go and pkg/scaling tests
        ("workload_trig + cron_trig", {"workload_trig": 1, "cron_trig": 2}, 3),
        ("workload_trig + 1", {"workload_trig": 1}, 2),
        ("float(workload_trig + 1)", {"workload_trig": 1}, 2),
        (
            "float(workload_trig < 5 ? cron_trig + workload_trig : 5)",
            {"workload_trig": 1, "cron_trig": 2},
            3,
        ),
        (
            "workload_trig < 5 ? cron_trig + workload_trig : 5",
            {"workload_trig": 6, "cron_trig": 2},
            5,
        ),
        (NESTED_TERNARY, {"trig_one": 1, "trig_two": 1}, 5),
        (NESTED_TERNARY, {"trig_one": 1, "trig_two": 0}, 10),
        (NESTED_TERNARY, {"trig_one": 3, "trig_two": 0}, 0),
        ("float(float(trig_two < 5 ? trig_one + trig_two : 5))", {"trig_one": 1, "trig_two": 1}, 2),
        ("trig_one ?? trig_two ?? 5", {"trig_one": None, "trig_two": None}, 5),
        ("trigger_one + trigger_two", {"trigger_one": 2, "trigger_two": 5}, 7),
        ("max(trigger_1, trigger_2)", {"trigger_1": 12, "trigger_2": 3}, 12),
        ("trigger1 ?? trigger2", {"trigger1": None, "trigger2": None}, None),
    ],
)
def test_keda_s_own_cases(text: str, values: Mapping[str, float | None], expected: float) -> None:
    assert compile_formula(text, values.keys()).evaluate(values) == expected


def test_keda_s_rejected_cases() -> None:
    # triggers without names: nothing to bind
    assert problems("workload_trig + cron_trig", ()) == [
        "unknown name workload_trig (1:7)",
        "unknown name cron_trig (1:23)",
    ]
    # KEDA accepts count(); this evaluator refuses arrays and predicates, by name
    assert problems("count([trig_one,trig_two],{#>1}) > 1 ? 5 : 0", ("trig_one", "trig_two")) == [
        "not supported here: count() and the arrays and predicates it takes (1:7)"
    ]


def test_validation_runs_the_formula_once_with_minus_one() -> None:
    assert problems("int(a) % int(a + 1)", ("a",)) == [
        "runtime error: integer divide by zero (1:14)"  # -1 % 0
    ]
    compile_formula("int(a) % int(a + 2)", ["a"])
    # passes the checker (the ternary's type is unknown) and the run with -1, as in KEDA;
    # fails only when a is positive
    formula = compile_formula("(a > 0 ? true : 1) + 1", ["a"])
    assert formula.evaluate({"a": -1}) == 2
    with pytest.raises(FormulaError, match=r"invalid operation: bool \+ int \(1:26\)"):
        formula.evaluate({"a": 1})


def test_trigger_names_expr_cannot_spell() -> None:
    assert problems("my-trigger", ("my-trigger",)) == [
        "unknown name my (1:7)",
        "unknown name trigger (1:10)",
    ]
    formula = compile_formula("$env['my-trigger'] * 2", ["my-trigger"])
    assert formula.inputs == ("my-trigger",)
    assert formula.evaluate({"my-trigger": 4}) == 8


def test_formula_reports_inputs_and_refuses_non_numbers() -> None:
    formula = compile_formula("b + a * 2 + b", ["a", "b", "c"])
    assert isinstance(formula, Formula)
    assert formula.inputs == ("a", "b")
    with pytest.raises(FormulaError, match="a is not a number"):
        formula.evaluate({"a": "1", "b": 1})  # type: ignore[dict-item]
    with pytest.raises(FormulaError, match="a is not a number"):
        formula.evaluate({"a": True, "b": 1})


# --- hostile input -------------------------------------------------------------------------------


def test_length_and_depth_are_capped() -> None:
    assert problems("1" * (MAX_LENGTH + 1), ()) == [
        f"is {MAX_LENGTH + 1} characters long; at most {MAX_LENGTH} are allowed"
    ]
    deep = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert problems(deep, ("a",))[0].startswith(f"the formula nests deeper than {MAX_DEPTH}")
    chain = "+".join(["a"] * (MAX_DEPTH + 1))
    assert problems(chain, ("a",))[0].startswith(f"the formula nests deeper than {MAX_DEPTH}")
    assert run("+".join(["a"] * (MAX_DEPTH - 2)), a=1) == MAX_DEPTH - 2
    assert run("max(" + ",".join(["a"] * 1000) + ")", a=1) == 1  # wide is fine


WORST_CASES = [
    "(" * MAX_LENGTH,
    "-" * (MAX_LENGTH - 1) + "1",
    "a+" * (MAX_LENGTH // 2 - 1) + "a",
    "a ?? " * (MAX_LENGTH // 5 - 1) + "a",
    "true ? " * (MAX_LENGTH // 7 - 1) + "1",
    "max(" + "a," * (MAX_LENGTH // 2 - 3) + "a)",
    "2 ** " * (MAX_LENGTH // 5 - 1) + "2",
    "1 < " * (MAX_LENGTH // 4 - 1) + "1",
    "/*" + "x" * (MAX_LENGTH - 2),
    "9" * MAX_LENGTH,
]


@pytest.mark.parametrize("text", WORST_CASES, ids=range(len(WORST_CASES)))
def test_worst_case_input_is_fast_and_small(text: str) -> None:
    assert len(text) <= MAX_LENGTH
    tracemalloc.start()
    started = time.perf_counter()
    with contextlib.suppress(FormulaError):
        compile_formula(text, ["a"]).evaluate({"a": 1})
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 8 * 1024 * 1024


HOSTILE = settings(
    deadline=timedelta(milliseconds=500),
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKENS = [
    "a", "b", "c", "nil", "true", "false", "0", "1", "2.5", "1e3", "0x1F", "9999999999999999999",
    "(", ")", "[", "]", "{", "}", ",", "?", ":", "??", "?.", ".", "..", "+", "-", "*", "/", "%",
    "**", "^", "==", "!=", "<", "<=", ">", ">=", "!", "not", "&&", "and", "||", "or", "in", "|",
    "#", "$env", "'a'", '"b"', "float", "int", "abs", "ceil", "floor", "round", "min", "max",
    "mean", "median", "count", "len", "let", ";", "//", "/*", "*/", "\n", "@", "\\",
]  # fmt: skip
VALUES = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)
)


def survive(text: str, values: Mapping[str, float | None]) -> None:
    """Compile and evaluate; the only exception allowed is FormulaError, and it says why."""
    error: FormulaError | None = None
    try:
        result = compile_formula(text, ["a", "b", "c"]).evaluate(values)
    except FormulaError as e:
        error, result = e, None
    if error is not None:
        assert error.problems
        assert all(p.message for p in error.problems)
        assert len(error.detail()) >= len(error.problems[0].message)
    else:
        assert result is None or isinstance(result, float)


@HOSTILE
@given(st.text(max_size=300), st.dictionaries(st.sampled_from("abc"), VALUES))
def test_random_text_only_raises_formula_error(text: str, values: dict[str, float | None]) -> None:
    survive(text, values)


@HOSTILE
@given(
    st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join),
    st.dictionaries(st.sampled_from("abc"), VALUES),
)
def test_token_soup_only_raises_formula_error(text: str, values: dict[str, float | None]) -> None:
    survive(text, values)


def leaves() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["a", "b", "c", "nil", "true", "false", "$env['a']"]),
        st.integers(-(10**20), 10**20).map(lambda i: f"({i})"),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"({f!r})"),
    )


def branches(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = ["+", "-", "*", "/", "%", "**", "^", "??", "==", "!=", "<", "<=", ">", ">="]
    binary += ["&&", "||", "and", "or"]
    functions = ["float", "int", "abs", "ceil", "floor", "round", "min", "max", "mean", "median"]
    return st.one_of(
        st.tuples(st.sampled_from(["-", "+", "!", "not "]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(inner, st.sampled_from(binary), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(st.sampled_from(functions), st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    )


@HOSTILE
@given(
    st.recursive(leaves(), branches, max_leaves=40),
    st.dictionaries(st.sampled_from("abc"), VALUES),
)
def test_well_formed_trees_only_raise_formula_error(
    text: str, values: dict[str, float | None]
) -> None:
    survive(text, values)


@HOSTILE
@given(
    st.sampled_from(["({})", "-{}", "!{}", "abs({})", "a + {}", "{} ?? a", "true ? {} : 1"]),
    st.integers(0, 2 * MAX_DEPTH),
)
def test_nesting_is_refused_or_evaluated_never_crashes(shape: str, depth: int) -> None:
    text = "a"
    for _ in range(depth):
        text = shape.format(text)
    if len(text) <= MAX_LENGTH:
        survive(text, {"a": 1.0})
