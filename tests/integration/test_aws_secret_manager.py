"""awsSecretManager against moto's Secrets Manager with IAM enforced: values (JSON keys, whole
strings, versions and stages) reaching an aws-sqs-queue trigger through binding, one read per
secret version, a podIdentity role, and errors that name the source, never a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.aws_secret_manager import parameter_reads
from metrics_adapter.binding.auth_sources.base import ReadContext, SourceValues
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.errors import AuthSourceError
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import Clients
from scalers.errors import ConfigError
from tests.integration.aws_sqs_queue.helpers import scaled_object
from tests.support.moto import (
    NEEDS,
    REGION,
    MotoServer,
    available,
    iam_keys,
    isolate_environment,
    make_queue,
    make_role,
    make_secret,
    put_secret,
)
from tests.support.servers import require_in_ci
from tests.support.triggers import poll

pytestmark = pytest.mark.integration
require_in_ci(available(), NEEDS)


@pytest.fixture
def moto(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoServer]:
    """A moto of the test's own (IAM enforcement is per server); Secrets Manager and STS at
    their normal endpoints, pointed at it as an operator would with botocore's variables."""
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    isolate_environment(monkeypatch, tmp_path_factory.getbasetemp())
    server = MotoServer().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.endpoint)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def context() -> AsyncIterator[ReadContext]:
    clients = Clients(timeout=5)
    try:
        yield ReadContext(clients)
    finally:
        await clients.aclose()


@pytest.fixture(autouse=True)
def quiet_botocore(caplog: pytest.LogCaptureFixture) -> None:
    """Every log line of ours; botocore's from WARNING, as the adapter configures it."""
    caplog.set_level(logging.DEBUG)
    for noisy in ("botocore", "aiobotocore", "aioboto3"):
        caplog.set_level(logging.WARNING, logger=noisy)


def authentication(secrets: list[dict[str, str]], **source: Any) -> list[dict[str, Any]]:
    """A TriggerAuthentication ``sqs-keys`` reading ``secrets`` from Secrets Manager with the
    keys of the Secret ``manager-keys`` (unless ``source`` says otherwise)."""
    credentials = {
        name: {"valueFrom": {"secretKeyRef": {"name": "manager-keys", "key": name}}}
        for name in ("accessKey", "accessSecretKey")
    }
    spec = {"region": REGION, "credentials": credentials, "secrets": secrets, **source}
    return [
        {
            "kind": "TriggerAuthentication",
            "metadata": {"name": "sqs-keys", "namespace": "default"},
            "spec": {"awsSecretManager": spec},
        }
    ]


def manager_keys(keys: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "Secret",
        "metadata": {"name": "manager-keys", "namespace": "default"},
        "stringData": {
            "accessKey": keys["awsAccessKeyID"],
            "accessSecretKey": keys["awsSecretAccessKey"],
        },
    }


async def bound_value(
    moto: MotoServer, docs: list[dict[str, Any]], url: str, clients: Clients
) -> float:
    """Bind a ScaledObject whose SQS trigger uses ``sqs-keys``, with its sources read ahead
    as ``serve`` does, and poll it once."""
    inventory = Inventory()
    for doc in docs:
        inventory.add(doc, "test")
    inventory.sources = SourceCache(ReadContext(clients))
    so = parse_scaled_object(
        scaled_object("w", {"queueURL": url, "awsRegion": REGION, "awsEndpoint": moto.endpoint})
    )
    try:
        await inventory.settle(so, within=10)
        (trigger,) = bind(so, inventory)
        return (await poll(trigger.scaler, clients)).value
    finally:
        await inventory.sources.aclose()


async def test_json_keys_of_a_secret_are_the_sqs_trigger_s_keys(
    moto: MotoServer, context: ReadContext, caplog: pytest.LogCaptureFixture
) -> None:
    url = await make_queue(moto, "jobs", visible=6)
    sqs_keys = await iam_keys(moto, "worker", ["sqs:GetQueueAttributes"])
    reader = await iam_keys(moto, "reader", ["secretsmanager:GetSecretValue"])
    stored = {"id": sqs_keys["awsAccessKeyID"], "secret": sqs_keys["awsSecretAccessKey"]}
    await make_secret(moto, "prod/sqs", json.dumps({**stored, "count": 3}))
    moto.enforce_auth()
    docs = [
        *authentication(
            [
                {"parameter": "awsAccessKeyID", "name": "prod/sqs", "secretKey": "id"},
                {"parameter": "awsSecretAccessKey", "name": "prod/sqs", "secretKey": "secret"},
            ]
        ),
        manager_keys(reader),
    ]
    assert await bound_value(moto, docs, url, context.clients) == 6
    reads = [c for c in moto.received() if c.action == "GetSecretValue"]
    assert len(reads) == 1  # both parameters name one version: one read
    assert reads[0].access_key == reader["awsAccessKeyID"]
    for secret in (sqs_keys["awsSecretAccessKey"], reader["awsSecretAccessKey"]):
        assert secret not in caplog.text


