"""Triggers of the four AWS types pointing at a moto server, and an endpoint that answers
what a test scripts."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass
class ScriptedEndpoint:
    """An HTTP endpoint on loopback whose answer to each request is ``answer(target, body)``:
    for answers no real server gives on demand (a stream of many shard pages, a failed
    CloudWatch result)."""

    answer: Callable[[str, bytes], bytes]
    port: int = 0
    targets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = (line.partition(":") for line in head.split("\r\n")[1:] if line)
        headers = {k.strip().lower(): v.strip() for k, _, v in lines}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        target = headers.get("x-amz-target", "")
        self.targets.append(target)
        reply = self.answer(target, body)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(reply), reply)
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@asynccontextmanager
async def scripted(answer: Callable[[str, bytes], bytes]) -> AsyncIterator[ScriptedEndpoint]:
    endpoint = ScriptedEndpoint(answer)
    server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
    endpoint.port = server.sockets[0].getsockname()[1]
    try:
        yield endpoint
    finally:
        server.close()
        await server.wait_closed()
