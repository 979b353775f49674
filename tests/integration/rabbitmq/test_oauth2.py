"""rabbitmq with OAuth2, as KEDA's ``rabbitmq_queue_http_oauth2`` e2e test sets it up: a
TriggerAuthentication's ``oauth2`` block (client credentials, its secret in a Secret, a
scope), a host with no login, and a RabbitMQ 3.10 node whose ``rabbitmq_auth_backend_oauth2``
plugin checks the bearer tokens for real. The identity provider is
:mod:`tests.support.oauth2_issuer` (HS256 JWTs with the key the node trusts)."""

from __future__ import annotations

import asyncio
import base64
import functools
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory, load_documents
from metrics_adapter.binding.triggers import BoundTrigger, bind_all
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import Reading
from metrics_adapter.model.keda import ObjectRef
from scalers.clients import Clients
from scalers.errors import SourceResponseError
from tests.support.oauth2_issuer import KEY_ID, TokenIssuer
from tests.support.rabbitmq import NEEDS, OAuth2Settings, RabbitMQServer, available
from tests.support.triggers import new_poller

pytestmark = pytest.mark.integration

NS = "apps"
AUDIENCE = "rabbitmq"
CLIENT, SECRET = "rabbitmq-keda", "rabbitmq-keda-secret"


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    found = TokenIssuer(AUDIENCE, {CLIENT: SECRET, "other-client": "other-secret"}).start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def node(issuer: TokenIssuer) -> Iterator[RabbitMQServer]:
    """A node of its own: the session's node has no OAuth2 plugin."""
    if not available():
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    server = RabbitMQServer(oauth2=OAuth2Settings(AUDIENCE, KEY_ID, issuer.jwk()))
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh(issuer: TokenIssuer) -> Iterator[TokenIssuer]:
    """The issuer with this test's own counts and lifetime."""
    issuer.requests.clear()
    issuer.expires_in = 300
    yield issuer
    issuer.expires_in = 300


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def objects(
    node: RabbitMQServer,
    issuer: TokenIssuer,
    queues: dict[str, str],
    secret: str = SECRET,
    client: str = CLIENT,
) -> Inventory:
    """KEDA's e2e objects: one ScaledObject per ``name → queue``, one TriggerAuthentication."""
    docs: list[dict[str, Any]] = [
        {
            "kind": "Secret",
            "metadata": {"name": "oauth", "namespace": NS},
            "data": {"clientSecret": b64(secret)},
        },
        {
            "kind": "TriggerAuthentication",
            "metadata": {"name": "oauth", "namespace": NS},
            "spec": {
                "oauth2": {
                    "type": "clientCredentials",
                    "clientId": client,
                    "clientSecret": {
                        "valueFrom": {"secretKeyRef": {"name": "oauth", "key": "clientSecret"}}
                    },
                    "tokenUrl": issuer.url,
                    "scopes": [CLIENT],
                }
            },
        },
    ]
    for name, queue in queues.items():
        trigger = {
            "type": "rabbitmq",
            "metadata": {
                "queueName": queue,
                "host": f"http://127.0.0.1:{node.management_port}/",
                "protocol": "http",
                "mode": "QueueLength",
                "value": "10",
            },
            "authenticationRef": {"name": "oauth"},
        }
        docs.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"scaleTargetRef": {"name": "worker"}, "triggers": [trigger]},
            }
        )
    return load_documents((f"doc{i}", d) for i, d in enumerate(docs))


class Run:
    """ScaledObjects bound through the real binder and polled as the service polls them."""

    def __init__(self, found: Inventory) -> None:
        self.poller: Poller = new_poller()
        self.bound: dict[str, BoundTrigger] = {}
        for ref, so in found.scaled_objects.items():
            [bound] = bind_all(so, found).triggers
            self.poller.set_triggers(ref, [bound])
            self.bound[ref.name] = bound

    async def poll(self, name: str) -> Reading:
        bound = self.bound[name]
        await self.poller.poll(bound.scaler.query)
        return self.poller.store.readings(ObjectRef(NS, name))[bound.metric_name]

    async def aclose(self) -> None:
        await self.poller.clients.aclose()


def settled(queue: dict[str, Any], messages: int) -> bool:
    return queue.get("messages") == messages


