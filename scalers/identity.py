"""The identity a trigger's authentication gives it, besides parameters: KEDA's ``podIdentity``.

KEDA hands a scaler its ``authParams`` and, apart from them, the TriggerAuthentication's
``podIdentity``; a scaler that can use a cloud identity (the AWS ones) reads it from
:attr:`scalers.params.TriggerInputs.pod_identity`. What the resolver derives from it
(``awsRoleArn`` from the workload's ServiceAccount) arrives as authParams, as in KEDA.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVIDERS = ("none", "azure-workload", "gcp", "aws", "aws-eks")
"""KEDA v2.20's ``podIdentity.provider`` enum."""


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """``spec.podIdentity`` of a TriggerAuthentication, for a provider other than ``none``."""

    provider: str
    role_arn: str | None = None
    """``roleArn``: the role to assume with the adapter's own AWS identity (provider ``aws``)."""
    external_id: str | None = None
    """``externalID``: passed to AssumeRole with :attr:`role_arn`."""
    identity_owner: str = "keda"
    """``identityOwner``: ``keda`` (the adapter's identity) or ``workload`` (the role of the
    scale target's ServiceAccount)."""
    identity_id: str | None = None
    identity_tenant_id: str | None = None
    identity_authority_host: str | None = None

    @property
    def workload_owned(self) -> bool:
        return self.identity_owner == "workload"
