"""``aws-kinesis-stream``: the open shards of a Kinesis data stream, from one
``DescribeStreamSummary`` (``OpenShardCount``), as KEDA reads it: a stream's consumers can
use one replica per open shard, so ``shardCount`` shards per replica is the target.

Deliberate difference from KEDA: ``shardCount`` must be greater than 0 (the HPA refuses a
target of 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from scalers import aws, aws_auth, aws_identity
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

NOT_FOUND = "ResourceNotFoundException"


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth):
    stream_name: str = param("streamName")
    shard_count: int = param("shardCount", default="2", gt=0, doc="open shards per replica")
    activation_shard_count: int = param("activationShardCount", default="0")
    aws_region: str = param("awsRegion", order=(Source.TRIGGER, Source.AUTH))
    aws_endpoint: str | None = param(
        "awsEndpoint", optional=True, doc="another Kinesis endpoint, e.g. http://localstack:4566"
    )


@dataclass(frozen=True)
class StreamSummary:
    """One ``DescribeStreamSummary`` of one stream, as one identity."""

    identity: aws_identity.AwsIdentity
    stream_name: str

    async def run(self, clients: Clients) -> float:
        what = self.describe()
        missing = {
            NOT_FOUND: f"stream {quote(self.stream_name)} does not exist "
            "(or not in this region and account)"
        }
        answer = await aws.call(
            clients,
            "kinesis",
            self.identity,
            "describe_stream_summary",
            what,
            {"StreamName": self.stream_name},
            missing,
        )
        summary = answer.get("StreamDescriptionSummary")
        count = summary.get("OpenShardCount") if isinstance(summary, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise SourceResponseError(f"{what}: the answer has no OpenShardCount")
        return float(count)

    def describe(self) -> str:
        return (
            f"Kinesis DescribeStreamSummary {quote(self.stream_name)} at {self.identity.describe()}"
        )


@dataclass(frozen=True, kw_only=True)
class AwsKinesisStreamScaler(Scaler[float]):
    meta: Metadata
    query: StreamSummary

    def measure(self, answer: float) -> float:
        return answer


def build(meta: Metadata) -> AwsKinesisStreamScaler:
    identity = meta.built_identity(meta.aws_region, meta.aws_endpoint)
    return AwsKinesisStreamScaler(
        meta=meta,
        query=StreamSummary(identity, meta.stream_name),
        metric_name=normalize(f"aws-kinesis-{meta.stream_name}"),
        target=float(meta.shard_count),
        activation_target=float(meta.activation_shard_count),
        value_label="open shards",
    )


KIND = aws_auth.AwsKind(
    type_name="aws-kinesis-stream",
    keda_name="awsKinesisStreamScaler",
    metadata=Metadata,
    build=build,
    identity_metadata=aws_auth.AwsAuth,
    summary="Open shards of an AWS Kinesis data stream.",
    example=Example(
        {"streamName": "orders", "shardCount": "2", "awsRegion": "eu-west-1"},
        {"awsAccessKeyID": "AKIAIOSFODNN7EXAMPLE", "awsSecretAccessKey": "aws-secret-key"},
        source="awsEndpoint",
    ),
)
