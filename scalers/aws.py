"""What every AWS trigger and source shares: identities, one client per identity, assumed
roles, botocore's errors, and :func:`call`, one operation with all of them applied. Which
identity a trigger has is :mod:`scalers.aws_auth`'s.

A role is assumed by the adapter's own identity (botocore's default chain, which already does
IRSA from ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE``); with ``web_identity_first``
(KEDA's ``podIdentity: aws``) the adapter's web identity token assumes the role itself first.
Assumed credentials are shared per (region, role, external ID) and refreshed by botocore
before they expire (from 15 minutes before); a failed early refresh keeps the current ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from aiobotocore.credentials import AioCredentialResolver, AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore import exceptions as boto
from botocore.config import Config
from botocore.credentials import CredentialProvider, ReadOnlyCredentials

from scalers.aws_identity import AssumedRole, AwsIdentity
from scalers.clients import Clients
from scalers.errors import (
    ScalerError,
    SourceResponseError,
    SourceTimeout,
    SourceUnreachable,
    quote,
)

log = logging.getLogger(__name__)

_AUTH_FAILURES = frozenset({401, 403})


def client_config(clients: Clients) -> Config:
    """One attempt bounded by the clients' timeout: the poller asks again at the next
    interval, and retries would multiply the time a dead endpoint holds a poll."""
    return Config(
        connect_timeout=clients.timeout,
        read_timeout=clients.timeout,
        retries={"total_max_attempts": 1},
    )


async def session(clients: Clients) -> AioSession:
    """The process's session: botocore reads its service models once per process (about
    50 ms, on the event loop: botocore has no async loader); role sessions share them."""
    return await clients.shared(("aws", "session"), _open_session, _close_session)


async def client(clients: Clients, service: str, identity: AwsIdentity) -> Any:
    """The ``service`` client of ``identity``, opened once and shared by every trigger."""

    async def open_client() -> Any:
        creds = identity.credentials
        if identity.role is not None:
            opener = await role_session(clients, identity.region, identity.role)
        else:
            opener = await session(clients)
        context = opener.create_client(
            service,
            region_name=identity.region or None,
            endpoint_url=identity.endpoint,
            aws_access_key_id=creds.access_key_id if creds else None,
            aws_secret_access_key=creds.secret_access_key if creds else None,
            aws_session_token=creds.session_token if creds else None,
            config=client_config(clients),
        )
        opened = await context.__aenter__()
        log.info(
            "opened %s client",
            service,
            extra={"endpoint": identity.describe(), "identity": identity.kind},
        )
        return opened

    return await clients.shared(("aws", service, identity), open_client, _close_client)


async def role_session(clients: Clients, region: str, role: AssumedRole) -> AioSession:
    """A session whose credentials are ``role`` assumed by the adapter's own identity,
    shared by every client (SQS, Secrets Manager, SigV4) of that role in that region."""

    async def open_role_session() -> AioSession:
        base = await session(clients)
        assumed = AioDeferredRefreshableCredentials(
            refresh_using=_RoleFetcher(clients, region, role).fetch, method="assume-role"
        )
        opened = AioSession()
        opened.register_component("data_loader", base.get_component("data_loader"))
        opened.register_component("credential_provider", AioCredentialResolver([_Fixed(assumed)]))
        return opened

    return await clients.shared(("aws", "role", region, role), open_role_session, _close_session)


async def frozen_credentials(clients: Clients, identity: AwsIdentity) -> ReadOnlyCredentials:
    """The keys ``identity`` signs with now (refreshed first if they are about to expire):
    for a signer other than botocore's clients (Prometheus' SigV4)."""
    if identity.credentials is not None:
        c = identity.credentials
        return ReadOnlyCredentials(c.access_key_id, c.secret_access_key, c.session_token)
    if identity.role is not None:
        opened = await role_session(clients, identity.region, identity.role)
    else:
        opened = await session(clients)
    found = await opened.get_credentials()
    if found is None:
        raise boto.NoCredentialsError()
    return cast(ReadOnlyCredentials, await found.get_frozen_credentials())


class _Fixed(CredentialProvider):  # type: ignore[misc]
    """Hands a session the one credentials object it was made for."""

    METHOD = "assume-role"

    def __init__(self, credentials: AioDeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> AioDeferredRefreshableCredentials:
        return self._credentials


ROLE_SESSION_NAME = "metrics-adapter"


class _RoleFetcher:
    """One STS call that (re)assumes a role; botocore calls it before the keys expire."""

    def __init__(self, clients: Clients, region: str, role: AssumedRole) -> None:
        self._clients = clients
        self._region = region
        self._role = role
        self._web_identity: bool | None = None if role.web_identity_first else False
        """Whether the adapter's web identity token assumes the role: tried once, as KEDA."""

    async def fetch(self) -> dict[str, str]:
        what = f"assuming role {self._role.role_arn} with STS"
        sts_identity = AwsIdentity(self._region)
        try:
            sts = await client(self._clients, "sts", sts_identity)
            answer = await self._assume(sts)
        except Exception as exc:
            raise await source_error(self._clients, "sts", sts_identity, exc, what) from exc
        keys = answer["Credentials"]
        expiry = keys["Expiration"]
        log.info(
            "assumed role %s",
            self._role.role_arn,
            extra={"expires": expiry.isoformat(), "region": self._region},
        )
        return {
            "access_key": keys["AccessKeyId"],
            "secret_key": keys["SecretAccessKey"],
            "token": keys["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    async def _assume(self, sts: Any) -> Any:
        role = self._role
        token_file = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        if token_file and self._web_identity is not False:
            try:
                token = await asyncio.to_thread(Path(token_file).read_text)
                answer = await sts.assume_role_with_web_identity(
                    RoleArn=role.role_arn,
                    RoleSessionName=ROLE_SESSION_NAME,
                    WebIdentityToken=token.strip(),
                    DurationSeconds=role.duration,
                )
            except (boto.ClientError, OSError) as exc:
                if self._web_identity:
                    raise  # it worked before: this is a failure, not a fallback
                log.info(
                    "the web identity token cannot assume %s (%s): AssumeRole instead",
                    role.role_arn,
                    describe_client_error(exc) if isinstance(exc, boto.ClientError) else exc,
                )
                self._web_identity = False
            else:
                self._web_identity = True
                return answer
        extra = {"ExternalId": role.external_id} if role.external_id else {}
        return await sts.assume_role(
            RoleArn=role.role_arn,
            RoleSessionName=ROLE_SESSION_NAME,
            DurationSeconds=role.duration,
            **extra,
        )


async def _open_session() -> AioSession:
    return AioSession()


async def _close_session(opened: AioSession) -> None:
    """A session holds no connections: its clients are closed one by one."""


async def _close_client(opened: Any) -> None:
    await opened.__aexit__(None, None, None)


async def source_error(
    clients: Clients, service: str, identity: AwsIdentity, exc: Exception, what: str
) -> ScalerError:
    """``exc`` from a call of ``identity``'s client as a ScalerError; a connection-level
    failure also discards the client, so that the next poll opens a fresh one."""
    if isinstance(exc, ScalerError):  # assuming the role failed: already described
        return type(exc)(f"{what}: {exc}")
    if isinstance(exc, boto.ConnectionError | boto.ConnectionClosedError):
        await clients.discard(("aws", service, identity))
    if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError):
        return SourceTimeout(f"{what}: no answer within {clients.timeout:g}s")
    if isinstance(exc, boto.ClientError):
        return SourceResponseError(f"{what}: {describe_client_error(exc)}")
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return SourceUnreachable(
            f"{what}: the adapter's own AWS identity is used, and the adapter has no AWS "
            f"credentials ({exc})"
        )
    if isinstance(exc, boto.ParamValidationError):  # refused before sending, as AWS would
        return SourceResponseError(f"{what}: {' '.join(str(exc).split())}")
    if isinstance(exc, ValueError) and "endpoint" in str(exc).lower():
        return SourceUnreachable(f"{what}: {exc}")  # botocore refuses the URL on first use
    if isinstance(exc, boto.BotoCoreError):
        return SourceUnreachable(f"{what}: {exc}")
    # Anything else escaped botocore's parser: the endpoint answered something unreadable.
    return SourceResponseError(f"{what}: unreadable answer ({type(exc).__name__}: {exc})")


async def call(
    clients: Clients,
    service: str,
    identity: AwsIdentity,
    operation: str,
    what: str,
    params: Mapping[str, Any],
    missing: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One ``operation`` of ``identity``'s ``service`` client, its failures as ScalerErrors
    that start with ``what``. ``missing`` maps AWS error codes that mean "no such queue,
    stream or table" to a message a user can act on."""
    endpoint = identity.endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SourceUnreachable(
            f"{what}: awsEndpoint {quote(endpoint)} must start with http:// or https://"
        )
    try:
        opened = await client(clients, service, identity)
        answer = await getattr(opened, operation)(**params)
    except Exception as exc:
        code = error_code(exc)
        if missing and code in missing:
            raise SourceResponseError(f"{what}: {missing[code]}") from exc
        raise await source_error(clients, service, identity, exc, what) from exc
    if not isinstance(answer, dict):  # pragma: no cover - botocore always parses to a dict
        raise SourceResponseError(f"{what}: unreadable answer")
    return answer


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError``; ``""`` for any other failure."""
    if not isinstance(exc, boto.ClientError):
        return ""
    error = exc.response.get("Error") or {}
    return str(error.get("Code") or "")


def describe_client_error(exc: boto.ClientError) -> str:
    """``AccessDenied: User ... is not authorized`` from an AWS error, without credentials
    (AWS errors never echo the secret) and cut to a readable length."""
    error = exc.response.get("Error") or {}
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = str(error.get("Code") or f"HTTP {status}")
    if code.isdigit():
        code = f"HTTP {code}"
    message = " ".join(str(error.get("Message") or "").split())
    text = f"{code}: {message[:300]}" if message else code
    if status in _AUTH_FAILURES:
        text += " (check the AWS credentials of the trigger's authentication)"
    return text
