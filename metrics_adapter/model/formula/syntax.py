"""expr's lexer and parser (parser/lexer/state.go, parser/parser.go, v1.17) for the subset this
package evaluates; every construct outside it is refused by name instead of misread."""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from metrics_adapter.model.formula.tree import (
    MAX_DEPTH,
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

_BINARY = {  # operator: (precedence, right-associative), parser/operator/operator.go
    "||": (10, False), "or": (10, False), "&&": (15, False), "and": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False),
    "<=": (20, False), ">=": (20, False), "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True), "??": (500, False),
}  # fmt: skip
_COMPARISONS = frozenset({"==", "!=", "<", ">", "<=", ">="})
_UNARY = {"!": 50, "not": 50, "-": 90, "+": 90}
_KEYWORDS = frozenset(
    {"not", "in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
)
_UNSUPPORTED = {
    "|": "the pipe operator |", "..": "ranges (..)", ".": "member access (.)",
    "?.": "member access (?.)", "[": "arrays and indexing ([ ])", "{": "maps and predicates",
    "#": "predicates (#)", "::": "namespaces (::)", "let": "variables (let)", ";": "sequences (;)",
    "if": "if/else (write c ? a : b)", "else": "if/else (write c ? a : b)",
    "in": "the in operator", "matches": "the matches operator",
    "contains": "the contains operator", "startsWith": "the startsWith operator",
    "endsWith": "the endsWith operator",
}  # fmt: skip
_PREDICATE_BUILTINS = frozenset({
    "all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast",
    "findLastIndex", "count", "sum", "groupBy", "sortBy", "reduce",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # Identifier Number String Operator Bracket EOF
    value: str
    pos: int

    def __str__(self) -> str:
        return f"{self.kind}({_quote(self.value)})" if self.value else self.kind

    def is_(self, kind: str, value: str) -> bool:
        return self.kind == kind and self.value == value


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _is_space(c: str) -> bool:  # Go's unicode.IsSpace
    return c in "\t\n\v\f\r \x85" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def _is_word(c: str) -> bool:  # expr's IsAlphaNumeric: letters, decimal digits, _ and $
    return c.isalpha() or c.isdecimal() or c in "_$"


def lex(text: str) -> list[Token]:
    """All tokens first, as expr does, so that a bad character is reported before syntax."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c, start, two = text[i], i, text[i : i + 2]
        if _is_space(c):
            i += 1
            continue
        if "0" <= c <= "9" or (c == "." and i + 1 < n and "0" <= text[i + 1] <= "9"):
            i = _scan_number(text, i)
            out.append(Token("Number", text[start:i], start))
            continue
        if _is_word(c):
            while i < n and _is_word(text[i]):
                i += 1
            word = text[start:i]
            out.append(Token("Operator" if word in _KEYWORDS else "Identifier", word, start))
            continue
        if c in "'\"`":
            end = text.find(c, i + 1)
            body = text[i + 1 : end]
            if end < 0 or (c != "`" and "\n" in body):
                raise Fault("literal not terminated", start)
            if "\\" in body and c != "`":
                raise Fault("not supported here: escapes in strings", start)
            out.append(Token("String", body, start))
            i = end + 1
            continue
        if two in ("//", "/*"):
            end = text.find("\n" if two == "//" else "*/", i + 2)
            if end < 0 and two == "/*":
                raise Fault("unclosed comment", start)
            i = n if end < 0 else end + len("\n" if two == "//" else "*/")
            continue
        kind, op = "Operator", c
        if (c in "?|:.&!=*<>" and two in ("??", "?.", "||", "::", "..")) or (
            c in "&!=*<>" and two[1:] in ("&", "=", "*")
        ):
            op = two
        elif c in "()[]{}":
            kind = "Bracket"
        elif c not in "?|:.&!=*<>,;%+-^/#":
            printable = f" '{c}'" if c.isprintable() else ""
            raise Fault(f"unrecognized character: U+{ord(c):04X}{printable}", start)
        out.append(Token(kind, op, start))
        i += len(op)
    out.append(Token("EOF", "", n))
    return out


def _scan_number(text: str, i: int) -> int:
    start, n, digits = i, len(text), "0123456789_"

    def run(j: int, allowed: str) -> int:
        while j < n and text[j] in allowed:
            j += 1
        return j

    if text[i] == ".":
        i += 1
    elif text[i] == "0" and i + 1 < n and text[i + 1] in "xXoObB":
        digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[text[i + 1].lower()]
        i += 2
    i = run(i, digits)
    if i < n and text[i] == ".":
        if text[i + 1 : i + 2] == ".":  # 1..2 is a range, not a float
            return i
        i = run(i + 1, digits)
    if i < n and text[i] in "eE":
        i += 1
        i = run(i + 1 if i < n and text[i] in "+-" else i, digits)
    if i < n and _is_word(text[i]):
        raise Fault(f"bad number syntax: {_quote(text[start : i + 1])}", start)
    return i


def _number(tok: Token) -> Const:
    """The literal as expr's parser converts it, with strconv's messages."""
    raw = tok.value.replace("_", "")
    low = raw.lower()
    radix = 16 if low.startswith("0x") else {"0o": 8, "0b": 2}.get(low[:2], 10)
    if radix != 16 and ("." in low or "e" in low):  # expr's order of tests
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            why = "invalid syntax" if math.isnan(value) else "value out of range"
            parse = f'strconv.ParseFloat: parsing "{raw}": {why}'
            raise Fault(f"invalid float literal: {parse}", tok.pos)
        return Const(value, tok.pos)
    digits = raw[2:] if radix != 10 else raw
    try:
        number = int(digits, radix) if digits.isalnum() else None
    except ValueError:
        number = None
    if number is None or number >= 2**63:
        kind = {16: "hex", 8: "octal", 2: "binary", 10: "integer"}[radix]
        why = "invalid syntax" if number is None else "value out of range"
        parse = f'strconv.ParseInt: parsing "{raw}": {why}'
        raise Fault(f"invalid {kind} literal: {parse}", tok.pos)
    return Const(number, tok.pos)


class Parser:
    """Precedence climbing in the shape of expr's parseExpression: comparisons chain, ``?:``
    only where the precedence is 0, ``??`` refuses to share a level with another operator."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    @property
    def cur(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> None:
        self.i = min(self.i + 1, len(self.tokens) - 1)

    def fail(self, tok: Token, message: str | None = None) -> NoReturn:
        raise Fault(message or f"unexpected token {tok}", tok.pos)

    def unsupported(self, tok: Token, what: str) -> NoReturn:
        self.fail(tok, f"not supported here: {what}")

    def expect(self, kind: str, value: str) -> None:
        if not self.cur.is_(kind, value):
            self.fail(self.cur)
        self.advance()

    def parse(self) -> Node:
        node = self.expression(0)
        if self.cur.kind != "EOF":
            self.fail(self.cur)
        return node

    def expression(self, precedence: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(self.cur, f"the formula nests deeper than {MAX_DEPTH} levels")
        left, previous = self.primary(), ""
        while (tok := self.cur).kind == "Operator":
            if tok.value == "not":  # only expr's `not in` and friends go here
                after = self.tokens[self.i + 1]
                if after.value in _UNSUPPORTED:
                    self.unsupported(after, _UNSUPPORTED[after.value])
                self.fail(after)
            if tok.value in _UNSUPPORTED:
                self.unsupported(tok, _UNSUPPORTED[tok.value])
            if tok.value not in _BINARY or _BINARY[tok.value][0] < precedence:
                break
            op_precedence, right_associative = _BINARY[tok.value]
            self.advance()
            if previous == "??" and tok.value != "??":
                self.fail(
                    tok,
                    f"Operator ({tok.value}) and coalesce expressions (??) cannot be mixed. "
                    "Wrap either by parentheses.",
                )
            if tok.value in _COMPARISONS:
                left = self.comparison(left, tok, op_precedence)
            else:
                right = self.expression(op_precedence + (0 if right_associative else 1))
                left = Binary(tok.value, left, right, tok.pos)
            previous = tok.value
        if precedence == 0:
            while self.cur.is_("Operator", "?"):
                question = self.cur
                self.advance()
                if self.cur.is_("Operator", ":"):
                    self.unsupported(question, "the ?: shorthand")
                then = self.expression(0)
                self.expect("Operator", ":")
                left = Cond(left, then, self.expression(0), question.pos)
        self.depth -= 1
        return left

    def comparison(self, left: Node, tok: Token, precedence: int) -> Node:
        operands, ops = [left], []
        while True:
            ops.append((tok.value, tok.pos))
            operands.append(self.expression(precedence + 1))
            tok = self.cur
            if tok.kind != "Operator" or tok.value not in _COMPARISONS:
                return Compare(tuple(operands), tuple(ops))
            self.advance()

    def primary(self) -> Node:
        tok = self.cur
        if tok.kind == "Operator" and tok.value in _UNARY:
            self.advance()
            node: Node = Unary(tok.value, self.expression(_UNARY[tok.value]), tok.pos)
        elif tok.is_("Bracket", "("):
            self.advance()
            node = self.expression(0)
            self.expect("Bracket", ")")
        elif tok.kind == "Number":
            self.advance()
            return _number(tok)
        elif tok.kind == "Identifier":
            self.advance()
            node = self.identifier(tok)
        elif tok.kind == "String":
            self.unsupported(tok, 'strings, except in $env["trigger-name"]')
        elif tok.value in _UNSUPPORTED:
            self.unsupported(tok, _UNSUPPORTED[tok.value])
        else:
            self.fail(tok)
        after = self.cur
        if after.value in (".", "?.", "[") and after.kind != "String":
            self.unsupported(after, _UNSUPPORTED[after.value])
        return node

    def identifier(self, tok: Token) -> Node:
        if tok.value in ("true", "false", "nil"):
            return Const(None if tok.value == "nil" else tok.value == "true", tok.pos)
        if tok.value == "$env":
            if not self.cur.is_("Bracket", "[") or self.tokens[self.i + 1].kind != "String":
                self.unsupported(tok, '$env other than $env["trigger-name"]')
            name = self.tokens[self.i + 1]
            self.i += 2
            self.expect("Bracket", "]")
            return Name(name.value, name.pos)
        if not self.cur.is_("Bracket", "("):
            return Name(tok.value, tok.pos)
        if tok.value in _PREDICATE_BUILTINS:
            self.unsupported(tok, f"{tok.value}() and the arrays and predicates it takes")
        self.advance()
        args: list[Node] = []
        while not self.cur.is_("Bracket", ")"):
            if args:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", ")"):
                    break
            args.append(self.expression(0))
        self.advance()
        return Call(tok.value, tuple(args), tok.pos)
