"""How a role is (re)assumed: KEDA's web identity first, its fallback to AssumeRole decided
once, and the parameters STS gets. A fake STS client stands at the transport seam; the real
calls run against moto in tests/integration/aws_identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as boto

from scalers import aws, aws_identity
from scalers.clients import Clients

ROLE = "arn:aws:iam::123456789012:role/reader"
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)


class FakeSts:
    def __init__(self, web_identity_fails: bool) -> None:
        self.web_identity_fails = web_identity_fails
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, n: int) -> dict[str, Any]:
        keys = {"AccessKeyId": f"ASIA{n}", "SecretAccessKey": "s", "SessionToken": "t"}
        return {"Credentials": {**keys, "Expiration": EXPIRY + timedelta(seconds=n)}}

    async def assume_role_with_web_identity(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("AssumeRoleWithWebIdentity", kwargs))
        if self.web_identity_fails:
            error = {"Error": {"Code": "AccessDenied", "Message": "not trusted"}}
            raise boto.ClientError(error, "AssumeRoleWithWebIdentity")
        return self._answer(len(self.calls))

    async def assume_role(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("AssumeRole", kwargs))
        return self._answer(len(self.calls))


@asynccontextmanager
async def fetcher(role: aws_identity.AssumedRole, sts: FakeSts) -> AsyncIterator[aws._RoleFetcher]:
    """The role's fetcher, its STS client being ``sts``."""
    clients = Clients(timeout=1)

    async def open_sts() -> FakeSts:
        return sts

    async def close(_: FakeSts) -> None:
        return None

    await clients.shared(("aws", "sts", aws_identity.AwsIdentity("eu-west-1")), open_sts, close)
    try:
        yield aws._RoleFetcher(clients, "eu-west-1", role)
    finally:
        await clients.aclose()


async def fetches(
    role: aws_identity.AssumedRole, sts: FakeSts, times: int = 2
) -> list[dict[str, str]]:
    async with fetcher(role, sts) as fetch:
        return [await fetch.fetch() for _ in range(times)]


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "token"
    path.write_text("projected-token\n")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(path))
    return path


async def test_assume_role_with_its_external_id_and_session_name() -> None:
    sts = FakeSts(web_identity_fails=False)
    got = await fetches(aws_identity.AssumedRole(ROLE, "ext-1"), sts, times=1)
    assert sts.calls == [
        (
            "AssumeRole",
            {
                "RoleArn": ROLE,
                "RoleSessionName": aws.ROLE_SESSION_NAME,
                "DurationSeconds": 3600,
                "ExternalId": "ext-1",
            },
        )
    ]
    assert got == [
        {
            "access_key": "ASIA1",
            "secret_key": "s",
            "token": "t",
            "expiry_time": (EXPIRY + timedelta(seconds=1)).isoformat(),
        }
    ]


async def test_without_web_identity_first_the_token_file_is_not_used(token_file: Path) -> None:
    sts = FakeSts(web_identity_fails=False)
    await fetches(aws_identity.AssumedRole(ROLE), sts)
    assert [name for name, _ in sts.calls] == ["AssumeRole", "AssumeRole"]


async def test_web_identity_first_uses_the_token_for_the_role_itself(token_file: Path) -> None:
    sts = FakeSts(web_identity_fails=False)
    await fetches(aws_identity.AssumedRole(ROLE, "ext", web_identity_first=True), sts)
    assert [name for name, _ in sts.calls] == ["AssumeRoleWithWebIdentity"] * 2
    assert sts.calls[0][1]["WebIdentityToken"] == "projected-token"


async def test_a_refused_token_falls_back_to_assume_role_once_and_for_all(
    token_file: Path,
) -> None:
    sts = FakeSts(web_identity_fails=True)
    await fetches(aws_identity.AssumedRole(ROLE, web_identity_first=True), sts, times=3)
    assert [name for name, _ in sts.calls] == [
        "AssumeRoleWithWebIdentity",
        "AssumeRole",
        "AssumeRole",
        "AssumeRole",
    ]


async def test_a_token_that_worked_and_then_fails_is_an_error_not_a_fallback(
    token_file: Path,
) -> None:
    sts = FakeSts(web_identity_fails=False)
    async with fetcher(aws_identity.AssumedRole(ROLE, web_identity_first=True), sts) as fetch:
        await fetch.fetch()
        sts.web_identity_fails = True
        with pytest.raises(Exception, match=f"assuming role {ROLE} with STS: AccessDenied"):
            await fetch.fetch()
    assert "AssumeRole" not in [name for name, _ in sts.calls]
