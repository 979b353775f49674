"""Triggers and ScaledObjects pointing at a moto server, and an endpoint that is not SQS."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from scalers import aws_sqs_queue
from tests.support.moto import REGION, MotoServer
from tests.support.triggers import build

KEYS = {"awsAccessKeyID": "AKIAMOTOTESTKEY00001", "awsSecretAccessKey": "s3cr3t-never-shown"}


def metadata(server: MotoServer, queue_url: str, **more: str) -> dict[str, str]:
    return endpoint_metadata(server.endpoint, queue_url, **more)


def endpoint_metadata(endpoint: str, queue_url: str, **more: str) -> dict[str, str]:
    return {"queueURL": queue_url, "awsRegion": REGION, "awsEndpoint": endpoint, **more}


def scaler(
    meta: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> aws_sqs_queue.AwsSqsQueueScaler:
    credentials = KEYS if auth is None else auth
    return build(aws_sqs_queue.KIND, aws_sqs_queue.AwsSqsQueueScaler, meta, credentials, env)


def scaled_object(
    name: str, trigger_metadata: dict[str, str], auth: str = "sqs-keys"
) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": 5,
            "triggers": [
                {
                    "type": "aws-sqs-queue",
                    "metadata": trigger_metadata,
                    "authenticationRef": {"name": auth},
                }
            ],
        },
    }


def keys_authentication(
    name: str, secret: str, keys: dict[str, str] = KEYS
) -> list[dict[str, Any]]:
    """A TriggerAuthentication reading awsAccessKeyID/awsSecretAccessKey from a Secret."""
    refs = [{"parameter": p, "name": secret, "key": p} for p in keys]
    return [
        {
            "kind": "TriggerAuthentication",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretTargetRef": refs},
        },
        {
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": "default"},
            "stringData": keys,
        },
    ]


@dataclass
class CannedEndpoint:
    """An HTTP endpoint on loopback that answers every request with one canned response."""

    port: int = 0
    status: int = 200
    body: bytes = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 %d Canned\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (self.status, len(self.body), self.body)
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
