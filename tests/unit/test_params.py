"""The one metadata parser every scaler shares (KEDA's ``typed_config.go``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

import pytest

from scalers.errors import Problems
from scalers.params import Source, TriggerInputs, TriggerMetadata, param, parse_params

PATH = "triggers[1].metadata"


@dataclass(frozen=True)
class Meta(TriggerMetadata):
    stream: str = param("stream")
    lag_threshold: int = param("lagThreshold", default="10", gt=0)
    ratio: float = param("ratio", default="0.5", ge=0)
    use_https: bool = param("useHttps", default="false")
    mode: str = param("mode", default="fast", enum=("fast", "slow"))
    host: str | None = param("host", order=(Source.TRIGGER, Source.ENV, Source.AUTH), optional=True)
    token: str | None = param("token", order=(Source.AUTH, Source.TRIGGER), optional=True)
    tags: tuple[str, ...] | None = param("tags", optional=True)


@dataclass(frozen=True)
class Window(TriggerMetadata):
    low: int = param("low")
    high: int = param("high")

    def check(self) -> Iterator[tuple[str, str]]:
        if self.low >= self.high:
            yield "high", f"{self.high} must be greater than low {self.low}"


def parse(
    metadata: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
) -> tuple[Meta | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, env or {}, auth or {}, path=PATH)
    return parse_params(Meta, inputs, problems), [str(p) for p in problems]


def parse_ok(
    metadata: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
) -> Meta:
    meta, problems = parse(metadata, env, auth)
    assert problems == []
    assert meta is not None
    return meta


def test_defaults_apply_when_no_source_has_the_parameter() -> None:
    meta = parse_ok({"stream": "JOBS"})
    assert meta == Meta(
        stream="JOBS",
        lag_threshold=10,
        ratio=0.5,
        use_https=False,
        mode="fast",
        host=None,
        token=None,
        tags=None,
    )
    assert type(meta.lag_threshold) is int
    assert type(meta.ratio) is float


def test_trigger_metadata_comes_first_by_default_order() -> None:
    meta = parse_ok(
        {"stream": "S", "host": "from-metadata", "hostFromEnv": "HOST"},
        env={"HOST": "from-env"},
        auth={"host": "from-auth"},
    )
    assert meta.host == "from-metadata"


def test_env_is_read_through_the_from_env_key() -> None:
    meta = parse_ok({"stream": "S", "hostFromEnv": "HOST"}, env={"HOST": "from-env"})
    assert meta.host == "from-env"


def test_auth_params_are_the_last_resort() -> None:
    assert parse_ok({"stream": "S"}, auth={"host": "from-auth"}).host == "from-auth"


def test_order_auth_first_prefers_auth_params() -> None:
    meta = parse_ok({"stream": "S", "token": "from-metadata"}, auth={"token": "from-auth"})
    assert meta.token == "from-auth"
    assert parse_ok({"stream": "S", "token": "from-metadata"}).token == "from-metadata"


def test_a_source_outside_the_order_is_never_read() -> None:
    # ``stream`` is trigger-metadata only: authParams must not satisfy it.
    meta, problems = parse({}, auth={"stream": "S"})
    assert meta is None
    assert problems == [f"{PATH}.stream: is required"]


@pytest.mark.parametrize(
    ("metadata", "auth"),
    [
        ({"stream": "S", "host": ""}, {"host": "from-auth"}),
        ({"stream": "S"}, {"host": ""}),
    ],
)
def test_empty_string_counts_as_missing(metadata: dict[str, str], auth: dict[str, str]) -> None:
    meta = parse_ok(metadata, auth=auth)
    assert meta.host == (auth["host"] or None)


def test_empty_required_value_is_required() -> None:
    assert parse({"stream": ""})[1] == [f"{PATH}.stream: is required"]


def test_empty_env_value_counts_as_missing() -> None:
    @dataclass(frozen=True)
    class Lag(TriggerMetadata):
        lag: int = param("lag", order=(Source.TRIGGER, Source.ENV), default="10")

    problems = Problems()
    inputs = TriggerInputs({"lagFromEnv": "LAG"}, {"LAG": ""}, path=PATH)
    assert parse_params(Lag, inputs, problems) == Lag(lag=10)
    assert list(problems) == []


def test_enum_value_is_returned_as_checked() -> None:
    assert parse_ok({"stream": "S", "mode": " slow "}).mode == "slow"


def test_from_env_naming_an_unset_variable_is_a_problem() -> None:
    meta, problems = parse({"stream": "S", "hostFromEnv": "NOPE"}, env={"OTHER": "x"})
    assert meta is None
    assert problems == [
        f'{PATH}.hostFromEnv: environment variable "NOPE" is not set on the scale target\'s '
        "container"
    ]


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"lagThreshold": "ten"}, 'lagThreshold: "ten" is not a number'),
        ({"lagThreshold": "2.5"}, 'lagThreshold: "2.5" is not a whole number'),
        ({"lagThreshold": "0"}, 'lagThreshold: "0" must be greater than 0'),
        ({"lagThreshold": "-3"}, 'lagThreshold: "-3" must be greater than 0'),
        ({"ratio": "-0.1"}, 'ratio: "-0.1" must be at least 0'),
        ({"ratio": "half"}, 'ratio: "half" is not a number'),
        ({"ratio": "nan"}, 'ratio: "nan" is not a number'),
        ({"ratio": "inf"}, 'ratio: "inf" is not a number'),
        ({"ratio": "1e999"}, 'ratio: "1e999" is out of range for a number'),
        # KEDA reads numbers with json.Unmarshal: what JSON refuses, it refuses.
        ({"ratio": "+1"}, 'ratio: "+1" is not a number'),
        ({"ratio": ".5"}, 'ratio: ".5" is not a number'),
        ({"ratio": "5."}, 'ratio: "5." is not a number'),
        ({"ratio": "1_0"}, 'ratio: "1_0" is not a number'),
        ({"lagThreshold": "+5"}, 'lagThreshold: "+5" is not a number'),
        ({"lagThreshold": "010"}, 'lagThreshold: "010" is not a number'),
        ({"lagThreshold": "1e3"}, 'lagThreshold: "1e3" is not a whole number'),
        ({"lagThreshold": "1_000"}, 'lagThreshold: "1_000" is not a number'),
        (
            {"lagThreshold": "9223372036854775808"},
            'lagThreshold: "9223372036854775808" is out of range for a 64-bit integer',
        ),
        ({"useHttps": "yes"}, 'useHttps: "yes" is not a boolean (expected true or false)'),
        ({"useHttps": "tRuE"}, 'useHttps: "tRuE" is not a boolean (expected true or false)'),
        ({"useHttps": "maybe"}, 'useHttps: "maybe" is not a boolean (expected true or false)'),
        ({"mode": "medium"}, 'mode: "medium" is not one of: fast, slow'),
    ],
)
def test_bad_values_name_the_field_and_the_value(metadata: dict[str, str], problem: str) -> None:
    meta, problems = parse({"stream": "S", **metadata})
    assert meta is None
    assert problems == [f"{PATH}.{problem}"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # exactly Go's strconv.ParseBool, which KEDA uses
        *[("true", True), ("True", True), ("TRUE", True), ("1", True), ("t", True), ("T", True)],
        *[("false", False), ("False", False), ("FALSE", False), ("0", False), ("f", False)],
        ("F", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert parse_ok({"stream": "S", "useHttps": raw}).use_https is expected


@pytest.mark.parametrize(
    ("field", "raw", "attr", "expected"),
    [
        ("lagThreshold", " 25 ", "lag_threshold", 25),
        ("ratio", "0", "ratio", 0.0),
        ("ratio", "1e2", "ratio", 100.0),
        ("ratio", "0.25E+1", "ratio", 2.5),
        ("tags", "a, b,,c ", "tags", ("a", "b", "c")),
    ],
)
def test_numbers_and_lists_are_converted(field: str, raw: str, attr: str, expected: object) -> None:
    value = getattr(parse_ok({"stream": "S", field: raw}), attr)
    assert value == expected
    assert type(value) is type(expected)


def test_bad_auth_param_value_names_the_trigger() -> None:
    @dataclass(frozen=True)
    class AuthLag(TriggerMetadata):
        lag: int = param("lag", order=(Source.AUTH,))

    found = Problems()
    inputs = TriggerInputs({}, {}, {"lag": "ten"}, path=PATH)
    assert parse_params(AuthLag, inputs, found) is None
    [problem] = found
    assert problem.message == '"ten" is not a number'
    assert problem.path.startswith("triggers[1].")


def test_every_problem_is_reported_at_once() -> None:
    meta, problems = parse(
        {"lagThreshold": "ten", "useHttps": "maybe", "mode": "x", "hostFromEnv": "H"}
    )
    assert meta is None
    assert problems == [
        f"{PATH}.stream: is required",
        f'{PATH}.lagThreshold: "ten" is not a number',
        f'{PATH}.useHttps: "maybe" is not a boolean (expected true or false)',
        f'{PATH}.mode: "x" is not one of: fast, slow',
        f'{PATH}.hostFromEnv: environment variable "H" is not set on the scale target\'s container',
    ]


def test_check_hook_runs_after_a_clean_parse_with_paths() -> None:
    problems = Problems()
    inputs = TriggerInputs({"low": "5", "high": "5"}, path=PATH)
    assert parse_params(Window, inputs, problems) is None
    assert [str(p) for p in problems] == [f"{PATH}.high: 5 must be greater than low 5"]

    problems = Problems()
    ok = parse_params(Window, TriggerInputs({"low": "1", "high": "5"}, path=PATH), problems)
    assert ok == Window(low=1, high=5)
    assert len(problems) == 0


def test_check_hook_is_skipped_when_fields_are_already_wrong() -> None:
    problems = Problems()
    inputs = TriggerInputs({"low": "x", "high": "1"}, path=PATH)
    assert parse_params(Window, inputs, problems) is None
    assert [str(p) for p in problems] == [f'{PATH}.low: "x" is not a number']


def test_problems_of_one_trigger_add_to_those_already_collected() -> None:
    problems = Problems()
    problems.add("triggers[0].metadata.stream", "is required")
    ok = parse_params(Window, TriggerInputs({"low": "1", "high": "2"}, path=PATH), problems)
    assert ok == Window(low=1, high=2)
    assert len(problems) == 1


def test_secret_parameters_never_appear_in_a_repr() -> None:
    @dataclass(frozen=True)
    class Auth(TriggerMetadata):
        user: str = param("user", order=(Source.AUTH,))
        password: str = param("password", order=(Source.AUTH,), secret=True)

    parsed = parse_params(
        Auth, TriggerInputs({}, {}, {"user": "u", "password": "hunter2"}), Problems()
    )
    assert parsed is not None and parsed.password == "hunter2"
    assert "hunter2" not in repr(parsed) and "user='u'" in repr(parsed)


def test_an_integer_beyond_64_bits_is_out_of_range_as_in_keda() -> None:
    """Found by test_hostile_objects: 1,000 nines overflowed the float of a target."""
    meta, problems = parse({"stream": "JOBS", "lagThreshold": "9" * 1000})
    assert meta is None
    assert len(problems) == 1 and "lagThreshold" in problems[0]
    assert "is out of range for a 64-bit integer" in problems[0]
    assert parse_ok({"stream": "JOBS", "lagThreshold": str(2**63 - 1)}).lag_threshold == 2**63 - 1


@dataclass(frozen=True)
class Aliased(TriggerMetadata):
    address: str = param("address", order=(Source.TRIGGER, Source.AUTH), aliases=("addresses",))
    timeout: timedelta | None = param("timeout", optional=True)  # noqa: RUF009 (frozen)


def test_aliases_are_looked_up_in_each_source_in_order() -> None:
    """KEDA's ``name=address;addresses``: every name in the first source, then the next."""
    found = Problems()
    both = TriggerInputs({"addresses": "m:1"}, {}, {"address": "a:1"}, path=PATH)
    meta = parse_params(Aliased, both, found)
    assert meta is not None and meta.address == "m:1"
    first = TriggerInputs({"address": "x:1", "addresses": "y:1"}, path=PATH)
    meta = parse_params(Aliased, first, found)
    assert meta is not None and meta.address == "x:1"
    assert list(found) == []


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("30s", 30.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("500", 0.5), ("+2s", 2.0), ("0", 0.0)],
)
def test_durations_are_go_durations_or_milliseconds(raw: str, seconds: float) -> None:
    found = Problems()
    meta = parse_params(Aliased, TriggerInputs({"address": "a", "timeout": raw}), found)
    assert meta is not None and meta.timeout == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("-1s", '"-1s" is negative'),
        ("-5", '"-5" is negative'),
        ("5 s", '"5 s" is not a duration (30s, 1m30s) or milliseconds'),
        ("1d", '"1d" is not a duration (30s, 1m30s) or milliseconds'),
    ],
)
def test_bad_durations_are_refused(raw: str, problem: str) -> None:
    found = Problems()
    inputs = TriggerInputs({"address": "a", "timeout": raw}, path=PATH)
    assert parse_params(Aliased, inputs, found) is None
    assert [str(p) for p in found] == [f"{PATH}.timeout: {problem}"]


def test_an_empty_env_value_falls_through_to_the_next_source() -> None:
    """KEDA skips an empty value and looks further (its ``configParamValue``)."""
    meta = parse_ok({"stream": "S", "hostFromEnv": "HOST"}, env={"HOST": " "}, auth={"host": "a"})
    assert meta.host == "a"


def test_a_huge_integer_is_out_of_range_without_converting_it() -> None:
    """Python refuses int() of over 4300 digits; the parser must not reach it."""
    meta, problems = parse({"stream": "S", "lagThreshold": "9" * 5000})
    assert meta is None
    assert problems[0].endswith("is out of range for a 64-bit integer")
