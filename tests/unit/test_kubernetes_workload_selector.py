"""podSelector is parsed as apimachinery's ``labels.Parse`` parses it.

Every row was run through ``labels.Parse`` of k8s.io/apimachinery v0.34.1: a valid one
gives the ``String()`` apimachinery writes (the text we send and share queries on); an
invalid one is refused by both, our message saying what apimachinery's says.
"""

from __future__ import annotations

import pytest

from scalers.label_selector import SelectorError, parse_label_selector

VALID = [
    ("app=x", "app=x"),
    ("app=x,tier in (a,b),!legacy", "app=x,!legacy,tier in (a,b)"),
    ("app==x", "app==x"),
    ("app!=x", "app!=x"),
    ("app", "app"),
    ("!app", "!app"),
    ("a in ()", "a in ()"),
    ("a in (,)", "a in ()"),
    ("a in (,b)", "a in (,b)"),
    ("a in (b,)", "a in (,b)"),
    ("a in (b,,c)", "a in (,b,c)"),
    ("a notin (x,y)", "a notin (x,y)"),
    ("a>3", "a>3"),
    ("a>3,a<9", "a>3,a<9"),
    ("a>03", "a>03"),
    ("a=", "a="),
    ("a=,b=c", "a=,b=c"),
    ("a!=", "a!="),
    ("  a = b  ,  c  ", "a=b,c"),
    ("", ""),
    (" ", ""),
    ("in=x", "in=x"),
    ("notin in (in, notin)", "notin in (in,notin)"),
    ("a = in", "a=in"),
    ("in in (in)", "in in (in)"),
    ("!in", "!in"),
    ("example.com/a=b", "example.com/a=b"),
    ("k8s.io/name in (x),k8s.io/name=y", "k8s.io/name in (x),k8s.io/name=y"),
    ("a=b.c_d", "a=b.c_d"),
    ("A=B", "A=B"),
    ("a\t=\tb", "a=b"),
    ("a == b", "a==b"),
    ("b=1,a=2,a in (z,y)", "a=2,a in (y,z),b=1"),
    ("a in (c,b,a),a notin (q)", "a in (a,b,c),a notin (q)"),
    ("!a,!b", "!a,!b"),
    ("app in(a,b)", "app in (a,b)"),
    ("a in ( a , b )", "a in (a,b)"),
    ("x" * 63 + "=" + "y" * 63, "x" * 63 + "=" + "y" * 63),
]

INVALID = [
    (",", "found ',', expected: !, identifier, or end of string"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("!a=b", "found '=', expected: ',' or end of string"),
    ("!!a", "found '!', expected: identifier"),
    ("a in b", "found 'b' expected: '('"),
    ("a in (b", "found '', expected: ',' or ')'"),
    ("a in (b c)", "found 'c', expected: ',' or ')'"),
    ("a in (,,)", "found ')', expected: ',', or identifier"),
    ("a in ()x", "found 'x', expected: ',' or end of string"),
    ("a (b)", "found '(', expected: in, notin, =, ==, !=, gt, lt"),
    ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b=c", "found '=', expected: ',' or end of string"),
    ("a=(b)", "found '(', expected: identifier"),
    ("a>=3", "found '=', expected: identifier"),
    ("a!==b", "found '=', expected: identifier"),
    ("a>x", "value 'x' for '>' must be an integer"),
    ("a<", "value '' for '<' must be an integer"),
    ("a>99999999999999999999", "must be an integer"),
    ("a>+3", "value '+3' must be empty or consist of alphanumeric characters"),
    ("a=b-", "value 'b-' must be empty or consist of alphanumeric characters"),
    ("a=é", "value 'é' must be empty or consist"),
    ("a=" + "v" * 64, "must be no more than 63 characters"),
    ("Example.com/a=b", "prefix must be a lowercase DNS subdomain"),
    ("/a=b", "key '/a': prefix part must be non-empty"),
    ("a/=b", "key 'a/': name part must be non-empty"),
    ("a/b/c=d", "must be a name with an optional DNS subdomain prefix"),
    ("-a=b", "key '-a': name part must consist of alphanumeric characters"),
    ("_a=b", "key '_a': name part must consist"),
    ("x" * 64 + "=y", "name part must be no more than 63 characters"),
    ("!", "found '', expected: identifier"),
    ("=b", "found '=', expected: !, identifier, or end of string"),
    ("a!", "found '!', expected: in, notin, =, ==, !=, gt, lt"),
]


@pytest.mark.parametrize(("text", "canonical"), VALID)
def test_a_valid_selector_reads_as_apimachinery_writes_it(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical
    assert str(parse_label_selector(canonical)) == canonical


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_an_invalid_selector_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(SelectorError) as error:
        parse_label_selector(text)
    assert reason in str(error.value)
