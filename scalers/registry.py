"""Trigger type name → scaler kind. A new trigger type adds one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scalers import (
    activemq,
    artemis,
    aws_cloudwatch,
    aws_dynamodb,
    aws_dynamodb_streams,
    aws_kinesis_stream,
    aws_sqs_queue,
    azure_blob,
    azure_queue,
    beanstalkd,
    cron,
    etcd,
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
    redis_streams,
    redis_variants,
    resource,
)
from scalers.base import ScalerKind

KINDS: Mapping[str, ScalerKind[Any]] = {
    kind.type_name: kind
    for kind in (
        activemq.KIND,
        artemis.KIND,
        aws_cloudwatch.KIND,
        aws_dynamodb.KIND,
        aws_dynamodb_streams.KIND,
        aws_kinesis_stream.KIND,
        aws_sqs_queue.KIND,
        azure_blob.KIND,
        azure_queue.KIND,
        beanstalkd.KIND,
        cron.KIND,
        etcd.KIND,
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
        redis_streams.KIND,
        *redis_variants.KINDS,
    )
}

RESOURCE_KINDS: Mapping[str, resource.ResourceKind] = {k.type_name: k for k in resource.KINDS}
"""Triggers the HPA reads itself (Resource metrics): nothing to poll, nothing to serve."""
RESOURCE_TYPES = frozenset(RESOURCE_KINDS)
