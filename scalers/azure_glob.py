"""The glob patterns of ``azure-blob``'s ``globPattern``, as KEDA compiles them (gobwas/glob
v0.2.3 without separators), translated into a Python regular expression.

Without separators ``*`` and ``**`` match any run of characters (``/`` included) and ``?``
any one; ``[abc]``, ``[!abc]``, ``[a-z]`` and ``[!a-z]`` hold one list or one range (not
both, and not two ranges: ``[a-z0-9]`` is an error there); ``{a,b}`` holds alternatives,
which nest; ``\\`` escapes the next character. ``,`` and ``}`` outside braces, and ``]``
outside brackets, are plain characters, and a brace left open ends with the pattern.

Checked against gobwas itself on 30,000 random patterns and names: apart from empty names
(which no blob has; gobwas' lone ``?`` matches one) it differed once, on ``{}{*{?``, where
gobwas' optimiser lets an empty brace match after all.
"""

from __future__ import annotations

import re

_TEXT_BREAKERS = "?*[{"
_TERMS_BREAKERS = _TEXT_BREAKERS + "},"


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The whole-string matcher of ``pattern``; ``ValueError`` where gobwas refuses it."""
    parser = _Parser(pattern)
    return re.compile(parser.sequence(0) + r"\Z", re.DOTALL)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def sequence(self, depth: int) -> str:
        """Terms up to the end, or (inside braces) up to the ``,`` or ``}`` that ends the
        alternative, which is left for :meth:`alternatives`."""
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if depth and c in ",}":
                break
            self.pos += 1
            if c == "*":
                if self.text.startswith("*", self.pos):
                    self.pos += 1
                out.append(".*")
            elif c == "?":
                out.append(".")
            elif c == "[":
                out.append(self.brackets())
            elif c == "{":
                out.append(self.alternatives(depth + 1))
            else:
                self.pos -= 1
                out.append(re.escape(self.literal(_TERMS_BREAKERS if depth else _TEXT_BREAKERS)))
        return "".join(out)

    def alternatives(self, depth: int) -> str:
        options = [self.sequence(depth)]
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "}":
                break
            options.append(self.sequence(depth))
        if options == [""]:  # gobwas compiles ``{}`` (or a final ``{``) into a matcher of nothing
            return "(?!)"
        return "(?:" + "|".join(options) + ")"

    def literal(self, breakers: str) -> str:
        out: list[str] = []
        escaped = False
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if not escaped:
                if c == "\\":
                    escaped = True
                    continue
                if c in breakers:
                    self.pos -= 1
                    break
            escaped = False
            out.append(c)
        return "".join(out)

    def brackets(self) -> str:
        negate = self.text.startswith("!", self.pos)
        if negate:
            self.pos += 1
        if self.pos >= len(self.text):
            raise ValueError("unexpected end of input")
        first = self.text[self.pos]
        if self.text.startswith("-", self.pos + 1):
            if self.pos + 2 >= len(self.text):
                raise ValueError("unexpected end of input")
            lo, hi = first, self.text[self.pos + 2]
            self.pos += 3
            if hi < lo:
                raise ValueError(f"hi character {hi!r} should be greater than lo {lo!r}")
            body = f"{re.escape(lo)}-{re.escape(hi)}"
        else:
            chars = self.literal("]")
            if not chars:
                raise ValueError("could not parse range")
            body = "".join(re.escape(c) for c in chars)
        if self.pos >= len(self.text):
            raise ValueError("unexpected end of input")
        if self.text[self.pos] != "]":
            raise ValueError("expected close range character")
        self.pos += 1
        return f"[{'^' if negate else ''}{body}]"
