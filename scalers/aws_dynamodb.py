"""``aws-dynamodb``: how many items a DynamoDB ``Query`` finds, as KEDA counts them: the
``Count`` of one page (DynamoDB reads at most 1 MB per page, before any filter), with no
further pages read.

The query asks for ``Select: COUNT``, which KEDA does not: the count of a page is the same,
and no item crosses the network. ``expressionAttributeNames`` is a JSON object of names, and
``expressionAttributeValues`` one of DynamoDB's typed values (``{":s": {"S": "ready"}}``;
``S``, ``N`` as a string, ``BOOL``, ``B`` as the bytes of the string, ``L``, ``M``, ``NULL``),
read as KEDA reads them; where KEDA panics or picks at random (a value that is not an object
of exactly one known type), the trigger is refused with the value's path. Deliberate difference
as well: ``targetValue`` must be greater than 0 (the HPA refuses a target of 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scalers import aws, aws_auth, aws_identity
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

NOT_FOUND = "ResourceNotFoundException"
TYPES = ("S", "N", "BOOL", "B", "L", "M", "NULL")


class AttributeProblem(ValueError):
    """A value of ``expressionAttributeValues`` KEDA cannot read, at its path."""


def attribute_names(text: str) -> dict[str, str]:
    """``expressionAttributeNames``: a non-empty JSON object of strings."""
    try:
        names = json.loads(text)
    except ValueError as exc:
        raise AttributeProblem(f"is not JSON ({exc})") from None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise AttributeProblem('is not a JSON object of names, such as {"#k": "status"}')
    if not names:
        raise AttributeProblem("is an empty object")
    return names


def attribute_values(text: str) -> dict[str, Any]:
    """``expressionAttributeValues`` as botocore sends them (``B`` as bytes)."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise AttributeProblem(f"is not JSON ({exc})") from None
    if not isinstance(values, dict):
        raise AttributeProblem('is not a JSON object, such as {":v": {"S": "ready"}}')
    return {key: _attribute(value, key) for key, value in values.items()}


def _attribute(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1:
        raise AttributeProblem(
            f"{path}: {json.dumps(value)} is not an object of one type, such as "
            '{"S": "text"} or {"N": "1"}'
        )
    ((kind, inner),) = value.items()
    where = f"{path}.{kind}"
    if kind not in TYPES:
        raise AttributeProblem(f"{path}: {quote(kind)} is not one of {', '.join(TYPES)}")
    if kind in ("S", "N", "B") and not isinstance(inner, str):
        raise AttributeProblem(f"{where}: {json.dumps(inner)} is not a string")
    if kind == "BOOL" and not isinstance(inner, bool):
        raise AttributeProblem(f"{where}: {json.dumps(inner)} is not true or false")
    if kind == "B":
        return {"B": inner.encode()}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "L":
        if not isinstance(inner, list):
            raise AttributeProblem(f"{where}: {json.dumps(inner)} is not a list")
        return {"L": [_attribute(v, f"{where}[{i}]") for i, v in enumerate(inner)]}
    if kind == "M":
        if not isinstance(inner, dict):
            raise AttributeProblem(f"{where}: {json.dumps(inner)} is not an object")
        return {"M": {k: _attribute(v, f"{where}.{k}") for k, v in inner.items()}}
    return {kind: inner}


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth):
    table_name: str = param("tableName")
    key_condition_expression: str = param(
        "keyConditionExpression", doc="e.g. #k = :v (names and values from the two below)"
    )
    expression_attribute_names: str = param(
        "expressionAttributeNames", doc='JSON, e.g. {"#k": "status"}'
    )
    expression_attribute_values: str = param(
        "expressionAttributeValues", doc='JSON, e.g. {":v": {"S": "ready"}}'
    )
    index_name: str | None = param("indexName", optional=True, doc="query this index instead")
    filter_expression: str | None = param(
        "filterExpression", optional=True, doc="counted items must also match this"
    )
    target_value: int | None = param(
        "targetValue", gt=0, target=True, doc="optional when it feeds a scalingModifiers formula"
    )
    activation_target_value: int = param("activationTargetValue", default="0")
    aws_region: str = param("awsRegion", order=(Source.TRIGGER, Source.AUTH))
    aws_endpoint: str | None = param(
        "awsEndpoint", optional=True, doc="another DynamoDB endpoint, e.g. http://localstack:4566"
    )

    def check(self) -> Iterator[tuple[str, str]]:
        try:
            attribute_names(self.expression_attribute_names)
        except AttributeProblem as exc:
            yield "expressionAttributeNames", str(exc)
        try:
            attribute_values(self.expression_attribute_values)
        except AttributeProblem as exc:
            yield "expressionAttributeValues", str(exc)


