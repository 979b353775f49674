"""``aws-dynamodb``: KEDA's JSON names and typed values, targets, sharing; and the shard
triggers' parameters (``aws-kinesis-stream``, ``aws-dynamodb-streams``)."""

from __future__ import annotations

from typing import Any

import pytest

from scalers import aws_dynamodb, aws_dynamodb_streams, aws_kinesis_stream
from scalers.base import ScalerKind
from scalers.errors import Problems
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
KEYS = {"awsAccessKeyID": "AKIAUNITTEST", "awsSecretAccessKey": "very-secret-key"}
BASE = {
    "tableName": "jobs",
    "keyConditionExpression": "#k = :v",
    "expressionAttributeNames": '{"#k": "status"}',
    "expressionAttributeValues": '{":v": {"S": "ready"}}',
    "targetValue": "3",
    "awsRegion": "eu-west-1",
}


def create(
    kind: ScalerKind[Any], metadata: dict[str, str], *, as_metric_source: bool = False
) -> tuple[Any, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, {}, KEYS, path=P, as_metric_source=as_metric_source)
    scaler = kind.create(inputs, problems)
    return scaler, [str(p) for p in problems]


def built(**change: str) -> aws_dynamodb.AwsDynamodbScaler:
    scaler, problems = create(aws_dynamodb.KIND, {**BASE, **change})
    assert problems == [] and isinstance(scaler, aws_dynamodb.AwsDynamodbScaler)
    return scaler


def test_defaults_and_metric_name() -> None:
    s = built()
    assert (s.target, s.activation_target, s.metric_name) == (3.0, 0.0, "aws-dynamodb-jobs")
    assert s.query.index_name is None and s.query.filter_expression is None


def test_target_value_is_optional_only_under_scaling_modifiers() -> None:
    meta = {k: v for k, v in BASE.items() if k != "targetValue"}
    _, problems = create(aws_dynamodb.KIND, meta)
    assert problems == [f"{P}.targetValue: is required"]
    scaler, problems = create(aws_dynamodb.KIND, meta, as_metric_source=True)
    assert problems == [] and scaler.target == 0.0


def test_every_typed_value_as_keda_reads_it() -> None:
    values = (
        '{":s": {"S": "a"}, ":n": {"N": "1.5"}, ":t": {"BOOL": true}, ":b": {"B": "xy"},'
        ' ":z": {"NULL": true}, ":l": {"L": [{"S": "x"}, {"N": "2"}]},'
        ' ":m": {"M": {"k": {"BOOL": false}}}}'
    )
    assert aws_dynamodb.attribute_values(values) == {
        ":s": {"S": "a"},
        ":n": {"N": "1.5"},
        ":t": {"BOOL": True},
        ":b": {"B": b"xy"},
        ":z": {"NULL": True},
        ":l": {"L": [{"S": "x"}, {"N": "2"}]},
        ":m": {"M": {"k": {"BOOL": False}}},
    }


@pytest.mark.parametrize(
    ("names", "values", "problem"),
    [
        ("{}", '{":v": {"S": "a"}}', "expressionAttributeNames: is an empty object"),
        ('{"#k": 1}', '{":v": {"S": "a"}}', "expressionAttributeNames: is not a JSON object of"),
        ("#k=status", '{":v": {"S": "a"}}', "expressionAttributeNames: is not JSON"),
        ('{"#k": "s"}', "[]", "expressionAttributeValues: is not a JSON object"),
        ('{"#k": "s"}', '{":v": {"N": 1}}', "expressionAttributeValues: :v.N: 1 is not a string"),
        ('{"#k": "s"}', '{":v": {"X": "a"}}', 'expressionAttributeValues: :v: "X" is not one of'),
        ('{"#k": "s"}', '{":v": {}}', "expressionAttributeValues: :v: {} is not an object of one"),
        (
            '{"#k": "s"}',
            '{":v": {"S": "a", "N": "1"}}',
            "expressionAttributeValues: :v: {",
        ),
        (
            '{"#k": "s"}',
            '{":v": {"L": [{"BOOL": "yes"}]}}',
            'expressionAttributeValues: :v.L[0].BOOL: "yes" is not true or false',
        ),
    ],
)
def test_names_and_values_keda_cannot_read_are_refused(
    names: str, values: str, problem: str
) -> None:
    meta = {**BASE, "expressionAttributeNames": names, "expressionAttributeValues": values}
    _, problems = create(aws_dynamodb.KIND, meta)
    assert len(problems) == 1 and problems[0].startswith(f"{P}.{problem}"), problems


def test_equal_queries_however_written() -> None:
    one = built()
    spaced = built(
        expressionAttributeNames='{ "#k" : "status" }',
        expressionAttributeValues='{":v":{"S":"ready"}}',
        targetValue="9",
        activationTargetValue="4",
    )
    assert one.query == spaced.query
    assert built(indexName="by-status").query != one.query
    assert built(filterExpression="#k <> :v").query != one.query
    assert "very-secret-key" not in repr(one.query)


@pytest.mark.parametrize(
    ("kind", "resource", "name"),
    [
        (aws_kinesis_stream.KIND, "streamName", "aws-kinesis-orders-v2"),
        (aws_dynamodb_streams.KIND, "tableName", "aws-dynamodb-streams-orders-v2"),
    ],
)
def test_shard_triggers(kind: ScalerKind[Any], resource: str, name: str) -> None:
    scaler, problems = create(kind, {resource: "orders.v2", "awsRegion": "eu-west-1"})
    assert problems == []
    assert (scaler.target, scaler.activation_target, scaler.metric_name) == (2.0, 0.0, name)
    other, _ = create(
        kind,
        {
            resource: "orders.v2",
            "awsRegion": "eu-west-1",
            "shardCount": "5",
            "activationShardCount": "3",
        },
    )
    assert other.query == scaler.query and (other.target, other.activation_target) == (5, 3)
    _, problems = create(kind, {resource: "orders", "awsRegion": "x", "shardCount": "0"})
    assert problems == [f'{P}.shardCount: "0" must be greater than 0']
    _, problems = create(kind, {"awsRegion": "x"})
    assert problems == [f"{P}.{resource}: is required"]
