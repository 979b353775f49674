"""globPattern as gobwas/glob v0.2.3 (no separators) matches, which KEDA's azure-blob uses."""

from __future__ import annotations

import pytest

from scalers.azure_glob import compile_glob

# pattern -> (names matched, names not matched)
CASES = [
    ("*.json", ("a.json", "in/sub/b.json", ".json"), ("a.jsonl", "a.txt")),
    ("**", ("", "a/b/c"), ()),
    ("in/?.txt", ("in/1.txt", "in/a.txt", "in//.txt"), ("in/12.txt", "in/.txt")),
    ("[abc]*", ("a", "cz/x"), ("d", "")),
    ("[!abc]*", ("d", "z/a"), ("a", "")),
    ("[a-c]x", ("bx",), ("dx", "Bx")),
    ("[!a-c]x", ("dx",), ("ax",)),
    ("{a,b/c}.json", ("a.json", "b/c.json"), ("c.json", "{a,b/c}.json")),
    ("{a,{b,c}d}", ("a", "bd", "cd"), ("d", "b")),
    ("x{}y", (), ("xy", "x{}y")),  # an empty brace matches nothing, in gobwas
    ("*{", (), ("", "a", "a{")),
    ("a,b}", ("a,b}",), ("a",)),  # , and } are plain outside braces
    ("a]", ("a]",), ()),
    (r"\*.json", ("*.json",), ("a.json",)),
    (r"[\]]", ("]",), ("a",)),
    ("{a,b", ("a", "b"), ("{a,b",)),  # an open brace ends with the pattern
    ("a.b", ("a.b",), ("aXb",)),  # . is a plain character
    ("(x)+", ("(x)+",), ("xx",)),
]


@pytest.mark.parametrize(("pattern", "matched", "unmatched"), CASES, ids=[c[0] for c in CASES])
def test_glob_matches_whole_names(
    pattern: str, matched: tuple[str, ...], unmatched: tuple[str, ...]
) -> None:
    compiled = compile_glob(pattern)
    for name in matched:
        assert compiled.match(name), f"{pattern!r} should match {name!r}"
    for name in unmatched:
        assert not compiled.match(name), f"{pattern!r} should not match {name!r}"


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("[", "unexpected end of input"),
        ("[abc", "unexpected end of input"),
        ("[]", "could not parse range"),
        ("[a-z0-9]", "expected close range character"),
        ("[z-a]", "should be greater than"),
        ("[a-", "unexpected end of input"),
    ],
)
def test_patterns_gobwas_refuses(pattern: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        compile_glob(pattern)
