"""What every AWS trigger shares: its credentials, one client per identity, botocore's errors.

Credentials follow KEDA's ``GetAwsAuthorization`` for ``identityOwner``:

- ``pod`` (default): static keys from the trigger's authentication (``awsAccessKeyID``,
  ``awsSecretAccessKey``, ``awsSessionToken``), else ``awsAccessKeyID`` or
  ``awsAccessKeyIDFromEnv`` and ``awsSecretAccessKeyFromEnv`` in the metadata;
- ``operator``: no keys; the adapter's own AWS identity (botocore's default chain).

Role assumption (``awsRoleArn``) and ``podIdentity`` are not implemented.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aioboto3
from botocore import exceptions as boto
from botocore.config import Config

from scalers.clients import Clients
from scalers.errors import ScalerError, SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.params import Source, TriggerMetadata, param

log = logging.getLogger(__name__)

_AUTH_FAILURES = frozenset({401, 403})


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """Static keys. They are compared and hashed (they key the shared client), never shown."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return "AwsCredentials(<hidden>)"


@dataclass(frozen=True)
class AwsIdentity:
    """Where, and as whom, a client talks: what makes two AWS clients different."""

    region: str
    endpoint: str | None = None
    """``None``: AWS's own endpoint for the region."""
    credentials: AwsCredentials | None = None
    """``None``: the adapter's own identity (``identityOwner: operator``)."""

    def describe(self) -> str:
        return f"{self.endpoint or 'AWS'} ({self.region})"


@dataclass(frozen=True)
class AwsAuth(TriggerMetadata):
    """The authentication parameters of an AWS trigger; subclass it with the trigger's own.

    The secret key and the session token are ``secret`` parameters: never in a ``repr``.
    """

    identity_owner: str = param(
        "identityOwner",
        default="pod",
        enum=("pod", "operator"),
        doc="operator: the adapter's own AWS identity instead of the trigger's keys",
    )
    access_key_id: str | None = param(
        "awsAccessKeyID",
        order=(Source.AUTH, Source.TRIGGER, Source.ENV),
        optional=True,
        doc="required unless identityOwner is operator",
    )
    access_key_id_alias: str | None = param(
        "awsAccessKeyId", order=(Source.AUTH,), optional=True, doc="alias of awsAccessKeyID"
    )
    secret_access_key: str | None = param(
        "awsSecretAccessKey",
        order=(Source.AUTH, Source.ENV),
        optional=True,
        doc="required unless identityOwner is operator; never read from plain metadata",
        secret=True,
    )
    session_token: str | None = param(
        "awsSessionToken", order=(Source.AUTH,), optional=True, secret=True
    )
    role_arn: str | None = param(
        "awsRoleArn", order=(Source.AUTH,), optional=True, doc="not supported (no STS)"
    )

    @property
    def credentials(self) -> AwsCredentials | None:
        key = self.access_key_id or self.access_key_id_alias
        if self.identity_owner == "operator" or not key or not self.secret_access_key:
            return None
        return AwsCredentials(key, self.secret_access_key, self.session_token or None)

    def auth_problems(self) -> Iterator[tuple[str, str]]:
        """KEDA's errors for ``identityOwner: pod``, all at once rather than the first."""
        if self.identity_owner == "operator":
            return
        if self.role_arn:
            yield (
                "awsRoleArn",
                "role assumption is not supported by metrics-adapter: give static keys "
                "(awsAccessKeyID, awsSecretAccessKey) or set identityOwner: operator",
            )
            return
        where = "in the trigger's authentication or with {}FromEnv"
        if not (self.access_key_id or self.access_key_id_alias):
            yield "awsAccessKeyID", "is required " + where.format("awsAccessKeyID") + _OR_OPERATOR
        if not self.secret_access_key:
            yield (
                "awsSecretAccessKey",
                "is required " + where.format("awsSecretAccessKey") + _OR_OPERATOR,
            )


_OR_OPERATOR = " (or set identityOwner: operator to use the adapter's own AWS identity)"


async def client(clients: Clients, service: str, identity: AwsIdentity) -> Any:
    """The ``service`` client of ``identity``, opened once and shared by every trigger.

    Clients come from one aioboto3 session, which reads botocore's service models once per
    process (about 50 ms, on the event loop: botocore has no async loader).
    A call makes one attempt bounded by the clients' timeout: the poller asks again at the
    next interval, and retries would multiply the time a dead endpoint holds a poll.
    """
    session = await clients.shared(("aws", "session"), _open_session, _close_session)

    async def open_client() -> Any:
        creds = identity.credentials
        context = session.client(
            service,
            region_name=identity.region,
            endpoint_url=identity.endpoint,
            aws_access_key_id=creds.access_key_id if creds else None,
            aws_secret_access_key=creds.secret_access_key if creds else None,
            aws_session_token=creds.session_token if creds else None,
            config=Config(
                connect_timeout=clients.timeout,
                read_timeout=clients.timeout,
                retries={"total_max_attempts": 1},
            ),
        )
        opened = await context.__aenter__()
        log.info(
            "opened %s client",
            service,
            extra={
                "endpoint": identity.describe(),
                "identity": "static keys" if creds else "adapter's own",
            },
        )
        return opened

    return await clients.shared(("aws", service, identity), open_client, _close_client)


async def _open_session() -> Any:
    return aioboto3.Session()


async def _close_session(session: Any) -> None:
    """A session holds no connections: its clients are closed one by one."""


async def _close_client(opened: Any) -> None:
    await opened.__aexit__(None, None, None)


async def source_error(
    clients: Clients, service: str, identity: AwsIdentity, exc: Exception, what: str
) -> ScalerError:
    """``exc`` from a call of ``identity``'s client as a ScalerError; a connection-level
    failure also discards the client, so that the next poll opens a fresh one."""
    if isinstance(exc, boto.ConnectionError | boto.ConnectionClosedError):
        await clients.discard(("aws", service, identity))
    if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError):
        return SourceTimeout(f"{what}: no answer within {clients.timeout:g}s")
    if isinstance(exc, boto.ClientError):
        return SourceResponseError(f"{what}: {describe_client_error(exc)}")
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return SourceUnreachable(
            f"{what}: identityOwner operator, but the adapter has no AWS credentials ({exc})"
        )
    if isinstance(exc, boto.BotoCoreError):
        return SourceUnreachable(f"{what}: {exc}")
    # Anything else escaped botocore's parser: the endpoint answered something unreadable.
    return SourceResponseError(f"{what}: unreadable answer ({type(exc).__name__}: {exc})")


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
