"""aws-cloudwatch against moto: the newest datapoint of the window KEDA asks for.

Datapoints are placed on the 60 s period grid so that the answer is the same whichever side
of a period boundary the poll falls: the newest period with data starts 120 s before the
current period, and the window (300 s) still holds it after the next boundary.
"""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from scalers.base import is_active
from scalers.errors import SourceResponseError
from tests.integration.aws_more.helpers import period_start, scaler
from tests.support.moto import MotoServer, count, put_metric
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

NAMESPACE = "Test/Jobs"
NEWEST = (3.0, 5.0)  # in the period 120 s to 60 s before the current one
OLDER = 10.0  # in the period 240 s to 180 s before

# trigger metadata -> (value, active, HPA replicas = ceil(value / targetMetricValue))
FIDELITY = [
    ({}, 4, True, 2),
    ({"metricStat": "Sum"}, 8, True, 4),
    ({"metricStat": "Maximum"}, 5, True, 3),
    ({"metricStat": "Minimum"}, 3, True, 2),
    ({"metricStat": "SampleCount"}, 2, True, 1),
    ({"activationTargetMetricValue": "3.9"}, 4, True, 2),
    ({"activationTargetMetricValue": "4"}, 4, False, 2),
    ({"targetMetricValue": "0.5"}, 4, True, 8),
    ({"metricUnit": "Count"}, 4, True, 2),
    # no datapoint of that unit: minMetricValue (ignoreNullValues defaults to true)
    ({"metricUnit": "Seconds", "minMetricValue": "1.5"}, 1.5, True, 1),
    # the window ends 180 s ago, before the newest period: the older one
    ({"metricEndTimeOffset": "180"}, 10, True, 5),
    # one period, the current one, with no datapoint yet
    ({"metricCollectionTime": "60"}, 0, False, 0),
    ({"metricCollectionTime": "60", "minMetricValue": "2"}, 2, True, 1),
]


async def _put(moto: MotoServer, name: str, **dimensions: str) -> dict[str, str]:
    now = period_start()
    dims = {"QueueName": name, **dimensions}
    points = [(now - 90, v) for v in NEWEST] + [(now - 210, OLDER)]
    await put_metric(moto, NAMESPACE, "depth", dims, points)
    return dims


def _meta(name: str, **more: str) -> dict[str, str]:
    return {
        "namespace": NAMESPACE,
        "metricName": "depth",
        "dimensionName": "QueueName",
        "dimensionValue": name,
        "metricStatPeriod": "60",
        "targetMetricValue": "2",
        "minMetricValue": "0",
        **more,
    }


@pytest.mark.parametrize(
    ("meta", "value", "active", "replicas"),
    FIDELITY,
    ids=[",".join(f"{k}={v}" for k, v in r[0].items()) or "defaults" for r in FIDELITY],
)
async def test_fidelity(
    moto: MotoServer, name: str, meta: dict[str, str], value: float, active: bool, replicas: int
) -> None:
    await _put(moto, name)
    s = scaler("aws-cloudwatch", moto, _meta(name, **meta))
    measured = await measure(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == "aws-cloudwatch"


async def test_keda_defaults_one_five_minute_period(moto: MotoServer, name: str) -> None:
    # metricStatPeriod and metricCollectionTime 300: the window is the last whole 5 minutes;
    # a datapoint in it and one in the next, so that a boundary passing changes nothing.
    now = period_start(300)
    await put_metric(moto, NAMESPACE, "depth", {"QueueName": name}, [(now - 150, 7), (now, 7)])
    meta = _meta(name)
    del meta["metricStatPeriod"]
    assert await measure(scaler("aws-cloudwatch", moto, meta)) == 7


async def test_the_request_is_keda_s(moto: MotoServer, name: str) -> None:
    await _put(moto, name)
    before = count(moto, "GetMetricData")
    await measure(scaler("aws-cloudwatch", moto, _meta(name, metricCollectionTime="240")))
    (request,) = [r for r in moto.received() if r.action == "GetMetricData"][before:]
    params = request.params
    start = datetime.fromisoformat(params["StartTime"]).timestamp()
    end = datetime.fromisoformat(params["EndTime"]).timestamp()
    assert end % 60 == 0 and end - start == 240
    assert params["ScanBy"] == "TimestampDescending"
    assert params["MetricDataQueries.member.1.Id"] == "c1"
    assert params["MetricDataQueries.member.1.MetricStat.Stat"] == "Average"
    assert params["MetricDataQueries.member.1.MetricStat.Period"] == "60"
    assert "MetricDataQueries.member.1.MetricStat.Unit" not in params


async def test_several_dimensions(moto: MotoServer, name: str) -> None:
    # In the order they were put: moto 5.2's dimension sort is broken (CloudWatch's is not).
    await _put(moto, name, Env="prod")
    both = _meta(name, dimensionName="QueueName; Env", dimensionValue=f"{name};prod")
    assert await measure(scaler("aws-cloudwatch", moto, both)) == 4
    # CloudWatch (and moto) match the whole set of dimensions: one of two is no datapoint
    assert await measure(scaler("aws-cloudwatch", moto, _meta(name, minMetricValue="-1"))) == -1


async def test_an_expression_replaces_the_metric(moto: MotoServer, name: str) -> None:
    # moto runs a Metrics Insights SELECT as the sum of every datapoint of the region in each
    # period: a region of the test's own keeps other tests' datapoints out.
    region = "eu-north-1"
    now = period_start()
    points = [(now - 90, v) for v in NEWEST] + [(now - 210, OLDER)]
    await put_metric(moto, NAMESPACE, "depth", {"QueueName": name}, points, region=region)
    meta = {
        "expression": f'SELECT SUM(depth) FROM "{NAMESPACE}"',
        "metricStatPeriod": "60",
        "targetMetricValue": "2",
        "minMetricValue": "0",
        "awsRegion": region,
    }
    assert await measure(scaler("aws-cloudwatch", moto, meta)) == 8


async def test_no_datapoint_with_ignore_null_values_false_is_an_error(
    moto: MotoServer, name: str
) -> None:
    s = scaler("aws-cloudwatch", moto, _meta(name, ignoreNullValues="false", minMetricValue="3"))
    with pytest.raises(SourceResponseError, match="no datapoint in the window") as info:
        await measure(s)
    assert "ignoreNullValues is false" in str(info.value)
    await _put(moto, name)
    assert await measure(s) == 4
