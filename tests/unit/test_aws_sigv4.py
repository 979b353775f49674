"""prometheus with an AWS identity: when KEDA signs with SigV4 (Amazon Managed Prometheus),
as whom, the canonical query a signed URL carries, and the headers it adds. The signature
itself is checked by a server recomputing it with botocore (tests/integration/prometheus)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scalers import aws_identity, prometheus
from scalers.aws_sigv4 import SigV4, canonical_query
from scalers.clients import Clients
from scalers.errors import Problems, SourceUnreachable
from scalers.identity import PodIdentity
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
BASE = {"serverAddress": "https://aps.example/workspaces/ws-1", "query": "up", "threshold": "1"}
KEYS = {"awsAccessKeyID": "AKIAPROM", "awsSecretAccessKey": "prom-secret-key"}
ROLE = "arn:aws:iam::123456789012:role/amp-reader"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def create(
    metadata: dict[str, str], auth: dict[str, str] | None = None, pod: PodIdentity | None = None
) -> tuple[prometheus.PrometheusScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs({**BASE, **metadata}, {}, auth or {}, path=P, pod_identity=pod)
    scaler = prometheus.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, prometheus.PrometheusScaler)
    return scaler, [str(p) for p in problems]


def signer(
    metadata: dict[str, str], auth: dict[str, str] | None = None, pod: PodIdentity | None = None
) -> SigV4 | None:
    scaler, problems = create(metadata, auth, pod)
    assert problems == []
    assert scaler is not None
    return scaler.query.signer


def test_no_aws_identity_no_signature() -> None:
    assert signer({}) is None
    assert signer({"awsRegion": "eu-west-1"}) is None  # a region alone: KEDA finds no keys


@pytest.mark.parametrize(
    ("metadata", "auth", "pod", "identity"),
    [
        (
            {"awsRegion": "eu-west-1"},
            KEYS,
            None,
            aws_identity.AwsIdentity(
                "eu-west-1", None, aws_identity.AwsCredentials("AKIAPROM", "prom-secret-key")
            ),
        ),
        ({}, {"awsRegion": "us-east-2", "awsRoleArn": ROLE}, None, None),
        ({"awsRegion": "eu-west-1", "identityOwner": "operator"}, {}, None, None),
        ({"awsRegion": "eu-west-1"}, {}, PodIdentity("aws", role_arn=ROLE), None),
    ],
)
def test_an_aws_identity_without_auth_modes_signs(
    metadata: dict[str, str],
    auth: dict[str, str],
    pod: PodIdentity | None,
    identity: aws_identity.AwsIdentity | None,
) -> None:
    found = signer(metadata, auth, pod)
    assert found is not None
    assert found.service == "aps"
    if identity is not None:
        assert found.identity == identity
    elif "awsRoleArn" in auth:
        assert found.identity == aws_identity.AwsIdentity(
            "us-east-2", role=aws_identity.AssumedRole(ROLE)
        )
    elif pod is not None:
        assert found.identity.role == aws_identity.AssumedRole(ROLE, None, True)
    else:
        assert found.identity == aws_identity.AwsIdentity("eu-west-1")


def test_auth_modes_turn_signing_off() -> None:
    assert signer({"awsRegion": "eu-west-1", "authModes": "bearer"}, {**KEYS, "token": "t"}) is None


def test_auth_modes_and_a_pod_identity_are_refused_as_in_keda() -> None:
    _, problems = create(
        {"authModes": "bearer"}, {"bearerToken": "t"}, PodIdentity("aws", role_arn=ROLE)
    )
    assert problems == [
        f'{P}.authModes: "bearer" cannot be used with the authentication\'s podIdentity '
        "(provider aws): give one or the other"
    ]


def test_a_signed_url_carries_sigv4_s_canonical_query_and_an_unsigned_one_does_not() -> None:
    meta = {"query": 'sum(rate(x{a="b c"}[2m]))', "queryParameters": "k=v~1"}
    signed, _ = create({**meta, "awsRegion": "eu-west-1"}, KEYS)
    unsigned, _ = create(meta)
    assert signed is not None and unsigned is not None
    query = "query=sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B2m%5D%29%29&time=2026-01-02T03%3A04%3A05Z"
    assert signed.query.url(NOW).endswith(f"/api/v1/query?{query}&k=v~1")
    assert "b+c" in unsigned.query.url(NOW)  # unchanged: Go's QueryEscape, as before
    assert canonical_query([("a b", "~-_.*")]) == "a%20b=~-_.%2A"


def test_identities_are_part_of_the_shared_query_and_never_shown() -> None:
    a, _ = create({"awsRegion": "eu-west-1"}, KEYS)
    b, _ = create({"awsRegion": "eu-west-1"}, {**KEYS, "awsSecretAccessKey": "other"})
    c, _ = create({"awsRegion": "eu-west-1"}, KEYS)
    assert a is not None and b is not None and c is not None
    assert a.query == c.query != b.query
    for text in (repr(a), repr(a.query), a.query.describe(), repr(a.query.signer)):
        assert "prom-secret-key" not in text


async def test_headers_sign_for_aps_in_the_region_with_the_session_token() -> None:
    keys = aws_identity.AwsCredentials("AKIAPROM", "prom-secret-key", "session-tok")
    sigv4 = SigV4(aws_identity.AwsIdentity("eu-west-1", credentials=keys))
    clients = Clients(timeout=1)
    try:
        headers = await sigv4.headers(clients, "GET", "https://aps.example/q?a=1", {"X-A": "1"})
    finally:
        await clients.aclose()
    date = headers["X-Amz-Date"]
    assert headers["X-A"] == "1"
    assert headers["X-Amz-Security-Token"] == "session-tok"
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIAPROM/{date[:8]}/eu-west-1/aps/aws4_request, "
        "SignedHeaders=host;x-a;x-amz-date;x-amz-security-token, Signature="
    )


async def test_no_region_anywhere_fails_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    sigv4 = SigV4(
        aws_identity.AwsIdentity("", credentials=aws_identity.AwsCredentials("AKIA", "s"))
    )
    clients = Clients(timeout=1)
    try:
        with pytest.raises(SourceUnreachable, match="awsRegion is required to sign"):
            await sigv4.headers(clients, "GET", "https://aps.example/", {})
    finally:
        await clients.aclose()
