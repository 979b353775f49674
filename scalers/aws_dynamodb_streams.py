"""``aws-dynamodb-streams``: the shards of a DynamoDB table's stream, as KEDA counts them:
every shard ``DescribeStream`` lists, page after page (closed ones too: a stream keeps a
closed shard readable for 24 hours).

The stream is the table's ``LatestStreamArn``, from a ``DescribeTable``. KEDA reads it once,
when the scaler is built, and fails to build a trigger on a table without a stream; we read it
at every poll (one more request per interval), so a stream disabled and enabled again (a new
ARN) is followed, and a table without a stream is an error of the poll that names the table.
Deliberate difference from KEDA as well: ``shardCount`` must be greater than 0 (the HPA
refuses a target of 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalers import aws, aws_auth, aws_identity
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

NOT_FOUND = "ResourceNotFoundException"
MAX_PAGES = 1000
"""DescribeStream answers 100 shards at most per page: a bound far above any real stream,
against an endpoint that never stops paging."""


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth):
    table_name: str = param("tableName")
    shard_count: int = param("shardCount", default="2", gt=0, doc="stream shards per replica")
    activation_shard_count: int = param("activationShardCount", default="0")
    aws_region: str = param("awsRegion", order=(Source.TRIGGER, Source.AUTH))
    aws_endpoint: str | None = param(
        "awsEndpoint",
        optional=True,
        doc="another DynamoDB (and DynamoDB Streams) endpoint, e.g. http://localstack:4566",
    )


@dataclass(frozen=True)
class StreamShards:
    """The shard count of one table's stream, as one identity."""

    identity: aws_identity.AwsIdentity
    table_name: str

    async def run(self, clients: Clients) -> float:
        what = self.describe()
        table = quote(self.table_name)
        missing = {NOT_FOUND: f"table {table} does not exist (or not in this region and account)"}
        answer = await aws.call(
            clients,
            "dynamodb",
            self.identity,
            "describe_table",
            what,
            {"TableName": self.table_name},
            missing,
        )
        described = answer.get("Table")
        arn = described.get("LatestStreamArn") if isinstance(described, dict) else None
        if not arn:
            raise SourceResponseError(f"{what}: table {table} has no stream (LatestStreamArn)")
        shards = 0
        params: dict[str, Any] = {"StreamArn": arn}
        gone = {NOT_FOUND: f"the stream {arn} of table {table} does not exist"}
        for _ in range(MAX_PAGES):
            page = await aws.call(
                clients, "dynamodbstreams", self.identity, "describe_stream", what, params, gone
            )
            stream = page.get("StreamDescription")
            listed = stream.get("Shards") if isinstance(stream, dict) else None
            if not isinstance(listed, list):
                raise SourceResponseError(f"{what}: the answer has no StreamDescription.Shards")
            shards += len(listed)
            last = stream.get("LastEvaluatedShardId") if isinstance(stream, dict) else None
            if not last:
                return float(shards)
            params = {"StreamArn": arn, "ExclusiveStartShardId": last}
        raise SourceResponseError(f"{what}: more than {MAX_PAGES} pages of shards")

    def describe(self) -> str:
        return f"DynamoDB stream shards of table {quote(self.table_name)} at " + (
            self.identity.describe()
        )


@dataclass(frozen=True, kw_only=True)
class AwsDynamodbStreamsScaler(Scaler[float]):
    meta: Metadata
    query: StreamShards

    def measure(self, answer: float) -> float:
        return answer


def build(meta: Metadata) -> AwsDynamodbStreamsScaler:
    identity = meta.built_identity(meta.aws_region, meta.aws_endpoint)
    return AwsDynamodbStreamsScaler(
        meta=meta,
        query=StreamShards(identity, meta.table_name),
        metric_name=normalize(f"aws-dynamodb-streams-{meta.table_name}"),
        target=float(meta.shard_count),
        activation_target=float(meta.activation_shard_count),
        value_label="shards",
    )


KIND = aws_auth.AwsKind(
    type_name="aws-dynamodb-streams",
    keda_name="awsDynamoDBStreamsScaler",
    metadata=Metadata,
    build=build,
    identity_metadata=aws_auth.AwsAuth,
    summary="Shards of an AWS DynamoDB table's stream.",
    example=Example(
        {"tableName": "orders", "shardCount": "2", "awsRegion": "eu-west-1"},
        {"awsAccessKeyID": "AKIAIOSFODNN7EXAMPLE", "awsSecretAccessKey": "aws-secret-key"},
        source="awsEndpoint",
    ),
)
