"""KEDA's rules for TriggerAuthentication and ClusterTriggerAuthentication (reference
keda-scaledjob-webhook-modifiers.md §2.4), with KEDA's messages, and warnings for the
authentication sources KEDA has and this adapter does not read.

The rules read the raw spec, as KEDA's webhook reads fields the CRD's schema already let
through; the parser (:mod:`metrics_adapter.model.authentication`) does not repeat them.
Nothing here reads a source: a trigger using an unsupported one gets Ready=False from binding,
naming it, and this warning says so when the authentication is applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from metrics_adapter.admission.checks import go_quote
from metrics_adapter.admission.findings import OAUTH2, POD_IDENTITY, Finding
from metrics_adapter.binding.authentication import UNSUPPORTED_PROVIDERS

UNSUPPORTED = ("azureKeyVault", "gcpSecretManager")
"""Sources this adapter never reads."""
_URL = re.compile(r"(?i)https?://[^/?#\s]+")


def trigger_authentication_rules(spec: Mapping[str, Any]) -> list[Finding]:
    """§2.4, in KEDA's order: a podIdentity provider other than azure-workload and aws ends
    the validation (its oauth2 block is then not checked either)."""
    findings = []
    identity = spec.get("podIdentity")
    if isinstance(identity, Mapping):
        provider = identity.get("provider")
        if provider == "azure-workload":
            findings += _azure_workload(identity)
        elif provider == "aws":
            findings += _aws(identity)
        else:
            return []
    oauth2 = spec.get("oauth2")
    if isinstance(oauth2, Mapping):
        findings += _oauth2(oauth2)
    return findings


def _identity(key: str, message: str) -> Finding:
    return Finding(POD_IDENTITY, "pod-identity", f"podIdentity.{key}", message)


def _azure_workload(identity: Mapping[str, Any]) -> list[Finding]:
    if identity.get("identityId") == "":
        return [
            _identity(
                "identityId",
                "identityId of PodIdentity should not be empty. If it's set, identityId has to "
                'be different than ""',
            )
        ]
    host, tenant = identity.get("identityAuthorityHost"), identity.get("identityTenantId")
    if isinstance(host, str) and host and not tenant:
        return [
            _identity(
                "identityTenantId",
                "identityTenantID of PodIdentity should not be nil or empty when "
                "identityAuthorityHost of PodIdentity is set",
            )
        ]
    if not (isinstance(host, str) and host) and tenant == "":
        return [
            _identity(
                "identityTenantId",
                "identityTenantId of PodIdentity should not be empty. If it's set, "
                'identityTenantId has to be different than ""',
            )
        ]
    return []


def _aws(identity: Mapping[str, Any]) -> list[Finding]:
    role, external = identity.get("roleArn"), identity.get("externalID")
    if isinstance(role, str) and role and identity.get("identityOwner") == "workload":
        return [
            _identity("roleArn", "roleArn of PodIdentity can't be set if KEDA isn't identityOwner")
        ]
    if isinstance(external, str) and external and not role:
        return [_identity("externalID", "externalID of PodIdentity requires roleArn to be set")]
    return []


def _oauth2(oauth2: Mapping[str, Any]) -> list[Finding]:
    def finding(key: str, message: str) -> Finding:
        return Finding(OAUTH2, "oauth2", f"oauth2.{key}", message)

    kind = oauth2.get("type")
    if kind != "clientCredentials":
        shown = kind if isinstance(kind, str) else ""
        return [finding("type", f"oauth2.type must be 'clientCredentials', got '{shown[:253]}'")]
    if not oauth2.get("clientId"):
        return [finding("clientId", "oauth2.clientId is required when oauth2 is configured")]
    url = oauth2.get("tokenUrl")
    if not url:
        return [finding("tokenUrl", "oauth2.tokenUrl is required when oauth2 is configured")]
    if not isinstance(url, str) or not _URL.match(url):
        return [finding("tokenUrl", "oauth2.tokenUrl must be a valid http or https URL")]
    return []


def trigger_authentication_warnings(spec: Mapping[str, Any]) -> list[str]:
    """The authentication sources KEDA has and this adapter does not read."""
    warnings = [
        f"{key}: not supported by metrics-adapter: triggers using this authentication are "
        "not ready (Ready=False names it)"
        for key in UNSUPPORTED
        if spec.get(key) is not None
    ]
    identity = spec.get("podIdentity")
    provider = identity.get("provider") if isinstance(identity, Mapping) else None
    if isinstance(provider, str) and provider in UNSUPPORTED_PROVIDERS:
        warnings.append(
            f"podIdentity.provider: {go_quote(provider)} is not supported by metrics-adapter: "
            "triggers using this authentication are not ready (Ready=False names it)"
        )
    return warnings
