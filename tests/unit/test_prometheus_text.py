"""The Prometheus text format and metric selectors, read as KEDA's metrics-api reads them.

The syntax cases were also run through expfmt v0.66.1 (KEDA's) itself: same families,
values and refusals, but for how a summary's or histogram's valueless parts are grouped."""

from __future__ import annotations

import math

import pytest

from scalers.prometheus_text import (
    FormatError,
    Selector,
    find_value,
    parse_families,
    parse_selector,
)

# KEDA's own TestGetValueFromResponse input (metrics_api_scaler_test.go), indented as there.
KEDA_INPUT = """# HELP backend_queue_size Total number of items
\t# TYPE backend_queue_size counter
\tbackend_queue_size{queueName="zero"} 0
\tbackend_queue_size{queueName="one"} 1
\tbackend_queue_size{queueName="two", instance="random"} 2
\tbackend_queue_size{queueName="two", instance="zero"} 20
\t# HELP random_metric Random metric generate to include noise
\t# TYPE random_metric counter
\trandom_metric 10"""


def value(text: str, location: str) -> float:
    return find_value(parse_families(text), parse_selector(location))


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("random_metric", 10),
        ('backend_queue_size{queueName="one"}', 1),
        ('backend_queue_size{queueName="two"}', 2),  # the first sample that has the label
        ('backend_queue_size{queueName="two", instance="zero"}', 20),
        ('{__name__="random_metric"}', 10),
        ('{"random_metric"}', 10),
        ("backend_queue_size{queueName='one',}", 1),
    ],
)
def test_keda_cases(location: str, expected: float) -> None:
    assert value(KEDA_INPUT, location) == expected


def test_keda_invalid_selector_is_refused() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        parse_selector("backend_queue_size{invalid=test}")


def test_the_matcher_operator_is_not_applied_as_in_keda() -> None:
    """KEDA compares each matcher's value for equality, whatever its operator."""
    assert value(KEDA_INPUT, 'backend_queue_size{queueName!="one"}') == 1
    with pytest.raises(LookupError, match="no untyped, counter or gauge sample"):
        value(KEDA_INPUT, 'backend_queue_size{queueName=~"o.*"}')


def test_a_label_the_sample_lacks_never_matches() -> None:
    with pytest.raises(LookupError):
        value("up 1\n", 'up{job=""}')


def test_missing_metric_is_named() -> None:
    with pytest.raises(LookupError, match="metric 'nope' not found"):
        value(KEDA_INPUT, "nope")


def test_summary_and_histogram_parts_have_no_value() -> None:
    text = (
        '# TYPE lat summary\nlat{quantile="0.5"} 1\nlat_sum 2\nlat_count 3\n'
        '# TYPE h histogram\nh_bucket{le="1"} 4\nh_sum 5\nh_count 6\n'
        "other_count 7\n"
    )
    families = parse_families(text)
    assert set(families) == {"lat", "h", "other_count"}
    for location in ("lat", "lat_count", "h_bucket", "h"):
        with pytest.raises(LookupError):
            find_value(families, parse_selector(location))
    assert find_value(families, parse_selector("other_count")) == 7


def test_gauge_untyped_quoted_names_escapes_and_timestamps() -> None:
    text = (
        "# TYPE depth gauge\n"
        'depth{q="a\\"b\\\\c\\nd"} 3 1700000000000\n'
        '{"queue.depth", "q.name"="x"} +Inf\n'
        "nan_metric NaN\n"
        "   \n"
        "# a comment line\n"
    )
    families = parse_families(text)
    assert families["depth"].type == "gauge"
    assert families["depth"].samples == [({"q": 'a"b\\c\nd'}, 3.0)]
    assert families["queue.depth"].samples == [({"q.name": "x"}, math.inf)]
    assert math.isnan(find_value(families, Selector("nan_metric")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo 1 \n", "line 1: expected integer as timestamp, got ''"),
        ("foo\n", "line 1: expected float as value, got ''"),
        ("ok 1\nfoo x\n", "line 2: expected float as value, got 'x'"),
        ("foo 0x1p3\n", "expected float as value"),
        ("foo 1_000\n", "expected float as value"),
        ("foo 1e999\n", "expected float as value"),
        ("foo 1 2 3\n", "spurious string after timestamp: ' 3'"),
        ('foo{a="b" 1\n', "unexpected end of label value 'b'"),
        ('foo{a="\\q"} 1\n', "invalid escape sequence '\\q'"),
        ("foo{a=b} 1\n", "expected '\"' at start of label value"),
        ('foo{a="1",a="2"} 1\n', "duplicate label names for metric 'foo'"),
        ('foo{__name__="x"} 1\n', 'label name "__name__" is reserved'),
        ('{a="b"} 1\n', "invalid metric name"),
        ('{"x", "y"} 1\n', "multiple metric names"),
        ("foo 1\n# TYPE foo gauge\n", "line 2: second TYPE line for metric name 'foo'"),
        ("# HELP foo a\n# HELP foo b\n", "second HELP line"),
        ("# TYPE foo info\n", "unknown metric type 'info'"),
        ("# HELP 1x y\n", "invalid metric name in comment"),
        ("1x 1\n", "invalid metric name"),
        ("foo 1\rbar\n", "expected float as value"),
        ('# TYPE s summary\ns{quantile="x"} 1\n', "expected float as value for 'quantile' label"),
        ('# TYPE h histogram\nh_bucket{le="a"} 1\n', "expected float as value for 'le' label"),
    ],
)
def test_syntax_errors_fail_the_whole_answer(text: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_families(text)
    assert message in str(info.value)


def test_type_is_case_insensitive_and_comments_may_end_early() -> None:
    families = parse_families("# TYPE foo GAUGE\n# HELP\n# TYPE bar\nfoo 2\n#\n")
    assert families["foo"].type == "gauge" and find_value(families, Selector("foo")) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up", Selector("up")),
        ("job:rate5m", Selector("job:rate5m")),
        (
            'up{job="a",  instance = `raw\\n` }',
            Selector("up", (("job", "a"), ("instance", "raw\\n"))),
        ),
        ("up{job='\\x41\\u00e9\\101\\t'}", Selector("up", (("job", "A\u00e9A\t"),))),
        ('{__name__=~"up", "a.b"!="c"}', Selector("up", (("a.b", "c"),))),
        ("sum{}", Selector("sum")),
    ],
)
def test_selectors(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no metric"),
        ('{job="a"}', "names no metric"),
        ('up{__name__="x"}', "metric name must not be set twice"),
        ("up[5m]", "unexpected"),
        ("up offset 5m", "unexpected"),
        ("up{,}", "unexpected ','"),
        ('up{job=~"("}', "invalid regular expression"),
        ('up{job="\\q"}', "invalid escape sequence"),
        ('up{a:b="c"}', "unexpected"),
        ("up{job}", "unexpected"),
    ],
)
def test_bad_selectors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_selector(text)
