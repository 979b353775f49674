"""Who an AWS client is and where it talks: plain values, without botocore, so that a
TriggerAuthentication naming AWS can be parsed and compared without importing the SDK
(:mod:`scalers.aws` imports it when a client is first made)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """Static keys. They are compared and hashed (they key the shared client), never shown."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return "AwsCredentials(<hidden>)"


@dataclass(frozen=True)
class AssumedRole:
    """A role the adapter's own identity assumes through STS."""

    role_arn: str
    external_id: str | None = None
    web_identity_first: bool = False
    """KEDA's ``podIdentity: aws``: with ``AWS_WEB_IDENTITY_TOKEN_FILE`` set, the token
    assumes the role itself (AssumeRoleWithWebIdentity) before AssumeRole is tried."""
    duration: int = 3600
    """Seconds the assumed credentials live (STS's DurationSeconds)."""


@dataclass(frozen=True)
class AwsIdentity:
    """Where, and as whom, a client talks: what makes two AWS clients different."""

    region: str
    endpoint: str | None = None
    """``None``: AWS's own endpoint for the region."""
    credentials: AwsCredentials | None = None
    """``None``: the adapter's own identity, or the :attr:`role` it assumes."""
    role: AssumedRole | None = None

    def describe(self) -> str:
        where = f"{self.endpoint or 'AWS'} ({self.region})"
        return f"{where} as {self.role.role_arn}" if self.role else where

    @property
    def kind(self) -> str:
        """How it authenticates, for logs: never a secret."""
        if self.role is not None:
            return "assumed role"
        return "static keys" if self.credentials else "adapter's own"
