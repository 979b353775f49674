"""SASL/OAUTHBEARER as KEDA does it: client credentials at a token endpoint, the token to
the broker, against the broker's own validator.

The broker's OAUTHBEARER listener runs Kafka's default server callback, which validates
unsecured JWTs (``alg: none``: ``sub``, ``exp``, and the scope ``kafka`` it requires); the
tokens come from ``tests.support.oauth2_issuer`` with ``unsecured=True``, which counts the
token requests it answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.client import AIOKafkaClient

from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceUnreachable
from tests.support.kafka import OAUTH_SCOPE, KafkaBroker, commit, create_topic, produce
from tests.support.oauth2_issuer import TokenIssuer

from .helpers import read, scaler

pytestmark = pytest.mark.integration

CLIENT = ("workers", "w0rkers-client-s3cret")


def _issuer(expires_in: int) -> Iterator[TokenIssuer]:
    issuer = TokenIssuer("kafka", dict([CLIENT]), expires_in=expires_in, unsecured=True)
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    yield from _issuer(300)


@pytest.fixture
async def topic(kafka_broker: KafkaBroker, name: str) -> str:
    """A topic with lag 4 + 2 for group ``<topic>-g``."""
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-t"
    await create_topic(bootstrap, topic, 2)
    await produce(bootstrap, topic, {0: 5, 1: 5})
    await commit(bootstrap, f"{topic}-g", {(topic, 0): 1, (topic, 1): 3})
    return topic


def _auth(issuer: TokenIssuer, **more: str) -> dict[str, str]:
    return {
        "sasl": "oauthbearer",
        "username": CLIENT[0],
        "password": CLIENT[1],
        "oauthTokenEndpointUri": issuer.url,
        "scopes": OAUTH_SCOPE,
        **more,
    }


def _expiry(token: str) -> int:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return int(claims["exp"])


async def test_lag_read_over_oauthbearer(
    kafka_broker: KafkaBroker, issuer: TokenIssuer, topic: str
) -> None:
    s = scaler(kafka_broker.address("OAUTHBEARER"), f"{topic}-g", topic, _auth(issuer))
    assert (await read(s)).metric == 6
    [request] = issuer.requests
    assert request["grant_type"] == "client_credentials"
    assert request["scope"] == OAUTH_SCOPE
    assert request["auth_style"] == "basic"  # x/oauth2's first try


async def test_the_broker_refuses_a_token_without_the_scope_it_requires(
    kafka_broker: KafkaBroker, issuer: TokenIssuer, topic: str
) -> None:
    """The validator is real: without scopes (KEDA then asks for an empty one) the token
    lacks ``kafka``, and the poll fails naming the listener; the secret appears nowhere."""
    auth = _auth(issuer)
    del auth["scopes"]
    s = scaler(kafka_broker.address("OAUTHBEARER"), f"{topic}-g", topic, auth)
    with pytest.raises(SourceUnreachable) as info:
        await read(s)
    message = str(info.value)
    listener = kafka_broker.address("OAUTHBEARER")
    assert f"{listener} (SASL_PLAINTEXT, OAUTHBEARER as workers)" in message
    assert "a token the broker refused" in message
    assert CLIENT[1] not in message
    assert issuer.requests[0]["scope"] == ""


async def test_a_refused_client_secret_is_a_clear_error_without_the_secret(
    kafka_broker: KafkaBroker, issuer: TokenIssuer, topic: str
) -> None:
    wrong = "not-the-w0rkers-s3cret"
    s = scaler(
        kafka_broker.address("OAUTHBEARER"), f"{topic}-g", topic, _auth(issuer, password=wrong)
    )
    with pytest.raises(SourceResponseError) as info:
        await read(s)
    message = str(info.value)
    assert f'OAuth2 token from {issuer.url} for client "workers": refused: HTTP 401' in message
    assert "invalid_client" in message
    assert wrong not in message and CLIENT[1] not in message


async def test_one_token_per_lifetime_for_every_trigger_and_connection(
    kafka_broker: KafkaBroker, issuer: TokenIssuer, topic: str, name: str
) -> None:
    """Two backends (the second sends an extension, so it has a connection of its own),
    three groups, three polls: one token request."""
    other = f"{name}-other"
    await create_topic(kafka_broker.bootstrap, other, 1)
    await produce(kafka_broker.bootstrap, other, {0: 9})
    await commit(kafka_broker.bootstrap, f"{other}-g", {(other, 0): 2})
    address = kafka_broker.address("OAUTHBEARER")
    triggers = [
        (scaler(address, f"{topic}-g", topic, _auth(issuer)), 6),
        (scaler(address, f"{other}-g", other, _auth(issuer)), 7),
        (scaler(address, f"{topic}-g", topic, _auth(issuer, oauthExtensions="traceId=abc")), 6),
        (scaler(address, f"{other}-g", None, _auth(issuer, oauthExtensions="traceId=abc")), 7),
    ]
    assert len({s.query.backend for s, _ in triggers}) == 2
    clients = Clients(timeout=5)
    try:
        for _ in range(3):
            lags = await asyncio.gather(*(read(s, clients) for s, _ in triggers))
            assert [lag.metric for lag in lags] == [want for _, want in triggers]
    finally:
        await clients.aclose()
    assert issuer.token_requests() == 1


class _Static(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


async def test_an_expired_token_is_fetched_again_for_a_new_connection(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """Tokens living 2 s: once the first has expired, a new connection (the second backend)
    gets a fresh one, which the broker accepts; the expired one it refuses."""
    for issuer in _issuer(2):
        address = kafka_broker.address("OAUTHBEARER")
        first = scaler(address, f"{topic}-g", topic, _auth(issuer))
        second = scaler(address, f"{topic}-g", topic, _auth(issuer, oauthExtensions="n=2"))
        clients = Clients(timeout=5)
        try:
            assert (await read(first, clients)).metric == 6
            [expired] = issuer.tokens
            # The broker reads exp in whole seconds, with no clock skew allowed.
            await asyncio.sleep(max(0.0, _expiry(expired) + 1 - time.time()))
            assert (await read(second, clients)).metric == 6
        finally:
            await clients.aclose()
        assert issuer.token_requests() == 2
        assert _expiry(issuer.tokens[1]) > _expiry(expired)
        # The broker refuses the expired token and takes the fresh one. (aiokafka misses
        # OAUTHBEARER's refusal, so it shows as a bootstrap that found no broker.)
        assert await _brokers(address, expired) == 0
        assert await _brokers(address, issuer.tokens[1]) == 1


async def _brokers(address: str, token: str) -> int:
    client = AIOKafkaClient(
        bootstrap_servers=address,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=_Static(token),
        request_timeout_ms=5000,
    )
    try:
        await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()
