"""KEDA's ``awsSecretManager`` source: parameters from AWS Secrets Manager secrets.

As KEDA's ``AwsSecretManagerHandler``: the identity is static keys read from Secrets
(``credentials.accessKey`` and ``accessSecretKey``, both required without a pod identity), or
``podIdentity.provider: aws`` (the adapter's own identity, assuming ``roleArn`` when given, the
same code as the AWS triggers'); ``region`` as given (empty: the adapter's ``AWS_REGION``).
Each secret is one ``GetSecretValue`` (``versionId``, ``versionStage``); ``secretKey`` picks a
string value of a JSON object, the whole ``SecretString`` otherwise.

Differences, each towards working where KEDA would not: ``credentials.accessToken`` is sent as
the session token (KEDA reads and drops it), and ``podIdentity.externalID`` is passed to
AssumeRole (KEDA's handler drops it). Parameters that name one secret version share one read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metrics_adapter.binding.auth_sources.base import ParameterRead, ReadContext, SourceValues
from metrics_adapter.errors import AuthSourceError
from scalers import aws_identity
from scalers.errors import ScalerError, quote

if TYPE_CHECKING:
    from metrics_adapter.binding.sources import ObjectSource
    from metrics_adapter.model.authentication import AwsSecretManager, TriggerAuthentication

WHOLE = ""
"""The key of a secret's whole ``SecretString`` among a read's values."""

_REQUIRED = "credentials.accessKey and credentials.accessSecretKey are required without podIdentity"


@dataclass(frozen=True, slots=True)
class SecretValueRead:
    """One ``GetSecretValue`` of one secret version, as one identity."""

    identity: aws_identity.AwsIdentity = field(repr=False)
    name: str
    version_id: str = ""
    version_stage: str = ""

    def describe(self) -> str:
        version = f" version {self.version_id}" if self.version_id else ""
        stage = f" stage {self.version_stage}" if self.version_stage else ""
        where = self.identity.region or "the adapter's AWS_REGION"
        role = f" as {self.identity.role.role_arn}" if self.identity.role else ""
        return f"awsSecretManager secret {quote(self.name)}{version}{stage} in {where}{role}"

    async def read(self, context: ReadContext) -> SourceValues:
        # The AWS SDK (botocore, ~40 MiB) is imported by the first read, not at start: most
        # installs never name AWS (scalers/registry.py loads trigger kinds the same way).
        from scalers import aws

        what = self.describe()
        asked = {"SecretId": self.name}
        if self.version_id:
            asked["VersionId"] = self.version_id
        if self.version_stage:
            asked["VersionStage"] = self.version_stage
        clients = context.clients
        try:
            manager = await aws.client(clients, "secretsmanager", self.identity)
            answer = await manager.get_secret_value(**asked)
        except Exception as exc:
            failure: ScalerError = await aws.source_error(
                clients, "secretsmanager", self.identity, exc, what
            )
            raise AuthSourceError(str(failure)) from exc
        text = answer.get("SecretString") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise AuthSourceError(f"{what}: holds binary data, not a SecretString")
        return SourceValues({WHOLE: text, **_string_members(text)})


def _string_members(text: str) -> dict[str, str]:
    """The string members of a JSON object secret, which ``secretKey`` names (KEDA refuses
    a member that is not a string, as it is absent here)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {k: v for k, v in parsed.items() if isinstance(v, str) and k != WHOLE}


@dataclass(frozen=True, slots=True)
class RefusedRead:
    """An awsSecretManager that cannot be read as written: its read fails, naming why."""

    reason: str

    def describe(self) -> str:
        return "awsSecretManager"

    async def read(self, context: ReadContext) -> SourceValues:
        raise AuthSourceError(f"awsSecretManager: {self.reason}")


def parameter_reads(
    auth: TriggerAuthentication, namespace: str, objects: ObjectSource
) -> list[ParameterRead]:
    source = auth.aws_secret_manager
    if source is None:
        return []
    identity = _identity(source, namespace, objects)
    reads: list[ParameterRead] = []
    for secret in source.secrets:
        if isinstance(identity, str):
            reads.append(ParameterRead(secret.parameter, RefusedRead(identity), WHOLE))
            continue
        read = SecretValueRead(identity, secret.name, secret.version_id, secret.version_stage)
        reads.append(ParameterRead(secret.parameter, read, secret.secret_key or WHOLE))
    return reads


def _identity(
    source: AwsSecretManager, namespace: str, objects: ObjectSource
) -> aws_identity.AwsIdentity | str:
    """The identity KEDA's handler would use, or why there is none."""
    pod = source.pod_identity
    if pod is not None and pod.provider not in ("", "none"):
        if pod.provider != "aws":
            return f"podIdentity provider {pod.provider} is not supported (only aws)"
        if pod.workload_owned:
            return (
                "podIdentity identityOwner workload (the workload's ServiceAccount role) "
                "is not supported here: give roleArn"
            )
        if not pod.role_arn:
            return aws_identity.AwsIdentity(source.region)
        role = aws_identity.AssumedRole(
            pod.role_arn, pod.external_id or None, web_identity_first=True
        )
        return aws_identity.AwsIdentity(source.region, role=role)
    given = source.credentials
    if given is None:
        return _REQUIRED
    refs = (given.access_key, given.access_secret_key, given.access_token)
    values = [objects.secret_value(namespace, r.name, r.key) if r else None for r in refs]
    key, secret, token = values
    if not key or not secret:
        missing = [
            f"Secret {namespace}/{r.name} key {quote(r.key)}"
            for r, v in zip(refs[:2], values[:2], strict=True)
            if not v
        ]
        return f"{_REQUIRED}: {' and '.join(missing)} not found or empty"
    return aws_identity.AwsIdentity(
        source.region, credentials=aws_identity.AwsCredentials(key, secret, token or None)
    )
