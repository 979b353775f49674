"""``kafka`` with ``sasl: oauthbearer``: the parameters as KEDA parses them, and the token
request and backend identity they make."""

from __future__ import annotations

import pytest

from scalers import kafka
from scalers.errors import Problems
from scalers.oauth2 import ClientCredentials, request_form
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
A = "triggers[0].authenticationRef"
BASE = {"bootstrapServers": "broker:9092", "consumerGroup": "workers", "sasl": "oauthbearer"}
AUTH = {
    "username": "client",
    "password": "client-s3cret",
    "oauthTokenEndpointUri": "https://idp.example/token",
}


def create(auth: dict[str, str], **metadata: str) -> tuple[kafka.KafkaScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs({**BASE, **metadata}, {}, auth, path=P)
    scaler = kafka.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, kafka.KafkaScaler)
    return scaler, [str(p) for p in problems]


def credentials(auth: dict[str, str], **metadata: str) -> ClientCredentials:
    scaler, problems = create(auth, **metadata)
    assert problems == [] and scaler is not None
    assert scaler.query.backend.oauth is not None
    return scaler.query.backend.oauth


def test_client_id_and_secret_are_username_and_password() -> None:
    oauth = credentials(AUTH)
    assert (oauth.token_url, oauth.client_id, oauth.client_secret) == (
        "https://idp.example/token",
        "client",
        "client-s3cret",
    )
    backend = credentials(AUTH, topic="t")
    assert backend == oauth


@pytest.mark.parametrize(
    ("scopes", "sent"),
    [
        (None, ""),  # strings.Split("", ",") is [""]: x/oauth2 sends an empty scope
        ("kafka", "kafka"),
        ("a,b", "a b"),
        ("a, b", "a  b"),  # not trimmed, as KEDA
    ],
)
def test_scopes_are_split_as_keda_splits_them(scopes: str | None, sent: str) -> None:
    auth = AUTH if scopes is None else {**AUTH, "scopes": scopes}
    assert dict(request_form(credentials(auth)))["scope"] == sent


def test_extensions_go_with_the_backend_and_secrets_stay_out_of_reprs() -> None:
    scaler, _ = create({**AUTH, "oauthExtensions": "traceId=abc,logicalCluster=lc-1"})
    assert scaler is not None
    backend = scaler.query.backend
    assert backend.oauth_extensions == (("traceId", "abc"), ("logicalCluster", "lc-1"))
    assert "OAUTHBEARER as client" in backend.describe()
    for text in (repr(scaler), repr(backend), backend.describe()):
        assert "client-s3cret" not in text


@pytest.mark.parametrize(
    ("auth", "metadata", "problem"),
    [
        ({**AUTH, "password": ""}, {}, f"{P}.password: is required by sasl oauthbearer"),
        (
            {k: v for k, v in AUTH.items() if k != "oauthTokenEndpointUri"},
            {},
            f"{P}.oauthTokenEndpointUri: is required by sasl oauthbearer",
        ),
        ({**AUTH, "oauthExtensions": "a=b,c"}, {}, f'{P}.oauthExtensions: "c" is not key=value'),
        ({**AUTH, "oauthExtensions": "a=b=c"}, {}, f'{P}.oauthExtensions: "a=b=c" is not'),
        ({**AUTH, "oauthExtensions": "auth=x"}, {}, f'{P}.oauthExtensions: "auth" is reserved'),
        (
            AUTH,
            {"saslTokenProvider": "aws_msk_iam"},
            f'{P}.saslTokenProvider: "aws_msk_iam" is not supported yet (bearer)',
        ),
        (AUTH, {"saslTokenProvider": "other"}, f'{P}.saslTokenProvider: "other" is not one of'),
    ],
)
def test_keda_s_refusals(auth: dict[str, str], metadata: dict[str, str], problem: str) -> None:
    scaler, problems = create(auth, **metadata)
    assert scaler is None
    assert any(p.startswith(problem) for p in problems), problems


def test_bearer_is_the_default_provider_and_may_be_named() -> None:
    assert credentials(AUTH, saslTokenProvider="bearer") == credentials(AUTH)
