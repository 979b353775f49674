"""``aws-cloudwatch``: the newest datapoint of one CloudWatch metric, from ``GetMetricData``.

One query asks for one metric (``namespace``, ``metricName``, dimensions, ``metricStat``
over ``metricStatPeriod``) or one ``expression`` (metric math or Metrics Insights), over the
window KEDA uses: it ends ``metricEndTimeOffset`` seconds ago, truncated to a whole period,
and starts ``metricCollectionTime`` before that; datapoints come newest first and the value is
the first. The window is computed when the query runs, so triggers asking the same thing stay
one query however the clock moves.

With no datapoint the value is ``minMetricValue`` (``ignoreNullValues``, the default), or an
error (``ignoreNullValues: false``); both are the trigger's, not the query's, so triggers
differing only there share the request. As in KEDA, a result list with no result at all is
``minMetricValue`` whatever ``ignoreNullValues`` says.

Deliberate differences from KEDA: ``targetMetricValue`` must be greater than 0 (the HPA
refuses a target of 0); ``metricCollectionTime`` of 0 is refused (KEDA's message says it must
be greater than 0 but lets 0 through to an AWS error); a result whose ``StatusCode`` is
``InternalError`` or ``Forbidden`` is an error, where KEDA reads its (missing) values as no
data and scales on ``minMetricValue``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scalers import aws, aws_auth, aws_identity
from scalers.base import Example, Scaler
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

UNITS = (
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
)
"""CloudWatch's ``StandardUnit`` values, which KEDA checks ``metricUnit`` against."""

_SHORT_PERIODS = (1, 5, 10, 30, 60)
_GO_ZERO_TIME = 62135596800
"""Seconds from Go's zero time (0001-01-01 UTC) to the Unix epoch."""
_FAILED = frozenset({"InternalError", "Forbidden"})


def _split(value: str | None) -> tuple[str, ...] | None:
    """KEDA's ``separator=;`` list: every part trimmed, empty parts kept."""
    return None if value is None else tuple(part.strip() for part in value.split(";"))


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth):
    namespace: str | None = param("namespace", optional=True, doc="required without expression")
    metric_name: str | None = param("metricName", optional=True, doc="required without expression")
    dimension_name: str | None = param(
        "dimensionName", optional=True, doc="names separated by ';', required without expression"
    )
    dimension_value: str | None = param(
        "dimensionValue", optional=True, doc="one value per dimensionName, separated by ';'"
    )
    expression: str | None = param(
        "expression", optional=True, doc="metric math or a Metrics Insights SELECT, instead"
    )
    target_metric_value: float = param("targetMetricValue", gt=0)
    activation_target_metric_value: float = param("activationTargetMetricValue", default="0")
    min_metric_value: float = param(
        "minMetricValue", doc="the value when CloudWatch has no datapoint in the window"
    )
    ignore_null_values: bool = param(
        "ignoreNullValues", default="true", doc="false: no datapoint is an error, not the min"
    )
    metric_collection_time: int = param(
        "metricCollectionTime", default="300", doc="seconds of data asked for"
    )
    metric_stat: str = param("metricStat", default="Average", doc="Average, Sum, p99, ...")
    metric_unit: str | None = param("metricUnit", optional=True, enum=tuple(UNITS))
    metric_stat_period: int = param("metricStatPeriod", default="300", doc="seconds")
    metric_end_time_offset: int = param(
        "metricEndTimeOffset", default="0", doc="seconds the window ends before now"
    )
    aws_account_id: str | None = param(
        "awsAccountId", optional=True, doc="the account whose metric is read (cross-account)"
    )
    aws_region: str = param("awsRegion", order=(Source.TRIGGER, Source.AUTH))
    aws_endpoint: str | None = param(
        "awsEndpoint", optional=True, doc="another CloudWatch endpoint, e.g. http://localstack:4566"
    )

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.expression:
            yield from self._metric_problems()
        period = self.metric_stat_period
        if period < 1:
            yield "metricStatPeriod", f"{period} must be at least 1 (seconds)"
        elif period <= 60 and period not in _SHORT_PERIODS:
            yield "metricStatPeriod", f"{period} is not one of 1, 5, 10, 30, 60 (below 60 s)"
        elif period > 60 and period % 60:
            yield "metricStatPeriod", f"{period} is not a multiple of 60 (above 60 s)"
        elif self.metric_collection_time <= 0 or self.metric_collection_time % period:
            yield (
                "metricCollectionTime",
                f"{self.metric_collection_time} must be greater than 0 and a multiple of "
                f"metricStatPeriod ({period})",
            )

    def _metric_problems(self) -> Iterator[tuple[str, str]]:
        without = "is required without an expression"
        if not self.namespace:
            yield "namespace", without
        if not self.metric_name:
            yield "metricName", without
        names, values = _split(self.dimension_name), _split(self.dimension_value)
        if names is None:
            yield "dimensionName", without
        if values is None:
            yield "dimensionValue", without
        if names is not None and values is not None and len(names) != len(values):
            yield (
                "dimensionValue",
                f"has {len(values)} values for {len(names)} dimensionName names (separated by ';')",
            )


@dataclass(frozen=True)
class Datapoints:
    """The first result of a ``GetMetricData``: ``None`` when there was no result at all."""

    values: tuple[float, ...] | None


