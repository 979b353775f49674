"""aws-dynamodb against moto: the Count of one Query page, with KEDA's typed values."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from scalers.base import is_active
from scalers.errors import SourceResponseError
from tests.integration.aws_more.helpers import scaler
from tests.support.moto import MotoServer, make_table
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

INDEX = "by-status"


def _items() -> list[dict[str, Any]]:
    """Queue a: ids 1-7, 1-4 ready and 5-7 done, even ids flagged, 1-2 with a blob b"xy";
    queue b: ids 1-2, ready."""
    items: list[dict[str, Any]] = []
    for i in range(1, 8):
        item: dict[str, Any] = {
            "queue": {"S": "a"},
            "id": {"N": str(i)},
            "status": {"S": "ready" if i <= 4 else "done"},
            "flag": {"BOOL": i % 2 == 0},
        }
        if i <= 2:
            item["blob"] = {"B": b"xy"}
        items.append(item)
    items += [{"queue": {"S": "b"}, "id": {"N": str(i)}, "status": {"S": "ready"}} for i in (1, 2)]
    return items


def _meta(
    names: dict[str, str] | None = None, values: dict[str, Any] | None = None, **more: str
) -> dict[str, str]:
    return {
        "keyConditionExpression": "#q = :q",
        "expressionAttributeNames": json.dumps({"#q": "queue", **(names or {})}),
        "expressionAttributeValues": json.dumps({":q": {"S": "a"}, **(values or {})}),
        "targetValue": "2",
        **more,
    }


READY = {":s": {"S": "ready"}}
# trigger metadata -> (count, active, HPA replicas = ceil(count / targetValue))
FIDELITY = [
    ("queue a", _meta(), 7, True, 4),
    ("queue b", _meta(values={":q": {"S": "b"}}), 2, True, 1),
    ("no such queue", _meta(values={":q": {"S": "none"}}), 0, False, 0),
    (
        "sort key condition",
        _meta({"#i": "id"}, {":i": {"N": "3"}}, keyConditionExpression="#q = :q AND #i > :i"),
        4,
        True,
        2,
    ),
    ("filter on a string", _meta({"#s": "status"}, READY, filterExpression="#s = :s"), 4, True, 2),
    (
        "filter on a BOOL",
        _meta({"#f": "flag"}, {":t": {"BOOL": True}}, filterExpression="#f = :t"),
        3,
        True,
        2,
    ),
    (
        "filter on B, the bytes of the string",
        _meta({"#b": "blob"}, {":b": {"B": "xy"}}, filterExpression="#b = :b"),
        2,
        True,
        1,
    ),
    (
        "global index",
        {
            "indexName": INDEX,
            "keyConditionExpression": "#s = :s",
            "expressionAttributeNames": '{"#s": "status"}',
            "expressionAttributeValues": json.dumps(READY),
            "targetValue": "2",
        },
        6,
        True,
        3,
    ),
    ("activation at the count", _meta(activationTargetValue="7"), 7, False, 4),
    ("activation below", _meta(activationTargetValue="6"), 7, True, 4),
    ("targetValue 3", _meta(targetValue="3"), 7, True, 3),
]


@pytest.mark.parametrize(
    ("meta", "value", "active", "replicas"), [r[1:] for r in FIDELITY], ids=[r[0] for r in FIDELITY]
)
async def test_fidelity(
    moto: MotoServer, name: str, meta: dict[str, str], value: float, active: bool, replicas: int
) -> None:
    await make_table(moto, name, _items(), index=INDEX)
    s = scaler("aws-dynamodb", moto, {"tableName": name, **meta})
    measured = await measure(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"aws-dynamodb-{name}"


async def test_an_unknown_table_is_named(moto: MotoServer, name: str) -> None:
    s = scaler("aws-dynamodb", moto, {"tableName": name, **_meta()})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert str(info.value).startswith(f'DynamoDB Query "{name}" where "#q = :q" at ')
    assert str(info.value).endswith(
        f'table "{name}" does not exist (or not in this region and account)'
    )


async def test_an_expression_dynamodb_refuses_is_its_message(moto: MotoServer, name: str) -> None:
    await make_table(moto, name, _items())
    meta = _meta(keyConditionExpression="#q = :missing")
    with pytest.raises(SourceResponseError, match="ValidationException") as info:
        await measure(scaler("aws-dynamodb", moto, {"tableName": name, **meta}))
    assert ":missing" in str(info.value)