def with_messages(node: RabbitMQServer, queue: str, count: int) -> str:
    node.add_queue(queue)
    node.publish(queue, count)
    node.wait_for_queue(queue, functools.partial(settled, messages=count))
    return queue


def management_status(node: RabbitMQServer, queue: str, token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.management_port}/api/queues/%2F/{queue}",
        headers={"authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


async def test_the_value_comes_back_through_oauth2(
    node: RabbitMQServer, fresh: TokenIssuer, name: str
) -> None:
    queue = with_messages(node, f"{name}-q", 7)
    run = Run(objects(node, fresh, {"so": queue}))
    try:
        reading = await run.poll("so")
        assert (reading.error, reading.value) == (None, 7.0)
    finally:
        await run.aclose()
    [request] = fresh.requests  # x/oauth2's first try: the secret in HTTP Basic
    assert request == {"grant_type": "client_credentials", "scope": CLIENT, "auth_style": "basic"}
    # The node checks the token: one signed with another key gets nowhere.
    forged = TokenIssuer(AUDIENCE, {CLIENT: SECRET})
    _, answer = forged.answer(
        {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}, None
    )
    assert management_status(node, queue, answer["access_token"]) == 401
    assert management_status(node, queue, fresh.tokens[-1]) == 200


async def test_a_wrong_client_secret_fails_the_trigger_naming_the_token_url(
    node: RabbitMQServer, fresh: TokenIssuer, name: str
) -> None:
    queue = with_messages(node, f"{name}-q", 3)
    run = Run(objects(node, fresh, {"so": queue}, secret="not-the-secret"))
    try:
        reading = await run.poll("so")
        assert reading.value is None  # an error, never a zero
        assert reading.error is not None
        assert f"OAuth2 token from {fresh.url} for client {CLIENT!r}".replace("'", '"') in (
            reading.error
        )
        assert "refused: HTTP 401: invalid_client: bad credentials" in reading.error
        assert "not-the-secret" not in reading.error
        clients = Clients()
        with pytest.raises(SourceResponseError, match=fresh.url):
            await run.bound["so"].scaler.query.run(clients)
        await clients.aclose()
    finally:
        await run.aclose()
    # Each attempt as x/oauth2's: HTTP Basic, then the form.
    assert [r["auth_style"] for r in fresh.requests] == ["basic", "form"] * 2


async def test_an_expiring_token_is_renewed(
    node: RabbitMQServer, fresh: TokenIssuer, name: str
) -> None:
    fresh.expires_in = 2  # renewed at half its life
    queue = with_messages(node, f"{name}-q", 5)
    run = Run(objects(node, fresh, {"so": queue}))
    try:
        assert (await run.poll("so")).value == 5.0
        first = fresh.tokens[-1]
        # Past the first token's exp (whole seconds) the node refuses it ...
        await asyncio.sleep(fresh.expires_in + 1.1)
        assert await asyncio.to_thread(management_status, node, queue, first) == 401
        # ... and the trigger still reads, with a token fetched since.
        reading = await run.poll("so")
        assert (reading.error, reading.value) == (None, 5.0)
        assert fresh.tokens[-1] != first
        assert fresh.token_requests() == 2
    finally:
        await run.aclose()


async def test_triggers_of_one_client_share_one_token(
    node: RabbitMQServer, fresh: TokenIssuer, name: str
) -> None:
    queues = {f"so{i}": with_messages(node, f"{name}-{i}", i + 1) for i in range(3)}
    run = Run(objects(node, fresh, queues))
    other = Run(objects(node, fresh, {"so0": queues["so0"]}, "other-secret", "other-client"))
    try:
        assert run.poller.query_count == 3  # three queues: three requests, one token
        for _ in range(2):
            for i, so in enumerate(queues):
                assert (await run.poll(so)).value == i + 1
        assert fresh.token_requests() == 1
        assert (await other.poll("so0")).value == 1  # another client: a token of its own
        assert fresh.token_requests() == 2
    finally:
        await run.aclose()
        await other.aclose()


def test_the_node_refuses_a_request_without_a_token(node: RabbitMQServer) -> None:
    """What the tests above rely on: the host has no login, so only the token lets them in."""
    request = urllib.request.Request(f"http://127.0.0.1:{node.management_port}/api/queues")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    info.value.close()
    assert info.value.code == 401
