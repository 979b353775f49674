"""The TriggerAuthentication model: every source of KEDA's spec, and the CRD's checks."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.model.authentication import (
    AwsSecretManagerSecret,
    BoundServiceAccountToken,
    SecretKeyRef,
    VaultPkiData,
    parse_trigger_authentication,
)
from scalers.errors import ConfigError
from scalers.identity import PodIdentity


def auth(spec: dict[str, Any], kind: str = "TriggerAuthentication") -> Any:
    return parse_trigger_authentication(
        {"kind": kind, "metadata": {"name": "a", "namespace": "apps"}, "spec": spec}
    )


def problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        auth(spec)
    return [str(p) for p in info.value.problems]


def test_every_source_is_read() -> None:
    a = auth(
        {
            "podIdentity": {"provider": "aws", "roleArn": "arn:r", "externalID": "x"},
            "filePath": "creds/app.json",
            "boundServiceAccountToken": [{"parameter": "bearerToken", "serviceAccountName": "s"}],
            "hashiCorpVault": {
                "address": "http://vault:8200",
                "authentication": "token",
                "namespace": "team",
                "credential": {"token": "hvs.SECRET"},
                "secrets": [
                    {"parameter": "p", "path": "secret/data/x", "key": "k", "type": "secretV2"},
                    {
                        "parameter": "cert",
                        "path": "pki/issue/r",
                        "key": "certificate",
                        "type": "pki",
                        "pkiData": {"commonName": "c", "ttl": "1h"},
                    },
                ],
            },
            "awsSecretManager": {
                "region": "eu-west-1",
                "podIdentity": {"provider": "aws-eks"},
                "credentials": {
                    "accessKey": {"valueFrom": {"secretKeyRef": {"name": "aws", "key": "id"}}},
                    "accessSecretKey": {
                        "valueFrom": {"secretKeyRef": {"name": "aws", "key": "secret"}}
                    },
                },
                "secrets": [{"parameter": "pw", "name": "db", "secretKey": "password"}],
            },
            "oauth2": {
                "type": "clientCredentials",
                "clientId": "id",
                "tokenUrl": "https://idp/token",
                "clientSecret": {"valueFrom": {"secretKeyRef": {"name": "o", "key": "s"}}},
                "scopes": ["a", "b"],
                "tokenUrlParams": {"audience": "x"},
            },
            "azureKeyVault": {
                "vaultUri": "https://v",
                "secrets": [{"parameter": "p", "name": "n"}],
            },
        },
        kind="ClusterTriggerAuthentication",
    )
    assert a.pod_identity == PodIdentity("aws", role_arn="arn:r", external_id="x")
    assert a.file_path == "creds/app.json"
    assert a.bound_service_account_tokens == (BoundServiceAccountToken("bearerToken", "s"),)
    vault = a.hashicorp_vault
    assert vault is not None and vault.namespace == "team"
    assert [s.type for s in vault.secrets] == ["secretV2", "pki"]
    assert vault.secrets[1].pki_data == VaultPkiData(common_name="c", ttl="1h")
    aws = a.aws_secret_manager
    assert aws is not None and aws.region == "eu-west-1"
    assert aws.pod_identity == PodIdentity("aws-eks")
    assert aws.credentials is not None
    assert aws.credentials.access_secret_key == SecretKeyRef("aws", "secret")
    assert aws.credentials.access_token is None
    assert aws.secrets == (AwsSecretManagerSecret("pw", "db", secret_key="password"),)
    assert a.oauth2 is not None and a.oauth2.scopes == ("a", "b")
    assert a.oauth2.token_url_params == (("audience", "x"),)
    assert a.azure_key_vault == ("p",)
    assert a.gcp_secret_manager is None
    assert "hvs.SECRET" not in repr(a)


def test_provider_none_is_no_identity_and_empty_ids_are_kept() -> None:
    assert auth({"podIdentity": {"provider": "none"}}).pod_identity is None
    identity = auth({"podIdentity": {"provider": "azure-workload", "identityId": ""}}).pod_identity
    assert identity == PodIdentity("azure-workload", identity_id="")
    owned = auth({"podIdentity": {"provider": "aws", "identityOwner": "workload"}}).pod_identity
    assert owned.workload_owned


def test_the_crds_checks() -> None:
    assert problems(
        {
            "podIdentity": {"provider": "azure", "identityOwner": "me"},
            "boundServiceAccountToken": [{"parameter": "t"}],
            "hashiCorpVault": {"address": "http://v", "authentication": "ldap", "secrets": []},
            "awsSecretManager": {"credentials": {"accessKey": {}}, "secrets": [{"name": "n"}]},
            "gcpSecretManager": {"secrets": [{"parameter": "p"}]},
            "azureKeyVault": {"secrets": []},
            "typo": 1,
        }
    ) == [
        'podIdentity.provider: "azure" is not one of: none, azure-workload, gcp, aws, aws-eks',
        'podIdentity.identityOwner: "me" is not one of: keda, workload',
        "boundServiceAccountToken[0].serviceAccountName: is required",
        "hashiCorpVault.secrets: must have at least 1 item",
        'hashiCorpVault.authentication: "ldap" is not one of: token, kubernetes',
        "awsSecretManager.credentials.accessKey.valueFrom.secretKeyRef.name: is required",
        "awsSecretManager.credentials.accessKey.valueFrom.secretKeyRef.key: is required",
        "awsSecretManager.credentials.accessSecretKey: is required",
        "awsSecretManager.secrets[0].parameter: is required",
        "azureKeyVault.vaultUri: is required",
        "azureKeyVault.secrets: must have at least 1 item",
        "gcpSecretManager.secrets[0].id: is required",
    ]


def test_unknown_fields_are_warnings() -> None:
    a = auth({"secretTargetRef": [], "podIdentitty": {"provider": "aws"}})
    assert a.warnings == ("podIdentitty: unknown field, ignored",)
