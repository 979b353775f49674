"""aws-kinesis-stream and aws-dynamodb-streams against moto: shard counts as KEDA reads them."""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active
from scalers.errors import SourceResponseError
from tests.integration.aws_more.helpers import scaler
from tests.support.moto import MotoServer, aws_client, count, make_stream, make_table
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

# (shards created, resharded to) x trigger metadata -> (open shards, active, replicas)
KINESIS = [
    ((1, None), {}, 1, True, 1),
    ((4, None), {}, 4, True, 2),
    ((5, None), {"shardCount": "1"}, 5, True, 5),
    ((5, None), {"shardCount": "10"}, 5, True, 1),
    ((3, None), {"activationShardCount": "3"}, 3, False, 2),
    ((3, None), {"activationShardCount": "2"}, 3, True, 2),
    # resharding closes shards and opens others: KEDA counts the open ones
    ((3, 2), {}, 2, True, 1),
    ((2, 5), {}, 5, True, 3),
]


@pytest.mark.parametrize(
    ("stream", "meta", "value", "active", "replicas"),
    KINESIS,
    ids=[f"{s}shards-to{r}-{meta or 'defaults'}" for (s, r), meta, *_ in KINESIS],
)
async def test_kinesis_open_shards(
    moto: MotoServer,
    name: str,
    stream: tuple[int, int | None],
    meta: dict[str, str],
    value: int,
    active: bool,
    replicas: int,
) -> None:
    shards, resized = stream
    await make_stream(moto, name, shards, resized=resized)
    s = scaler("aws-kinesis-stream", moto, {"streamName": name, **meta})
    measured = await measure(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"aws-kinesis-{name}"


async def test_kinesis_unknown_stream_is_named(moto: MotoServer, name: str) -> None:
    s = scaler("aws-kinesis-stream", moto, {"streamName": name})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert str(info.value).startswith(f'Kinesis DescribeStreamSummary "{name}" at ')
    assert str(info.value).endswith(
        f'stream "{name}" does not exist (or not in this region and account)'
    )


async def test_dynamodb_stream_shards(moto: MotoServer, name: str) -> None:
    # moto gives a table's stream one shard; a real stream has one per partition, and more
    # over time (a shard is closed and replaced every few hours, and kept 24 h).
    await make_table(moto, name, [], stream=True)
    s = scaler("aws-dynamodb-streams", moto, {"tableName": name, "shardCount": "1"})
    before = (count(moto, "DescribeTable"), count(moto, "DescribeStream"))
    measured = await measure(s)
    assert measured == 1 and is_active(measured, s.activation_target)
    assert s.metric_name == f"aws-dynamodb-streams-{name}"
    meta = {"tableName": name, "activationShardCount": "1"}
    inactive = scaler("aws-dynamodb-streams", moto, meta)
    assert not is_active(await measure(inactive), inactive.activation_target)
    # each poll: the table's current stream, then its shards (one page here)
    after = (count(moto, "DescribeTable"), count(moto, "DescribeStream"))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)


async def test_dynamodb_stream_enabled_after_the_trigger_is_read(
    moto: MotoServer, name: str
) -> None:
    # KEDA reads the stream's ARN once and refuses the trigger of a table without a stream;
    # here that is an error of each poll, until the table has a stream.
    await make_table(moto, name, [])
    s = scaler("aws-dynamodb-streams", moto, {"tableName": name})
    with pytest.raises(SourceResponseError, match=f'table "{name}" has no stream'):
        await measure(s)
    async with aws_client(moto, "dynamodb") as dynamodb:
        spec = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
        await dynamodb.update_table(TableName=name, StreamSpecification=spec)
    assert await measure(s) == 1


async def test_dynamodb_stream_of_an_unknown_table_is_named(moto: MotoServer, name: str) -> None:
    s = scaler("aws-dynamodb-streams", moto, {"tableName": name})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert str(info.value).endswith(
        f'table "{name}" does not exist (or not in this region and account)'
    )
