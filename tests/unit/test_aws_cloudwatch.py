"""``aws-cloudwatch``: parameters as KEDA reads them, its time window, sharing, and measure()."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scalers import aws_cloudwatch
from scalers.errors import Problems, SourceResponseError
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
KEYS = {"awsAccessKeyID": "AKIAUNITTEST", "awsSecretAccessKey": "very-secret-key"}
BASE = {
    "namespace": "AWS/SQS",
    "metricName": "ApproximateNumberOfMessagesVisible",
    "dimensionName": "QueueName",
    "dimensionValue": "jobs",
    "targetMetricValue": "2",
    "minMetricValue": "0",
    "awsRegion": "eu-west-1",
}


def create(metadata: dict[str, str]) -> tuple[aws_cloudwatch.AwsCloudwatchScaler | None, list[str]]:
    problems = Problems()
    scaler = aws_cloudwatch.KIND.create(TriggerInputs(metadata, {}, KEYS, path=P), problems)
    assert scaler is None or isinstance(scaler, aws_cloudwatch.AwsCloudwatchScaler)
    return scaler, [str(p) for p in problems]


def built(**change: str) -> aws_cloudwatch.AwsCloudwatchScaler:
    scaler, problems = create({**BASE, **change})
    assert problems == [] and scaler is not None
    return scaler


def test_defaults_are_keda_s() -> None:
    s = built()
    q = s.query
    assert (q.stat, q.period, q.collection_time, q.end_offset) == ("Average", 300, 300, 0)
    assert s.meta.ignore_null_values is True
    assert (s.target, s.activation_target, s.metric_name) == (2.0, 0.0, "aws-cloudwatch")


def test_required_without_an_expression() -> None:
    meta = {k: v for k, v in BASE.items() if k in ("targetMetricValue", "minMetricValue")}
    _, problems = create({**meta, "awsRegion": "x"})
    without = "is required without an expression"
    assert problems == [
        f"{P}.namespace: {without}",
        f"{P}.metricName: {without}",
        f"{P}.dimensionName: {without}",
        f"{P}.dimensionValue: {without}",
    ]
    s = built(expression="SELECT AVG(x) FROM y", namespace="", metricName="", dimensionName="")
    assert (s.query.expression, s.query.namespace, s.query.dimensions) == (
        "SELECT AVG(x) FROM y",
        None,
        (),
    )


def test_min_metric_value_and_target_are_required_as_in_keda() -> None:
    meta = {k: v for k, v in BASE.items() if k not in ("targetMetricValue", "minMetricValue")}
    _, problems = create(meta)
    assert problems == [f"{P}.targetMetricValue: is required", f"{P}.minMetricValue: is required"]


def test_dimensions_are_split_on_semicolons() -> None:
    s = built(dimensionName="QueueName; Env", dimensionValue="a,b;prod")
    assert s.query.dimensions == (("QueueName", "a,b"), ("Env", "prod"))
    _, problems = create({**BASE, "dimensionName": "a;b", "dimensionValue": "c"})
    assert problems == [
        f"{P}.dimensionValue: has 1 values for 2 dimensionName names (separated by ';')"
    ]


@pytest.mark.parametrize(
    ("period", "collection", "problem"),
    [
        ("7", "300", "metricStatPeriod: 7 is not one of 1, 5, 10, 30, 60 (below 60 s)"),
        ("0", "300", "metricStatPeriod: 0 must be at least 1 (seconds)"),
        ("90", "300", "metricStatPeriod: 90 is not a multiple of 60 (above 60 s)"),
        (
            "60",
            "90",
            "metricCollectionTime: 90 must be greater than 0 and a multiple of "
            "metricStatPeriod (60)",
        ),
        (
            "60",
            "0",
            "metricCollectionTime: 0 must be greater than 0 and a multiple of "
            "metricStatPeriod (60)",
        ),
    ],
)
def test_period_and_collection_time_as_keda_checks_them(
    period: str, collection: str, problem: str
) -> None:
    _, problems = create({**BASE, "metricStatPeriod": period, "metricCollectionTime": collection})
    assert problems == [f"{P}.{problem}"]


def test_unit_is_a_cloudwatch_standard_unit() -> None:
    assert built(metricUnit="Bytes/Second").query.unit == "Bytes/Second"
    _, problems = create({**BASE, "metricUnit": "bytes"})
    assert problems and problems[0].startswith(f'{P}.metricUnit: "bytes" is not one of: Seconds,')


def test_the_window_is_keda_s() -> None:
    q = built(metricStatPeriod="60", metricCollectionTime="300", metricEndTimeOffset="30").query
    now = datetime(2026, 1, 2, 3, 4, 50, 500000, tzinfo=UTC).timestamp()  # 30 s offset: 3:04:20.5
    start, end = q.window(now)
    assert end == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert start == datetime(2026, 1, 2, 2, 59, tzinfo=UTC)
    assert q.window(now + 39)[1] == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert q.window(now + 40)[1] == datetime(2026, 1, 2, 3, 5, tzinfo=UTC)


def test_a_period_not_dividing_a_day_truncates_from_go_s_zero_time() -> None:
    # Go's Time.Truncate(420s) counts from 0001-01-01, not 1970-01-01, which is
    # 62135596800 s later: not a multiple of 420 s.
    q = built(metricStatPeriod="420", metricCollectionTime="420").query
    _, end = q.window(0.0)
    assert (end.timestamp() + 62135596800) % 420 == 0
    assert -420 < end.timestamp() <= 0
    assert end.timestamp() != 0  # the epoch is not on Go's grid for 420 s


def test_the_request_is_keda_s() -> None:
    q = built(metricUnit="Count", awsAccountId="111122223333").query
    request = q.request(datetime(2026, 1, 2, 3, 4, 50, tzinfo=UTC).timestamp())
    assert request["ScanBy"] == "TimestampDescending"
    assert request["MetricDataQueries"] == [
        {
            "Id": "c1",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": "QueueName", "Value": "jobs"}],
                },
                "Period": 300,
                "Stat": "Average",
                "Unit": "Count",
            },
            "ReturnData": True,
            "AccountId": "111122223333",
        }
    ]
    expr = built(expression="SELECT MAX(x) FROM y", metricStatPeriod="60").query.request(0)
    assert expr["MetricDataQueries"] == [
        {"Id": "q1", "Expression": "SELECT MAX(x) FROM y", "Period": 60}
    ]


def test_what_only_the_trigger_decides_is_not_in_the_query() -> None:
    one = built()
    other = built(
        targetMetricValue="9",
        activationTargetMetricValue="3",
        minMetricValue="1",
        ignoreNullValues="false",
    )
    assert one.query == other.query and hash(one.query) == hash(other.query)
    assert built(metricStat="Sum").query != one.query
    assert built(metricEndTimeOffset="60").query != one.query


def test_measure_the_newest_or_the_minimum() -> None:
    D = aws_cloudwatch.Datapoints
    s = built(minMetricValue="1.5")
    assert s.measure(D((7.0, 3.0))) == 7.0
    assert s.measure(D(())) == 1.5
    assert s.measure(D(None)) == 1.5
    strict = built(minMetricValue="1.5", ignoreNullValues="false")
    with pytest.raises(SourceResponseError, match="no datapoint in the window"):
        strict.measure(D(()))
    assert strict.measure(D(None)) == 1.5  # no result at all: KEDA's minimum, not an error


def test_no_secret_in_the_query() -> None:
    assert "very-secret-key" not in repr(built().query)