@dataclass(frozen=True)
class MetricData:
    """One ``GetMetricData`` as one identity: what the request depends on, nothing else (the
    time window is computed from these and the clock when it runs)."""

    identity: aws_identity.AwsIdentity
    expression: str | None
    namespace: str | None
    metric_name: str | None
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    unit: str | None
    period: int
    collection_time: int
    end_offset: int
    account_id: str | None

    def window(self, now: float) -> tuple[datetime, datetime]:
        """KEDA's ``computeQueryWindow``: the end ``end_offset`` before ``now`` truncated
        to a whole period (Go's ``Time.Truncate`` counts periods from year 1, not from the
        Unix epoch: the two differ for a period such as 420 s that does not divide a day),
        the start ``collection_time`` before it."""
        since_year_one = now - self.end_offset + _GO_ZERO_TIME
        end = math.floor(since_year_one / self.period) * self.period - _GO_ZERO_TIME
        start = end - self.collection_time
        return (
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(end, UTC),
        )

    def request(self, now: float) -> dict[str, Any]:
        query: dict[str, Any]
        if self.expression:
            query = {"Id": "q1", "Expression": self.expression, "Period": self.period}
        else:
            stat: dict[str, Any] = {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric_name,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": self.period,
                "Stat": self.stat,
            }
            if self.unit:
                stat["Unit"] = self.unit
            query = {"Id": "c1", "MetricStat": stat, "ReturnData": True}
        if self.account_id:
            query["AccountId"] = self.account_id
        start, end = self.window(now)
        return {
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
            "MetricDataQueries": [query],
        }

    async def run(self, clients: Clients) -> Datapoints:
        what = self.describe()
        answer = await aws.call(
            clients, "cloudwatch", self.identity, "get_metric_data", what, self.request(time.time())
        )
        results = answer.get("MetricDataResults")
        if not isinstance(results, list):
            raise SourceResponseError(f"{what}: the answer has no MetricDataResults")
        if not results:
            return Datapoints(None)
        first = results[0]
        status = first.get("StatusCode") if isinstance(first, dict) else None
        if status in _FAILED:
            messages = "; ".join(
                str(m.get("Value") or m.get("Code")) for m in first.get("Messages") or ()
            )
            raise SourceResponseError(f"{what}: the result is {status}: {messages or 'no message'}")
        values = first.get("Values", []) if isinstance(first, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise SourceResponseError(f"{what}: the result's Values are not numbers")
        return Datapoints(tuple(float(v) for v in values))

    def describe(self) -> str:
        if self.expression:
            subject = f"expression {quote(self.expression)}"
        else:
            dims = ",".join(f"{n}={v}" for n, v in self.dimensions)
            subject = f"{self.namespace}/{self.metric_name}{{{dims}}} {self.stat}"
        return (
            f"CloudWatch GetMetricData {subject} per {self.period}s over "
            f"{self.collection_time}s at {self.identity.describe()}"
        )


@dataclass(frozen=True, kw_only=True)
class AwsCloudwatchScaler(Scaler[Datapoints]):
    meta: Metadata
    query: MetricData

    def measure(self, answer: Datapoints) -> float:
        if answer.values:
            return answer.values[0]  # newest first
        if answer.values is not None and not self.meta.ignore_null_values:
            raise SourceResponseError(
                f"{self.query.describe()}: no datapoint in the window, and ignoreNullValues "
                "is false"
            )
        return self.meta.min_metric_value


def build(meta: Metadata) -> AwsCloudwatchScaler:
    by_metric = not meta.expression
    names = _split(meta.dimension_name) or ()
    values = _split(meta.dimension_value) or ()
    query = MetricData(
        identity=meta.built_identity(meta.aws_region, meta.aws_endpoint),
        expression=meta.expression or None,
        namespace=meta.namespace if by_metric else None,
        metric_name=meta.metric_name if by_metric else None,
        dimensions=tuple(zip(names, values, strict=True)) if by_metric else (),
        stat=meta.metric_stat if by_metric else "",
        unit=meta.metric_unit if by_metric else None,
        period=meta.metric_stat_period,
        collection_time=meta.metric_collection_time,
        end_offset=meta.metric_end_time_offset,
        account_id=meta.aws_account_id or None,
    )
    return AwsCloudwatchScaler(
        meta=meta,
        query=query,
        metric_name="aws-cloudwatch",
        target=meta.target_metric_value,
        activation_target=meta.activation_target_metric_value,
        value_label="value",
    )


KIND = aws_auth.AwsKind(
    type_name="aws-cloudwatch",
    keda_name="awsCloudwatchScaler",
    metadata=Metadata,
    build=build,
    identity_metadata=aws_auth.AwsAuth,
    summary="The newest datapoint of an AWS CloudWatch metric or metric expression.",
    example=Example(
        {
            "namespace": "AWS/SQS",
            "metricName": "ApproximateNumberOfMessagesVisible",
            "dimensionName": "QueueName",
            "dimensionValue": "jobs",
            "metricStat": "Average",
            "targetMetricValue": "20",
            "minMetricValue": "0",
            "awsRegion": "eu-west-1",
        },
        {"awsAccessKeyID": "AKIAIOSFODNN7EXAMPLE", "awsSecretAccessKey": "aws-secret-key"},
        source="awsEndpoint",
    ),
)
