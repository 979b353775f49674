"""awsSecretManager: which identity reads which secret, shared reads, refusals named, no secret
in a repr or a description. Reads themselves run against moto (tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.aws_secret_manager import (
    WHOLE,
    RefusedRead,
    SecretValueRead,
    _string_members,
    parameter_reads,
)
from metrics_adapter.binding.auth_sources.base import ParameterRead
from metrics_adapter.binding.files import Inventory
from scalers import aws_identity

ROLE = "arn:aws:iam::123456789012:role/secrets"
SECRETS = [
    {"parameter": "user", "name": "db", "secretKey": "user"},
    {"parameter": "password", "name": "db", "secretKey": "password"},
    {"parameter": "old", "name": "db", "versionStage": "AWSPREVIOUS"},
]
CREDENTIALS = {
    name: {"valueFrom": {"secretKeyRef": {"name": "keys", "key": key}}}
    for name, key in (("accessKey", "id"), ("accessSecretKey", "secret"), ("accessToken", "tok"))
}


def reads(source: dict[str, Any], keys: dict[str, str] | None = None) -> list[ParameterRead]:
    inventory = Inventory()
    spec = {"region": "eu-west-1", "secrets": SECRETS, **source}
    inventory.add(
        {
            "kind": "TriggerAuthentication",
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"awsSecretManager": spec},
        },
        "test",
    )
    if keys is not None:
        secret = {"kind": "Secret", "metadata": {"name": "keys", "namespace": "default"}}
        inventory.add({**secret, "stringData": keys}, "test")
    assert inventory.errors == []
    (auth,) = inventory.auths.values()
    return parameter_reads(auth, "default", inventory)


def test_static_keys_from_a_secret_with_the_session_token() -> None:
    found = reads({"credentials": CREDENTIALS}, {"id": "AKIA1", "secret": "hush", "tok": "t"})
    assert [(r.parameter, r.key) for r in found] == [
        ("user", "user"),
        ("password", "password"),
        ("old", WHOLE),
    ]
    first, second, third = (r.read for r in found)
    assert first == second != third  # one read per secret version, shared by its keys
    assert isinstance(first, SecretValueRead)
    assert first.identity == aws_identity.AwsIdentity(
        "eu-west-1", None, aws_identity.AwsCredentials("AKIA1", "hush", "t")
    )
    assert first.describe() == 'awsSecretManager secret "db" in eu-west-1'
    assert third.describe() == 'awsSecretManager secret "db" stage AWSPREVIOUS in eu-west-1'
    for text in (repr(found), first.describe()):
        assert "hush" not in text


@pytest.mark.parametrize(
    ("pod", "role"),
    [
        ({"provider": "aws"}, None),
        ({"provider": "aws", "roleArn": ROLE}, aws_identity.AssumedRole(ROLE, None, True)),
        (
            {"provider": "aws", "roleArn": ROLE, "externalID": "x"},
            aws_identity.AssumedRole(ROLE, "x", True),
        ),
    ],
)
def test_pod_identity_aws_is_the_adapter_s_identity_or_its_role(
    pod: dict[str, str], role: aws_identity.AssumedRole | None
) -> None:
    (read, *_) = (r.read for r in reads({"podIdentity": pod}))
    assert isinstance(read, SecretValueRead)
    assert read.identity == aws_identity.AwsIdentity("eu-west-1", role=role)


@pytest.mark.parametrize(
    ("source", "keys", "reason"),
    [
        ({}, None, "credentials.accessKey and credentials.accessSecretKey are required"),
        (
            {"credentials": CREDENTIALS},
            {"id": "AKIA1"},
            'Secret default/keys key "secret" not found or empty',
        ),
        ({"podIdentity": {"provider": "gcp"}}, None, "podIdentity provider gcp is not supported"),
        (
            {"podIdentity": {"provider": "aws", "identityOwner": "workload"}},
            None,
            "identityOwner workload",
        ),
    ],
)
def test_an_unusable_identity_is_a_read_that_fails_naming_why(
    source: dict[str, Any], keys: dict[str, str] | None, reason: str
) -> None:
    found = reads(source, keys)
    assert len(found) == len(SECRETS)
    read = found[0].read
    assert isinstance(read, RefusedRead)
    assert reason in read.reason


def test_a_secret_key_names_a_string_member_of_a_json_object() -> None:
    assert _string_members('{"user": "app", "port": 5432, "": "x"}') == {"user": "app"}
    assert _string_members("not json") == {}
    assert _string_members('["a"]') == {}
