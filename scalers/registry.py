"""Trigger type name → scaler kind. A new trigger type adds one line to :data:`MODULES`.

A kind's module is imported the first time its type is asked for, not at start: each module
brings its backend's client library (botocore, aiokafka, redis, grpc, nats, asyncpg, ...),
tens of MiB in all, and a deployment uses a few of them. Iterating :data:`KINDS`' keys
imports nothing; its values import every module (``metrics-adapter triggers`` does)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from scalers import resource
from scalers.base import ScalerKind

MODULES: Mapping[str, str] = {
    "activemq": "activemq",
    "artemis-queue": "artemis",
    "aws-cloudwatch": "aws_cloudwatch",
    "aws-dynamodb": "aws_dynamodb",
    "aws-dynamodb-streams": "aws_dynamodb_streams",
    "aws-kinesis-stream": "aws_kinesis_stream",
    "aws-sqs-queue": "aws_sqs_queue",
    "azure-blob": "azure_blob",
    "azure-queue": "azure_queue",
    "beanstalkd": "beanstalkd",
    "cron": "cron",
    "etcd": "etcd",
    "external": "external",
    "external-push": "external_push",
    "kafka": "kafka",
    "kubernetes-workload": "kubernetes_workload",
    "metrics-api": "metrics_api",
    "mysql": "mysql",
    "nats-jetstream": "nats_jetstream",
    "postgresql": "postgresql",
    "prometheus": "prometheus",
    "rabbitmq": "rabbitmq",
    "redis": "redis",
    "redis-streams": "redis_streams",
    "redis-cluster": "redis_variants",
    "redis-sentinel": "redis_variants",
    "redis-cluster-streams": "redis_variants",
    "redis-sentinel-streams": "redis_variants",
}
"""Each trigger type and the module of :mod:`scalers` that defines its kind, as ``KIND`` or
among ``KINDS``."""


def _load(type_name: str) -> ScalerKind[Any]:
    module = importlib.import_module(f"scalers.{MODULES[type_name]}")
    kinds: tuple[ScalerKind[Any], ...] = getattr(module, "KINDS", None) or (module.KIND,)
    for kind in kinds:
        if kind.type_name == type_name:
            return kind
    raise LookupError(f"scalers.{MODULES[type_name]} defines no kind {type_name!r}")


class _Kinds(Mapping[str, ScalerKind[Any]]):
    """:data:`MODULES`' kinds, each imported when first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, ScalerKind[Any]] = {}

    def __getitem__(self, type_name: str) -> ScalerKind[Any]:
        kind = self._loaded.get(type_name)
        if kind is None:
            if type_name not in MODULES:
                raise KeyError(type_name)
            kind = self._loaded[type_name] = _load(type_name)
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)

    def __contains__(self, type_name: object) -> bool:
        return type_name in MODULES


KINDS: Mapping[str, ScalerKind[Any]] = _Kinds()

RESOURCE_KINDS: Mapping[str, resource.ResourceKind] = {k.type_name: k for k in resource.KINDS}
"""Triggers the HPA reads itself (Resource metrics): nothing to poll, nothing to serve."""
RESOURCE_TYPES = frozenset(RESOURCE_KINDS)
