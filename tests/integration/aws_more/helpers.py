"""Triggers of the four AWS types pointing at a moto server."""

from __future__ import annotations

import math
import time
from typing import Any

from scalers import aws_cloudwatch, aws_dynamodb, aws_dynamodb_streams, aws_kinesis_stream
from scalers.base import Scaler, ScalerKind
from scalers.errors import Problems
from scalers.params import TriggerInputs
from tests.support.moto import REGION, MotoServer

KEYS = {"awsAccessKeyID": "AKIAMOTOTESTKEY00001", "awsSecretAccessKey": "s3cr3t-never-shown"}

KINDS: dict[str, ScalerKind[Any]] = {
    k.type_name: k
    for k in (
        aws_cloudwatch.KIND,
        aws_kinesis_stream.KIND,
        aws_dynamodb.KIND,
        aws_dynamodb_streams.KIND,
    )
}


def scaler(
    type_name: str,
    server: MotoServer | str,
    meta: dict[str, str],
    auth: dict[str, str] | None = None,
) -> Scaler[Any]:
    """A ``type_name`` trigger on ``server`` (or an endpoint URL), built as the binder does;
    a ConfigError names every problem."""
    endpoint = server if isinstance(server, str) else server.endpoint
    metadata = {"awsRegion": REGION, "awsEndpoint": endpoint, **meta}
    problems = Problems()
    inputs = TriggerInputs(metadata, {}, KEYS if auth is None else auth)
    built = KINDS[type_name].create(inputs, problems)
    problems.raise_for(f"trigger {type_name}")
    assert built is not None
    return built


def period_start(period: int = 60) -> float:
    """The start of the current period: the end of the window a trigger with no
    ``metricEndTimeOffset`` asks for, or one period before it if a period ends meanwhile."""
    return math.floor(time.time() / period) * period