async def test_whole_values_versions_and_stages(moto: MotoServer, context: ReadContext) -> None:
    first = await make_secret(moto, "token", "old-value")
    await put_secret(moto, "token", "new-value")
    reader = await iam_keys(moto, "reader", ["secretsmanager:GetSecretValue"])
    moto.enforce_auth()
    docs = authentication(
        [
            {"parameter": "current", "name": "token"},
            {"parameter": "pinned", "name": "token", "versionId": first},
            {"parameter": "previous", "name": "token", "versionStage": "AWSPREVIOUS"},
        ]
    )
    values = await read_all(docs, manager_keys(reader), context)
    assert values == {"current": "new-value", "pinned": "old-value", "previous": "old-value"}


async def test_a_missing_secret_or_key_is_an_error_naming_the_source(
    moto: MotoServer, context: ReadContext, caplog: pytest.LogCaptureFixture
) -> None:
    url = await make_queue(moto, "jobs", visible=1)
    reader = await iam_keys(moto, "reader", ["secretsmanager:GetSecretValue"])
    await make_secret(moto, "prod/sqs", json.dumps({"id": "AKIA", "secret": "s3cr3t-value"}))
    moto.enforce_auth()
    docs = [
        *authentication(
            [
                {"parameter": "awsAccessKeyID", "name": "prod/missing", "secretKey": "id"},
                {"parameter": "awsSecretAccessKey", "name": "prod/sqs", "secretKey": "nope"},
            ]
        ),
        manager_keys(reader),
    ]
    with pytest.raises(ConfigError) as info:
        await bound_value(moto, docs, url, context.clients)
    message = str(info.value)
    assert (
        f'awsSecretManager secret "prod/missing" in {REGION}: ResourceNotFoundException' in message
    )
    assert "(for parameter awsAccessKeyID)" in message
    assert f'awsSecretManager secret "prod/sqs" in {REGION} has no key "nope"' in message
    assert "awsAccessKeyID: is required" not in message  # the source is named, not the param
    assert "s3cr3t-value" not in message + caplog.text
    assert reader["awsSecretAccessKey"] not in message + caplog.text


async def test_keys_the_manager_refuses_and_absent_credentials_are_named(
    moto: MotoServer, context: ReadContext
) -> None:
    await make_secret(moto, "token", "value")
    stranger = await iam_keys(moto, "stranger", ["sqs:ListQueues"])
    moto.enforce_auth()
    secrets = [{"parameter": "token", "name": "token"}]
    # moto answers IAM refusals in XML, which botocore's JSON parser shows whole: "HTTP 403".
    denied = r'secret "token" in us-east-1: HTTP 403: .*not authorized to perform: secretsmanager:'
    with pytest.raises(AuthSourceError, match=denied):
        await read_all(authentication(secrets), manager_keys(stranger), context)
    with pytest.raises(AuthSourceError, match=r"credentials.accessKey and .*required"):
        await read_all(authentication(secrets, credentials=None), None, context)


async def test_pod_identity_aws_reads_as_its_role(
    moto: MotoServer, context: ReadContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_secret(moto, "token", "role-only-value")
    role = await make_role(moto, "secrets", ["secretsmanager:GetSecretValue"])
    adapter = await iam_keys(moto, "adapter", ["sts:AssumeRole"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", adapter["awsAccessKeyID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", adapter["awsSecretAccessKey"])
    moto.enforce_auth()
    docs = authentication(
        [{"parameter": "token", "name": "token"}],
        credentials=None,
        podIdentity={"provider": "aws", "roleArn": role},
    )
    assert await read_all(docs, None, context) == {"token": "role-only-value"}
    [assume] = [c for c in moto.received() if c.action == "AssumeRole"]
    assert assume.access_key == adapter["awsAccessKeyID"]


async def read_all(
    docs: list[dict[str, Any]], secret: dict[str, Any] | None, context: ReadContext
) -> dict[str, str]:
    """Each parameter's value, read as the cache would (one read per distinct read)."""
    inventory = Inventory()
    for doc in [*docs, *([secret] if secret else [])]:
        inventory.add(doc, "test")
    auth = next(iter(inventory.auths.values()))
    reads = parameter_reads(auth, "default", inventory)
    answers: dict[Any, SourceValues] = {}
    for r in reads:
        if r.read not in answers:
            answers[r.read] = await r.read.read(context)
    return {r.parameter: answers[r.read].values[r.key] for r in reads}
