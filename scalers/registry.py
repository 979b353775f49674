"""Trigger type name → scaler kind. A new trigger type adds one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scalers import (
    aws_cloudwatch,
    aws_dynamodb,
    aws_dynamodb_streams,
    aws_kinesis_stream,
    aws_sqs_queue,
    beanstalkd,
    cron,
    external,
    external_push,
    kafka,
    kubernetes_workload,
    metrics_api,
    mysql,
    nats_jetstream,
    postgresql,
    prometheus,
    rabbitmq,
    redis,
    resource,
)
from scalers.base import ScalerKind

KINDS: Mapping[str, ScalerKind[Any]] = {
    kind.type_name: kind
    for kind in (
        aws_cloudwatch.KIND,
        aws_dynamodb.KIND,
        aws_dynamodb_streams.KIND,
        aws_kinesis_stream.KIND,
        aws_sqs_queue.KIND,
        beanstalkd.KIND,
        cron.KIND,
        external.KIND,
        external_push.KIND,
        kafka.KIND,
        kubernetes_workload.KIND,
        metrics_api.KIND,
        mysql.KIND,
        nats_jetstream.KIND,
        postgresql.KIND,
        prometheus.KIND,
        rabbitmq.KIND,
        redis.KIND,
    )
}

RESOURCE_KINDS: Mapping[str, resource.ResourceKind] = {k.type_name: k for k in resource.KINDS}
"""Triggers the HPA reads itself (Resource metrics): nothing to poll, nothing to serve."""
RESOURCE_TYPES = frozenset(RESOURCE_KINDS)
