"""YAML answers decoded as yaml.v3 decodes them and walked as KEDA's GetValueByPath walks."""

from __future__ import annotations

import math

import pytest

from scalers.yaml_document import PathError, YamlError, parse, value_at

# KEDA's own TestGetValueFromResponse input (metrics_api_scaler_test.go).
KEDA_INPUT = "{components: [{id: 82328e93e, tasks: 32, str: '64', k: 1k, wrong: NaN}], count: 2.43}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("count", 2.43),
        ("components.0.str", "64"),
        ("components.0.tasks", 32),
        ("components.0.k", "1k"),
        ("components.0.wrong", "NaN"),  # a string to yaml.v3: KEDA's quantity parse fails
        ("components.0.id", "82328e93e"),
    ],
)
def test_keda_cases(path: str, expected: object) -> None:
    assert value_at(parse(KEDA_INPUT), path) == expected


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("yes", "yes"),  # YAML 1.1 (PyYAML) would say True
        ("on", "on"),
        ("True", True),
        ("~", None),
        ("null", None),
        ("012", 10),  # Go's ParseInt base 0: octal
        ("0o12", 10),
        ("0x1F", 31),
        ("0b101", 5),
        ("-0b101", -5),
        ("+0b11", 3),
        ("-0x10", -16),
        ("1_000", 1000),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("+12", 12),
        ("08", 8.0),  # not octal: a YAML float
        ("2001-12-14", "2001-12-14"),  # timestamps stay text in an interface{}
        ("1:20", "1:20"),  # no sexagesimal
        ("'5'", "5"),
        ("!!str 5", "5"),
        ("!!int '7'", 7),
        ("18446744073709551615", 18446744073709551615),  # a uint64 to yaml.v3
        ("99999999999999999999", 1e20),
    ],
)
def test_scalars_resolve_as_yaml_v3(scalar: str, expected: object) -> None:
    found = value_at(parse(f"v: {scalar}"), "v")
    assert found == expected and type(found) is type(expected)


def test_special_floats() -> None:
    assert math.isnan(value_at(parse("v: .nan"), "v"))  # type: ignore[arg-type]
    assert value_at(parse("v: -.Inf"), "v") == -math.inf


def test_the_walk_stops_at_the_first_scalar_and_needs_a_value_at_the_end() -> None:
    document = parse("a:\n  b: 3\n  list: [1, [2, 3]]\n")
    assert value_at(document, "a.b.c.d") == 3  # KEDA returns the first scalar it reaches
    assert value_at(document, "a.list.1.0") == 2
    with pytest.raises(PathError, match="does not lead to a value"):
        value_at(document, "a")
    with pytest.raises(PathError, match=r"key 'x' not found in path 'a\.x'"):
        value_at(document, "a.x")
    with pytest.raises(PathError, match="key '9' not found"):
        value_at(document, "a.list.9")


def test_keys_as_yaml_v3_writes_them() -> None:
    """At the top, a key is its text; deeper, the text of its decoded value (Go's %v)."""
    document = parse("0x10: top\nn:\n  0x10: hex\n  1.0: one\n  true: yes\n  a.b: dotted\n")
    assert value_at(document, "0x10") == "top"
    assert value_at(document, "n.16") == "hex"
    assert value_at(document, "n.1") == "one"
    assert value_at(document, "n.true") == "yes"
    with pytest.raises(PathError):  # no escapes: a dotted key cannot be reached
        value_at(document, "n.a.b")


def test_anchors_and_merge_keys() -> None:
    document = parse("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 5\n")
    assert value_at(document, "derived.x") == 1
    assert value_at(document, "derived.y") == 5


def test_only_the_first_document_and_empty_answers() -> None:
    assert value_at(parse("v: 1\n---\nv: 2\n"), "v") == 1
    assert parse("") is None
    with pytest.raises(PathError, match="key 'v' not found"):
        value_at(parse("# nothing\n"), "v")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n- 2\n", "the document is a list, expected a mapping"),
        ("just text", "the document is a string"),
        ("a: 1\na: 2\n", "mapping key 'a' already defined"),
        ("a: [1\n", "expected ',' or ']'"),
        ("a: \udcff\n", "special characters are not allowed"),
    ],
)
def test_what_yaml_v3_refuses(text: str, message: str) -> None:
    with pytest.raises(YamlError, match=message):
        parse(text)
