"""Which AWS identity a trigger has: KEDA's ``GetAwsAuthorization``.

- ``podIdentity.provider: aws``: the adapter's own identity, assuming the ``roleArn`` (with its
  ``externalID``) or the ``awsRoleArn`` the resolver read from the workload's ServiceAccount;
  the adapter's web identity token, when it has one, assumes the role itself first, as KEDA;
- else ``identityOwner: pod`` (default): ``awsRoleArn`` in the authentication (``aws-eks``
  puts the ServiceAccount's role there) is assumed with the adapter's own identity; else
  static keys from the authentication (``awsAccessKeyID``, ``awsSecretAccessKey``,
  ``awsSessionToken``), else ``awsAccessKeyID`` or ``awsAccessKeyIDFromEnv`` and
  ``awsSecretAccessKeyFromEnv`` in the metadata;
- any other ``identityOwner`` (``operator``; KEDA has no enum): the adapter's own identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from scalers.aws_identity import AssumedRole, AwsCredentials, AwsIdentity
from scalers.base import Scaler, ScalerKind
from scalers.errors import Problems
from scalers.identity import PodIdentity
from scalers.params import Source, TriggerInputs, TriggerMetadata, param, parse_params


@dataclass(frozen=True)
class Authorization:
    """What KEDA's ``GetAwsAuthorization`` settles: static keys, a role, or neither (the
    adapter's own identity)."""

    credentials: AwsCredentials | None = None
    role: AssumedRole | None = None

    def identity(self, region: str, endpoint: str | None = None) -> AwsIdentity:
        return AwsIdentity(region, endpoint or None, self.credentials, self.role)


@dataclass(frozen=True)
class AwsAuth(TriggerMetadata):
    """The authentication parameters of an AWS trigger; subclass it with the trigger's own.

    The secret key and the session token are ``secret`` parameters: never in a ``repr``.
    """

    identity_owner: str = param(
        "identityOwner",
        default="pod",
        doc="operator (or anything but pod): the adapter's own AWS identity, not the trigger's",
    )
    access_key_id: str | None = param(
        "awsAccessKeyID",
        order=(Source.AUTH, Source.TRIGGER, Source.ENV),
        optional=True,
        doc="required unless identityOwner is operator, a role or a podIdentity is given",
    )
    access_key_id_alias: str | None = param(
        "awsAccessKeyId", order=(Source.AUTH,), optional=True, doc="alias of awsAccessKeyID"
    )
    secret_access_key: str | None = param(
        "awsSecretAccessKey",
        order=(Source.AUTH, Source.ENV),
        optional=True,
        doc="required with awsAccessKeyID; never read from plain metadata",
        secret=True,
    )
    session_token: str | None = param(
        "awsSessionToken", order=(Source.AUTH,), optional=True, secret=True
    )
    role_arn: str | None = param(
        "awsRoleArn",
        order=(Source.AUTH,),
        optional=True,
        doc="a role the adapter's own identity assumes (STS AssumeRole)",
    )
    pod_identity: PodIdentity | None = field(default=None, kw_only=True)
    """The authentication's ``podIdentity``, set by :class:`AwsKind` after parsing."""

    def authorization(self) -> Authorization | None:
        """KEDA's ``GetAwsAuthorization``; ``None`` where it fails (no usable keys), which
        :meth:`auth_problems` explains."""
        pod = self.pod_identity
        if pod is not None and pod.provider == "aws":
            if pod.role_arn:
                role = AssumedRole(pod.role_arn, pod.external_id or None, web_identity_first=True)
                return Authorization(role=role)
            if self.role_arn:
                return Authorization(role=AssumedRole(self.role_arn, web_identity_first=True))
            return Authorization()
        if self.identity_owner not in ("pod", ""):
            return Authorization()
        if self.role_arn:
            return Authorization(role=AssumedRole(self.role_arn))
        key = self.access_key_id or self.access_key_id_alias
        if not key or not self.secret_access_key:
            return None
        keys = AwsCredentials(key, self.secret_access_key, self.session_token or None)
        return Authorization(keys)

    def built_identity(self, region: str, endpoint: str | None = None) -> AwsIdentity:
        """The identity a built trigger polls with. :class:`AwsKind` refuses a trigger
        without one before it is built, so its absence here is a bug, not a user's error."""
        authorization = self.authorization()
        if authorization is None:
            raise ValueError(f"{type(self).__qualname__} built without an AWS identity")
        return authorization.identity(region, endpoint)

    @property
    def credentials(self) -> AwsCredentials | None:
        found = self.authorization()
        return found.credentials if found else None

    def identity_problems(self) -> Iterator[tuple[str, str]]:
        """KEDA's errors for ``identityOwner: pod`` without a role or keys, all at once."""
        if self.authorization() is not None:
            return
        where = "in the trigger's authentication or with {}FromEnv"
        if not (self.access_key_id or self.access_key_id_alias):
            yield "awsAccessKeyID", "is required " + where.format("awsAccessKeyID") + _OTHERWISE
        if not self.secret_access_key:
            yield (
                "awsSecretAccessKey",
                "is required " + where.format("awsSecretAccessKey") + _OTHERWISE,
            )


_OTHERWISE = (
    " (or give awsRoleArn or a podIdentity, or set identityOwner: operator to use the "
    "adapter's own AWS identity)"
)

IM = TypeVar("IM", bound=TriggerMetadata)


@dataclass(frozen=True, slots=True)
class AwsKind(ScalerKind[IM]):
    """A trigger type whose metadata reads the authentication's ``podIdentity`` (a field
    ``pod_identity``), which KEDA hands scalers beside the authParams; its rules about the
    identity (``identity_problems``) run once the identity is known, after the others."""

    identity_metadata: type[AwsAuth] | None = None
    """The identity's parameters alone, parsed when the rest has problems: so that the
    identity's problems are reported with them, every problem at once."""

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        parsed = parse_params(self.metadata, inputs, problems)
        subject: Any = parsed
        if subject is None and self.identity_metadata is not None:
            subject = parse_params(self.identity_metadata, inputs, Problems())
        if subject is None:
            return None
        subject = dataclasses.replace(subject, pod_identity=inputs.pod_identity)
        before = len(problems)
        for name, message in subject.identity_problems():
            problems.add(f"{inputs.path}.{name}", message)
        if parsed is None or len(problems) > before:
            return None
        return self.build(cast(IM, subject))
