"""A real moto server (SQS, IAM, STS, Secrets Manager, CloudWatch, Kinesis, DynamoDB and its
Streams over HTTP) on a free loopback port.

moto's request recorder is on from the start, so tests can count the requests the
server received (``requests("GetQueueAttributes")``) rather than the ones a client sent,
and see who made them (:meth:`MotoServer.received`).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aioboto3

from tests.support.process import ServerProcess
from tests.support.servers import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"
SETUP_KEYS = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
"""moto accepts any keys unless auth is enforced (``enforce_auth``)."""


def available() -> bool:
    return importlib.util.find_spec("moto.server") is not None


NEEDS = "moto[server] in the virtualenv (pip install 'moto[server]>=5')"


@dataclass
class MotoServer(ServerProcess):
    log_files = ("moto.log",)

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moto-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """What a trigger's ``awsEndpoint`` holds."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def recording(self) -> Path:
        return self.workdir / "requests.jsonl"

    def queue_url(self, name: str) -> str:
        """moto's queue URLs carry no region: ``http://127.0.0.1:<port>/<account>/<name>``."""
        return f"{self.endpoint}/{ACCOUNT}/{name}"

    def start(self, timeout: float = 20.0) -> MotoServer:
        for _ in range(3):  # a free port can be taken between the probe and moto's bind
            self.port = free_port()
            if self._spawn(timeout):
                return self
        raise RuntimeError(f"moto did not start: {self.log()[-2000:]}")

    def _spawn(self, timeout: float) -> bool:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AWS_") and "PROXY" not in key.upper()
        }
        env |= {"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(self.recording)}
        with open(self.workdir / "moto.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._ready():
                return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto was not ready within {timeout}s: {self.log()[-2000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _post(self, path: str, body: bytes = b"") -> Any:
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def enforce_auth(self) -> None:
        """From now on, moto checks every request's keys and policies like IAM would."""
        self._post("/moto-api/reset-auth", b"0")

    def received(self) -> list[Received]:
        """Every request the server received, in order."""
        if not self.recording.exists():
            return []
        return [Received.of(json.loads(line)) for line in self.recording.read_text().splitlines()]

    def requests(self, action: str, queue_url: str | None = None) -> int:
        """How many ``AmazonSQS.<action>`` requests the server received (for one queue)."""
        if not self.recording.exists():
            return 0
        count = 0
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            if headers.get("x-amz-target") != f"AmazonSQS.{action}":
                continue
            body = entry["body"] or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            if queue_url is None or json.loads(body or "{}").get("QueueUrl") == queue_url:
                count += 1
        return count


@dataclass(frozen=True)
class Received:
    """One recorded request: its action (JSON or query protocol), parameters, and the
    access key that signed it."""

    action: str
    params: dict[str, Any]
    access_key: str

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Received:
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        body = entry["body"] or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        target = headers.get("x-amz-target", "")
        params: dict[str, Any]
        if target:
            action, params = target.rpartition(".")[2], json.loads(body or "{}")
        else:
            params = dict(urllib.parse.parse_qsl(body))
            action = str(params.get("Action", ""))
        credential = re.search(r"Credential=([^/]+)/", headers.get("authorization", ""))
        return cls(action, params, credential.group(1) if credential else "")


async def make_role(
    server: MotoServer, name: str, actions: list[str], *, external_id: str | None = None
) -> str:
    """A role anyone may assume (with ``external_id`` as its trust condition when given),
    allowed ``actions`` on every resource; its ARN."""
    trust: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": "*", "Federated": "*"},
        "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"],
    }
    if external_id:
        trust["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    async with aioboto3.Session().client(
        "iam", region_name=REGION, endpoint_url=server.endpoint, **SETUP_KEYS
    ) as iam:
        answer = await iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
        )
        await iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return str(answer["Role"]["Arn"])


async def make_secret(server: MotoServer, name: str, value: str) -> str:
    """A Secrets Manager secret holding ``value``; its first version's id."""
    async with aioboto3.Session().client(
        "secretsmanager", region_name=REGION, endpoint_url=server.endpoint, **SETUP_KEYS
    ) as sm:
        answer = await sm.create_secret(Name=name, SecretString=value)
    return str(answer["VersionId"])


async def put_secret(server: MotoServer, name: str, value: str) -> str:
    """A new current version of a secret (the previous one becomes AWSPREVIOUS); its id."""
    async with aioboto3.Session().client(
        "secretsmanager", region_name=REGION, endpoint_url=server.endpoint, **SETUP_KEYS
    ) as sm:
        answer = await sm.put_secret_value(SecretId=name, SecretString=value)
    return str(answer["VersionId"])


def isolate_environment(monkeypatch: Any, scratch: Path) -> None:
    """No credentials, config files, proxies or instance metadata from the machine: botocore
    may only use what a test gives it, and may only talk to loopback."""
    for key in list(os.environ):
        if key.startswith("AWS_") or "PROXY" in key.upper():
            monkeypatch.delenv(key)
    missing = scratch / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@asynccontextmanager
async def sqs_client(server: MotoServer, region: str = REGION, **keys: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client(
        "sqs", region_name=region, endpoint_url=server.endpoint, **(keys or SETUP_KEYS)
    ) as client:
        yield client


async def make_queue(
    server: MotoServer,
    name: str,
    *,
    visible: int = 0,
    in_flight: int = 0,
    delayed: int = 0,
    fifo: bool = False,
    region: str = REGION,
) -> str:
    """A queue holding ``visible`` messages, ``in_flight`` received and not deleted (hidden
    for 15 min), and ``delayed`` not yet delivered (for 15 min): no clock can change them
    during a test."""
    async with sqs_client(server, region) as sqs:
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
        url: str = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        group = {"MessageGroupId": "g"} if fifo else {}
        for i in range(visible + in_flight):
            await sqs.send_message(QueueUrl=url, MessageBody=f"job {i}", **group)
        received = 0
        while received < in_flight:
            wanted = min(10, in_flight - received)
            answer = await sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=wanted, VisibilityTimeout=900
            )
            got = len(answer.get("Messages", []))
            assert got, f"moto returned no message to receive from {url}"
            received += got
        for i in range(delayed):
            await sqs.send_message(QueueUrl=url, MessageBody=f"later {i}", DelaySeconds=900)
        return url


async def iam_keys(server: MotoServer, user: str, actions: list[str]) -> dict[str, str]:
    """Keys of a new IAM user allowed ``actions`` on every resource, as authParams hold them
    (they matter once ``enforce_auth`` is on)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    async with aioboto3.Session().client(
        "iam", region_name=REGION, endpoint_url=server.endpoint, **SETUP_KEYS
    ) as iam:
        await iam.create_user(UserName=user)
        await iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = (await iam.create_access_key(UserName=user))["AccessKey"]
    return {"awsAccessKeyID": key["AccessKeyId"], "awsSecretAccessKey": key["SecretAccessKey"]}


@asynccontextmanager
async def aws_client(server: MotoServer, service: str, region: str = REGION) -> AsyncIterator[Any]:
    """A client of ``service`` on ``server`` with the setup keys, for preparing a test."""
    async with aioboto3.Session().client(
        service, region_name=region, endpoint_url=server.endpoint, **SETUP_KEYS
    ) as client:
        yield client


def count(server: MotoServer, action: str, **params: str) -> int:
    """How many ``action`` requests (any service) the server received whose parameters
    include ``params``."""
    return sum(
        1
        for r in server.received()
        if r.action == action and all(r.params.get(k) == v for k, v in params.items())
    )


async def put_metric(
    server: MotoServer,
    namespace: str,
    name: str,
    dimensions: dict[str, str],
    points: list[tuple[float, float]],
    *,
    unit: str = "Count",
    region: str = REGION,
) -> None:
    """CloudWatch datapoints ``(unix time, value)`` of one metric."""
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Timestamp": datetime.fromtimestamp(at, UTC),
            "Value": value,
            "Unit": unit,
        }
        for at, value in points
    ]
    async with aws_client(server, "cloudwatch", region) as cloudwatch:
        await cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)


async def make_stream(
    server: MotoServer, name: str, shards: int, *, resized: int | None = None, region: str = REGION
) -> None:
    """A Kinesis stream of ``shards`` shards, then resharded to ``resized`` open shards (the
    shards it closes are still listed)."""
    async with aws_client(server, "kinesis", region) as kinesis:
        await kinesis.create_stream(StreamName=name, ShardCount=shards)
        if resized is not None:
            await kinesis.update_shard_count(
                StreamName=name, TargetShardCount=resized, ScalingType="UNIFORM_SCALING"
            )


async def make_table(
    server: MotoServer,
    name: str,
    items: list[dict[str, Any]],
    *,
    stream: bool = False,
    index: str | None = None,
    region: str = REGION,
) -> None:
    """A DynamoDB table keyed by ``queue`` (S) and ``id`` (N) holding ``items`` (botocore's
    typed form), with a stream when asked and a global index ``index`` on ``status`` (S)."""
    attributes = [
        {"AttributeName": "queue", "AttributeType": "S"},
        {"AttributeName": "id", "AttributeType": "N"},
    ]
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    if index:
        attributes.append({"AttributeName": "status", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    async with aws_client(server, "dynamodb", region) as dynamodb:
        await dynamodb.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "queue", "KeyType": "HASH"},
                {"AttributeName": "id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
        for item in items:
            await dynamodb.put_item(TableName=name, Item=item)
