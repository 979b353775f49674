"""Failures of the four AWS triggers: each an error of the trigger, never a zero, and never
with a credential in its message."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from scalers import aws_dynamodb_streams
from scalers.errors import SourceResponseError, SourceUnreachable
from tests.integration.aws_more.helpers import period_start, scaler, scripted
from tests.support.moto import MotoServer, iam_keys, make_stream, make_table, put_metric
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

ACTIONS = [
    "cloudwatch:GetMetricData",
    "monitoring:GetMetricData",  # moto 5.2 checks CloudWatch under its endpoint's prefix
    "kinesis:DescribeStreamSummary",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeStream",
]


def _triggers(name: str) -> dict[str, dict[str, str]]:
    """A trigger of each type on the resources :func:`_resources` makes."""
    return {
        "aws-cloudwatch": {
            "namespace": "Test/Jobs",
            "metricName": "depth",
            "dimensionName": "QueueName",
            "dimensionValue": name,
            "metricStatPeriod": "60",
            "targetMetricValue": "1",
            "minMetricValue": "0",
            "ignoreNullValues": "false",
        },
        "aws-kinesis-stream": {"streamName": name},
        "aws-dynamodb": {
            "tableName": name,
            "keyConditionExpression": "#q = :q",
            "expressionAttributeNames": '{"#q": "queue"}',
            "expressionAttributeValues": '{":q": {"S": "a"}}',
            "targetValue": "1",
        },
        "aws-dynamodb-streams": {"tableName": name},
    }


EXPECTED = {
    "aws-cloudwatch": 6,
    "aws-kinesis-stream": 3,
    "aws-dynamodb": 2,
    "aws-dynamodb-streams": 1,
}


async def _resources(moto: MotoServer, name: str) -> None:
    await put_metric(moto, "Test/Jobs", "depth", {"QueueName": name}, [(period_start() - 90, 6)])
    await make_stream(moto, name, 3)
    items = [{"queue": {"S": "a"}, "id": {"N": str(i)}} for i in (1, 2)]
    await make_table(moto, name, items, stream=True)


async def test_keys_are_checked_when_moto_enforces_iam(own_moto: MotoServer, name: str) -> None:
    await _resources(own_moto, name)
    good = await iam_keys(own_moto, "keda", ACTIONS)
    sqs_only = await iam_keys(own_moto, "sqs-only", ["sqs:GetQueueAttributes"])
    own_moto.enforce_auth()
    wrong_secret = {**good, "awsSecretAccessKey": "wrong-secret-value"}
    unknown = {"awsAccessKeyID": "AKIAUNKNOWNKEY000001", "awsSecretAccessKey": "unknown-secret"}
    for type_name, meta in _triggers(name).items():
        assert await measure(scaler(type_name, own_moto, meta, good)) == EXPECTED[type_name]
        with pytest.raises(SourceResponseError) as info:
            await measure(scaler(type_name, own_moto, meta, wrong_secret))
        assert "SignatureDoesNotMatch" in str(info.value), type_name
        assert "check the AWS credentials of the trigger's authentication" in str(info.value)
        assert "wrong-secret-value" not in str(info.value)
        with pytest.raises(SourceResponseError, match="InvalidClientTokenId") as info:
            await measure(scaler(type_name, own_moto, meta, unknown))
        assert "unknown-secret" not in str(info.value)
        with pytest.raises(SourceResponseError, match="AccessDenied") as info:
            await measure(scaler(type_name, own_moto, meta, sqs_only))
        assert sqs_only["awsSecretAccessKey"] not in str(info.value)


async def test_a_stopped_server_is_unreachable(own_moto: MotoServer, name: str) -> None:
    await _resources(own_moto, name)
    triggers = {t: scaler(t, own_moto, meta) for t, meta in _triggers(name).items()}
    for type_name, s in triggers.items():
        assert await measure(s) == EXPECTED[type_name]
    own_moto.stop()
    for s in triggers.values():
        with pytest.raises(SourceUnreachable, match="Could not connect"):
            await measure(s)


async def test_operator_identity_without_credentials_is_unreachable(
    moto: MotoServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_stream(moto, name, 2)
    s = scaler("aws-kinesis-stream", moto, {"streamName": name, "identityOwner": "operator"}, {})
    with pytest.raises(SourceUnreachable, match="the adapter has no AWS credentials"):
        await measure(s)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    assert await measure(s) == 2


async def test_an_endpoint_without_a_scheme_is_named(name: str) -> None:
    s = scaler("aws-dynamodb-streams", "127.0.0.1:4566", {"tableName": name})
    with pytest.raises(SourceUnreachable, match=r'awsEndpoint "127\.0\.0\.1:4566" must start with'):
        await measure(s)


STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/2026-01-01T00:00:00.000"


def _shard_pages(pages: int | None) -> Callable[[str, bytes], bytes]:
    """DynamoDB: a table with a stream of 100 shards per page, ``pages`` pages (of which the
    last has 37), or endless pages."""

    def answer(target: str, body: bytes) -> bytes:
        if target.endswith(".DescribeTable"):
            return json.dumps({"Table": {"LatestStreamArn": STREAM_ARN}}).encode()
        after = json.loads(body).get("ExclusiveStartShardId")
        page = 0 if after is None else int(after.removeprefix("shardId-")) // 100 + 1
        last = pages is not None and page == pages - 1
        shards = [{"ShardId": f"shardId-{page * 100 + i:020d}"} for i in range(37 if last else 100)]
        description: dict[str, object] = {"Shards": shards}
        if not last:
            description["LastEvaluatedShardId"] = shards[-1]["ShardId"]
        return json.dumps({"StreamDescription": description}).encode()

    return answer


async def test_dynamodb_stream_shards_are_counted_over_every_page(name: str) -> None:
    async with scripted(_shard_pages(3)) as endpoint:
        s = scaler("aws-dynamodb-streams", endpoint.url, {"tableName": name})
        assert await measure(s) == 237
    assert [t.rpartition(".")[2] for t in endpoint.targets] == [
        "DescribeTable",
        *["DescribeStream"] * 3,
    ]


async def test_endless_shard_pages_are_an_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_dynamodb_streams, "MAX_PAGES", 3)
    async with scripted(_shard_pages(None)) as endpoint:
        s = scaler("aws-dynamodb-streams", endpoint.url, {"tableName": name})
        with pytest.raises(SourceResponseError, match="more than 3 pages of shards"):
            await measure(s)


@pytest.mark.parametrize(
    ("type_name", "message"),
    [
        ("aws-kinesis-stream", "the answer has no OpenShardCount"),
        ("aws-dynamodb", "the answer has no Count"),
        ("aws-dynamodb-streams", "table .* has no stream"),
    ],
)
async def test_answers_without_the_count_are_errors(
    name: str, type_name: str, message: str
) -> None:
    async with scripted(lambda target, body: b"{}") as endpoint:
        s = scaler(type_name, endpoint.url, _triggers(name)[type_name])
        with pytest.raises(SourceResponseError, match=message):
            await measure(s)


def _cloudwatch(results: str) -> Callable[[str, bytes], bytes]:
    xml = (
        '<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">'
        f"<GetMetricDataResult><MetricDataResults>{results}</MetricDataResults>"
        "</GetMetricDataResult></GetMetricDataResponse>"
    )
    return lambda target, body: xml.encode()


FORBIDDEN = (
    "<member><Id>c1</Id><StatusCode>Forbidden</StatusCode><Timestamps/><Values/>"
    "<Messages><member><Code>Forbidden</Code><Value>no access to account 111122223333"
    "</Value></member></Messages></member>"
)


async def test_a_failed_cloudwatch_result_is_an_error_not_the_minimum(name: str) -> None:
    async with scripted(_cloudwatch(FORBIDDEN)) as endpoint:
        s = scaler("aws-cloudwatch", endpoint.url, _triggers(name)["aws-cloudwatch"])
        with pytest.raises(SourceResponseError) as info:
            await measure(s)
    assert str(info.value).endswith("the result is Forbidden: no access to account 111122223333")


async def test_no_result_at_all_is_the_minimum_as_in_keda(name: str) -> None:
    # KEDA errs on a result without values only; an empty result list is minMetricValue
    # even with ignoreNullValues false.
    meta = {**_triggers(name)["aws-cloudwatch"], "minMetricValue": "2"}
    async with scripted(_cloudwatch("")) as endpoint:
        assert await measure(scaler("aws-cloudwatch", endpoint.url, meta)) == 2


async def test_a_name_aws_would_refuse_is_a_response_error(moto: MotoServer, name: str) -> None:
    # botocore refuses it before sending (an index name has 3 characters at least), as
    # DynamoDB would: the same kind of error as AWS's ValidationException.
    meta = {**_triggers(name)["aws-dynamodb"], "indexName": "ab"}
    with pytest.raises(SourceResponseError, match="Invalid length for parameter IndexName"):
        await measure(scaler("aws-dynamodb", moto, meta))
