"""A trigger's authentication resolved as KEDA's ResolveAuthRefAndPodIdentity: the order of
the sources, filePath, podIdentity, unsupported sources and binary Secret data."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.base import ReadContext
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.authentication import Resolved, resolve
from metrics_adapter.binding.files import Inventory, load_documents
from metrics_adapter.binding.triggers import bind_all
from metrics_adapter.model.keda import ObjectRef
from scalers.clients import Clients
from scalers.errors import ConfigError, Problems
from scalers.identity import PodIdentity

NS = "apps"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scaled_object(kind: str = "TriggerAuthentication", **metadata: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": "web"},
            "triggers": [
                {
                    "type": "metrics-api",
                    "metadata": {
                        "url": "http://127.0.0.1:1/v",
                        "valueLocation": "v",
                        "targetValue": "1",
                        "authMode": "bearer",
                        **metadata,
                    },
                    "authenticationRef": {"name": "auth", "kind": kind},
                }
            ],
        },
    }


def authentication(kind: str = "TriggerAuthentication", **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "auth", "namespace": NS}, "spec": spec}


DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "template": {
            "spec": {
                "serviceAccountName": "web-sa",
                "containers": [{"name": "app", "env": [{"name": "TOKEN", "value": "from-env"}]}],
            }
        }
    },
}
SECRET = {
    "kind": "Secret",
    "metadata": {"name": "creds", "namespace": NS},
    "data": {"token": b64(b"from-secret"), "keystore": b64(b"\xfe\xed\xfe\xed\x00\x02")},
}
CONFIG_MAP = {
    "kind": "ConfigMap",
    "metadata": {"name": "cfg", "namespace": NS},
    "data": {"t": "cm"},
}


def inventory(*docs: dict[str, Any]) -> Inventory:
    return load_documents((f"doc{i}", d) for i, d in enumerate(docs))


def resolved(found: Inventory, problems: Problems | None = None) -> Resolved:
    so = found.scaled_objects[ObjectRef(NS, "so")]
    return resolve(
        so, so.triggers[0], found, Problems() if problems is None else problems, "triggers[0]"
    )


def problems_of(found: Inventory) -> list[str]:
    with pytest.raises(ConfigError) as info:
        bind_all(found.scaled_objects[ObjectRef(NS, "so")], found)
    return [str(p) for p in info.value.problems]


def test_later_sources_win_in_kedas_order() -> None:
    found = inventory(
        scaled_object(),
        DEPLOYMENT,
        SECRET,
        CONFIG_MAP,
        authentication(
            env=[{"parameter": "token", "name": "TOKEN"}, {"parameter": "e", "name": "TOKEN"}],
            configMapTargetRef=[
                {"parameter": "token", "name": "cfg", "key": "t"},
                {"parameter": "c", "name": "cfg", "key": "t"},
            ],
            secretTargetRef=[{"parameter": "token", "name": "creds", "key": "token"}],
            oauth2={
                "type": "clientCredentials",
                "clientId": "id",
                "tokenUrl": "https://idp/token",
                "clientSecret": {"valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                "scopes": ["a", "b"],
                "tokenUrlParams": {"audience": "api x"},
            },
        ),
    )
    assert resolved(found).params == {
        "token": "from-secret",
        "e": "from-env",
        "c": "cm",
        "oauthTokenURI": "https://idp/token",
        "clientID": "id",
        "clientSecret": "from-secret",
        "scopes": "a,b",
        "endpointParams": "audience=api+x",
    }
    bind_all(found.scaled_objects[ObjectRef(NS, "so")], found)


def test_a_binary_secret_is_accepted_and_an_error_only_where_a_trigger_reads_it() -> None:
    ok = inventory(
        scaled_object(),
        SECRET,
        authentication(secretTargetRef=[{"parameter": "token", "name": "creds", "key": "token"}]),
    )
    assert not ok.errors
    assert ok.binary_secrets[ObjectRef(NS, "creds")] == frozenset({"keystore"})
    bind_all(ok.scaled_objects[ObjectRef(NS, "so")], ok)
    bad = inventory(
        scaled_object(),
        SECRET,
        authentication(
            secretTargetRef=[{"parameter": "token", "name": "creds", "key": "keystore"}]
        ),
    )
    assert problems_of(bad) == [
        "triggers[0].authenticationRef (TriggerAuthentication auth): Secret apps/creds key "
        '"keystore" (for parameter token) is not UTF-8 text'
    ]


def test_data_that_is_not_base64_is_still_refused_as_the_api_server_would() -> None:
    found = inventory({**SECRET, "data": {"token": "not base64!"}})
    assert found.errors == ["Secret apps/creds: data.token: is not base64-encoded"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "azureKeyVault": {
                    "vaultUri": "https://v",
                    "secrets": [{"parameter": "token", "name": "n"}],
                }
            },
            "authentication source azureKeyVault is not supported by metrics-adapter",
        ),
        (
            {"gcpSecretManager": {"secrets": [{"parameter": "token", "id": "i"}]}},
            "authentication source gcpSecretManager is not supported by metrics-adapter",
        ),
        (
            {"podIdentity": {"provider": "azure-workload"}},
            "authentication source podIdentity azure-workload is not supported by metrics-adapter",
        ),
        (
            {"boundServiceAccountToken": [{"parameter": "token", "serviceAccountName": "s"}]},
            "boundServiceAccountToken of ServiceAccount apps/s: not read yet (for parameter token)",
        ),
    ],
)
def test_a_source_that_cannot_be_used_is_named_never_the_parameter_it_supplies(
    spec: dict[str, Any], message: str
) -> None:
    problems = problems_of(inventory(scaled_object(), authentication(**spec)))
    where = "triggers[0].authenticationRef (TriggerAuthentication auth)"
    assert f"{where}: {message}" in problems
    assert not any("token" in p and "is required" in p for p in problems), problems


async def test_file_path_replaces_the_other_sources(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text(json.dumps({"token": "from-file"}))
    cta = authentication(
        "ClusterTriggerAuthentication",
        filePath="auth.json",
        secretTargetRef=[{"parameter": "other", "name": "creds", "key": "token"}],
    )
    found = inventory(scaled_object("ClusterTriggerAuthentication"), cta, SECRET)
    found.cluster_object_namespace = NS
    found.sources = SourceCache(ReadContext(Clients(), file_root=tmp_path))
    try:
        so = found.scaled_objects[ObjectRef(NS, "so")]
        await found.settle(so, within=10)
        assert resolved(found).params == {"token": "from-file"}
        bind_all(so, found)
    finally:
        await found.sources.aclose()


def test_file_path_is_refused_on_a_trigger_authentication_as_keda_does() -> None:
    found = inventory(scaled_object(), authentication(filePath="auth.json"))
    assert problems_of(found) == [
        "triggers[0].authenticationRef (TriggerAuthentication auth): filePath is only "
        "supported for ClusterTriggerAuthentication, got kind: TriggerAuthentication"
    ]


def account(name: str, role: str | None) -> dict[str, Any]:
    annotations = {"eks.amazonaws.com/role-arn": role} if role else {}
    return {
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
    }


@pytest.mark.parametrize(
    ("identity", "docs", "params", "problem"),
    [
        ({"provider": "aws", "roleArn": "arn:keda"}, [], {"awsRoleArn": "arn:keda"}, None),
        (
            {"provider": "aws", "identityOwner": "workload"},
            [account("web-sa", "arn:web")],
            {"awsRoleArn": "arn:web"},
            None,
        ),
        (
            {"provider": "aws", "identityOwner": "workload"},
            [account("web-sa", None)],
            {},
            "podIdentity aws: ServiceAccount apps/web-sa of the workload has no annotation "
            "eks.amazonaws.com/role-arn",
        ),
        (
            {"provider": "aws", "identityOwner": "workload", "roleArn": "arn:x"},
            [account("web-sa", "arn:web")],
            {},
            "roleArn can't be set if KEDA isn't identity owner, current value: 'workload'",
        ),
        ({"provider": "aws-eks"}, [account("web-sa", "arn:web")], {"awsRoleArn": "arn:web"}, None),
        ({"provider": "aws-eks"}, [account("web-sa", None)], {"awsRoleArn": ""}, None),
        (
            {"provider": "aws-eks"},
            [],
            {},
            "podIdentity aws-eks: ServiceAccount apps/web-sa of the workload not found",
        ),
    ],
)
def test_pod_identity_as_kedas_resolver(
    identity: dict[str, str],
    docs: list[dict[str, Any]],
    params: dict[str, str],
    problem: str | None,
) -> None:
    found = inventory(scaled_object(), DEPLOYMENT, *docs, authentication(podIdentity=identity))
    problems = Problems()
    result = resolved(found, problems)
    assert result.params == params
    assert isinstance(result.pod_identity, PodIdentity)
    assert result.pod_identity.provider == identity["provider"]
    where = "triggers[0].authenticationRef (TriggerAuthentication auth)"
    assert [str(p) for p in problems] == ([f"{where}: {problem}"] if problem else [])


def test_the_default_service_account_exists_without_a_file() -> None:
    workload = {**DEPLOYMENT, "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}
    found = inventory(
        scaled_object(), workload, authentication(podIdentity={"provider": "aws-eks"})
    )
    assert resolved(found).params == {"awsRoleArn": ""}


def test_provider_none_gives_no_identity() -> None:
    found = inventory(scaled_object(), authentication(podIdentity={"provider": "none"}))
    assert resolved(found).pod_identity is None