@dataclass(frozen=True)
class ItemCount:
    """One ``Query`` (one page, ``Select: COUNT``) as one identity; the names and values are
    kept as canonical JSON, so that equal ones written differently are one query."""

    identity: aws_identity.AwsIdentity
    table_name: str
    key_condition: str
    names: str
    values: str
    index_name: str | None
    filter_expression: str | None

    async def run(self, clients: Clients) -> float:
        what = self.describe()
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": self.key_condition,
            "ExpressionAttributeNames": attribute_names(self.names),
            "ExpressionAttributeValues": attribute_values(self.values),
            "Select": "COUNT",
        }
        if self.index_name:
            params["IndexName"] = self.index_name
        if self.filter_expression:
            params["FilterExpression"] = self.filter_expression
        missing = {
            NOT_FOUND: f"table {quote(self.table_name)} does not exist "
            "(or not in this region and account)"
        }
        answer = await aws.call(clients, "dynamodb", self.identity, "query", what, params, missing)
        count = answer.get("Count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise SourceResponseError(f"{what}: the answer has no Count")
        return float(count)

    def describe(self) -> str:
        index = f" index {quote(self.index_name)}" if self.index_name else ""
        return (
            f"DynamoDB Query {quote(self.table_name)}{index} where {quote(self.key_condition)} "
            f"at {self.identity.describe()}"
        )


@dataclass(frozen=True, kw_only=True)
class AwsDynamodbScaler(Scaler[float]):
    meta: Metadata
    query: ItemCount

    def measure(self, answer: float) -> float:
        return answer


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def build(meta: Metadata) -> AwsDynamodbScaler:
    query = ItemCount(
        identity=meta.built_identity(meta.aws_region, meta.aws_endpoint),
        table_name=meta.table_name,
        key_condition=meta.key_condition_expression,
        names=_canonical(json.loads(meta.expression_attribute_names)),
        values=_canonical(json.loads(meta.expression_attribute_values)),
        index_name=meta.index_name or None,
        filter_expression=meta.filter_expression or None,
    )
    return AwsDynamodbScaler(
        meta=meta,
        query=query,
        metric_name=normalize(f"aws-dynamodb-{meta.table_name}"),
        target=float(meta.target_value or 0),  # unset only under scalingModifiers, as in KEDA
        activation_target=float(meta.activation_target_value),
        value_label="items",
    )


KIND = aws_auth.AwsKind(
    type_name="aws-dynamodb",
    keda_name="awsDynamoDBScaler",
    metadata=Metadata,
    build=build,
    identity_metadata=aws_auth.AwsAuth,
    summary="Items an AWS DynamoDB query finds (one page, as KEDA counts them).",
    example=Example(
        {
            "tableName": "jobs",
            "keyConditionExpression": "#k = :v",
            "expressionAttributeNames": '{"#k": "status"}',
            "expressionAttributeValues": '{":v": {"S": "ready"}}',
            "targetValue": "10",
            "awsRegion": "eu-west-1",
        },
        {"awsAccessKeyID": "AKIAIOSFODNN7EXAMPLE", "awsSecretAccessKey": "aws-secret-key"},
        source="awsEndpoint",
    ),
)
