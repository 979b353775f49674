"""AWS identities against moto with IAM enforced: a role assumed through STS (AssumeRole with an
external ID, IRSA's AssumeRoleWithWebIdentity from a token file), used by an SQS trigger, shared,
and refreshed before it expires. The adapter's own user may only assume roles, so an SQS answer
proves the request was made as the role; moto's request log says who signed each request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from scalers import aws, aws_identity, aws_sqs_queue
from scalers.clients import Clients
from scalers.errors import Problems, SourceResponseError
from scalers.identity import PodIdentity
from scalers.params import TriggerInputs
from tests.support.moto import (
    REGION,
    MotoServer,
    iam_keys,
    make_queue,
    make_role,
)
from tests.support.triggers import poll

pytestmark = pytest.mark.integration

TOKEN = "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.signature"


def quiet_botocore(caplog: pytest.LogCaptureFixture) -> None:
    """Every log line of ours, and botocore's from WARNING as the adapter configures it
    (its DEBUG lines carry whole response bodies, credentials included)."""
    caplog.set_level(logging.DEBUG)
    for noisy in ("botocore", "aiobotocore", "aioboto3"):
        caplog.set_level(logging.WARNING, logger=noisy)


@asynccontextmanager
async def open_clients() -> AsyncIterator[Clients]:
    clients = Clients(timeout=5)
    try:
        yield clients
    finally:
        await clients.aclose()


def sqs_trigger(
    server: MotoServer,
    url: str,
    *,
    auth: dict[str, str] | None = None,
    pod: PodIdentity | None = None,
    **metadata: str,
) -> aws_sqs_queue.AwsSqsQueueScaler:
    problems = Problems()
    inputs = TriggerInputs(
        {"queueURL": url, "awsRegion": REGION, "awsEndpoint": server.endpoint, **metadata},
        auth_params=auth or {},
        pod_identity=pod,
    )
    built = aws_sqs_queue.KIND.create(inputs, problems)
    assert [str(p) for p in problems] == []
    assert isinstance(built, aws_sqs_queue.AwsSqsQueueScaler)
    return built


async def adapter_may_only_assume_roles(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The adapter's own identity (its environment): a user allowed sts:AssumeRole only."""
    keys = await iam_keys(server, "adapter", ["sts:AssumeRole"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["awsAccessKeyID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["awsSecretAccessKey"])
    return keys["awsAccessKeyID"]


async def test_pod_identity_aws_assumes_its_role_with_the_external_id(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_botocore(caplog)
    url = await make_queue(moto, "jobs", visible=4, in_flight=1)
    role = await make_role(moto, "reader", ["sqs:GetQueueAttributes"])
    adapter_key = await adapter_may_only_assume_roles(moto, monkeypatch)
    moto.enforce_auth()
    pod = PodIdentity("aws", role_arn=role, external_id="ext-42")
    s = sqs_trigger(moto, url, pod=pod)

    async with open_clients() as clients:
        assert (await poll(s, clients)).value == 5
        assumed = await aws.frozen_credentials(clients, s.query.identity)
        # The adapter's own identity cannot read the queue: the role is what made it work.
        with pytest.raises(SourceResponseError, match="not authorized to perform: sqs:GetQue"):
            await poll(sqs_trigger(moto, url, identityOwner="operator"), clients)

    calls = moto.received()
    [assume] = [c for c in calls if c.action == "AssumeRole"]
    assert assume.params["RoleArn"] == role
    assert assume.params["ExternalId"] == "ext-42"
    assert assume.params["RoleSessionName"] == aws.ROLE_SESSION_NAME
    assert assume.access_key == adapter_key
    reads = [c for c in calls if c.action == "GetQueueAttributes"]
    assert [c.access_key for c in reads] == [assumed.access_key, adapter_key]
    assert assumed.access_key.startswith("ASIA")  # moto's temporary keys
    for secret in (assumed.secret_key, assumed.token):
        assert secret not in caplog.text


async def test_an_aws_role_arn_of_the_authentication_is_assumed_without_external_id(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # identityOwner pod with awsRoleArn (what aws-eks resolves the ServiceAccount's role to).
    url = await make_queue(moto, "jobs", visible=2)
    role = await make_role(moto, "reader", ["sqs:GetQueueAttributes"])
    await adapter_may_only_assume_roles(moto, monkeypatch)
    moto.enforce_auth()
    s = sqs_trigger(moto, url, auth={"awsRoleArn": role}, pod=PodIdentity("aws-eks"))
    async with open_clients() as clients:
        assert (await poll(s, clients)).value == 2
    [assume] = [c for c in moto.received() if c.action == "AssumeRole"]
    assert "ExternalId" not in assume.params


async def test_irsa_in_the_adapter_s_environment_is_its_own_identity(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The adapter runs with IRSA (no keys): botocore's chain assumes AWS_ROLE_ARN with the
    # projected token; identityOwner operator uses that identity. (moto cannot enforce IAM
    # here: it fails on AssumeRoleWithWebIdentity's unsigned request, so the log shows who.)
    url = await make_queue(moto, "jobs", visible=3)
    role = await make_role(moto, "adapter-role", ["sqs:GetQueueAttributes"])
    token = tmp_path / "token"
    token.write_text(TOKEN)
    monkeypatch.setenv("AWS_ROLE_ARN", role)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    s = sqs_trigger(moto, url, identityOwner="operator")
    async with open_clients() as clients:
        assert (await poll(s, clients)).value == 3
        own = await aws.frozen_credentials(clients, s.query.identity)
    calls = moto.received()
    [assume] = [c for c in calls if c.action == "AssumeRoleWithWebIdentity"]
    assert (assume.params["RoleArn"], assume.params["WebIdentityToken"]) == (role, TOKEN)
    [read] = [c for c in calls if c.action == "GetQueueAttributes"]
    assert read.access_key == own.access_key
    assert own.access_key.startswith("ASIA")


async def test_pod_identity_aws_with_a_token_file_assumes_the_role_with_it_first(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # KEDA: when the adapter runs with IRSA, its token assumes the trigger's role itself.
    url = await make_queue(moto, "jobs", visible=1)
    role = await make_role(moto, "reader", ["sqs:GetQueueAttributes"])
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    monkeypatch.setenv("AWS_ROLE_ARN", await make_role(moto, "adapter-role", ["sts:AssumeRole"]))
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    s = sqs_trigger(moto, url, pod=PodIdentity("aws", role_arn=role))
    async with open_clients() as clients:
        assert (await poll(s, clients)).value == 1
        assumed = await aws.frozen_credentials(clients, s.query.identity)
    calls = moto.received()
    assert "AssumeRole" not in [c.action for c in calls]
    [assume] = [c for c in calls if c.action == "AssumeRoleWithWebIdentity"]
    assert (assume.params["RoleArn"], assume.params["WebIdentityToken"]) == (role, TOKEN)
    [read] = [c for c in calls if c.action == "GetQueueAttributes"]
    assert read.access_key == assumed.access_key


async def test_triggers_of_one_role_share_its_credentials_and_refresh_them_before_expiry(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await make_queue(moto, "one", visible=1), await make_queue(moto, "two")
    role = await make_role(moto, "reader", ["sqs:GetQueueAttributes"])
    await adapter_may_only_assume_roles(moto, monkeypatch)
    moto.enforce_auth()
    lasting = aws_identity.AwsIdentity(REGION, moto.endpoint, role=aws_identity.AssumedRole(role))
    async with open_clients() as clients:
        for url in (first, second, first):
            await aws_sqs_queue.QueueAttributes(lasting, url).run(clients)
    assert [c.action for c in moto.received()].count("AssumeRole") == 1

    # 900 s (STS's shortest) is inside botocore's 15-minute advisory window: every use
    # refreshes, as an hour-long session does in its last quarter.
    short = aws_identity.AwsIdentity(
        REGION, moto.endpoint, role=aws_identity.AssumedRole(role, duration=900)
    )
    async with open_clients() as clients:
        for _ in range(2):
            await aws_sqs_queue.QueueAttributes(short, first).run(clients)
    calls = moto.received()
    assert [c.action for c in calls].count("AssumeRole") == 3
    keys = [c.access_key for c in calls if c.action == "GetQueueAttributes"][-2:]
    assert len(set(keys)) == 2


async def test_a_role_the_adapter_may_not_assume_is_an_error_naming_it(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await make_queue(moto, "jobs", visible=7)
    role = await make_role(moto, "reader", ["sqs:GetQueueAttributes"])
    keys = await iam_keys(moto, "nobody", ["sqs:ListQueues"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["awsAccessKeyID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["awsSecretAccessKey"])
    moto.enforce_auth()
    s = sqs_trigger(moto, url, pod=PodIdentity("aws", role_arn=role))
    async with open_clients() as clients:
        with pytest.raises(SourceResponseError) as info:
            await poll(s, clients)
    message = str(info.value)
    assert f"assuming role {role} with STS: AccessDenied" in message
    assert message.startswith(f"SQS GetQueueAttributes {url} at {moto.endpoint} ({REGION}) as")
    assert keys["awsSecretAccessKey"] not in message
