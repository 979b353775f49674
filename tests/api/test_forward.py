"""One forwarded hop, through real sockets: an owner replica (uvicorn, TLS on 127.0.0.1, a
MetricStore holding ``ns/worker``'s ``s0-cron`` = 7) and a non-owner whose Route names it.

Every replica serves one certificate naming the Service, not the Pod IP it is dialled at: the
forwarder trusts that certificate itself (the serving pair is self-signed) and checks no name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.forward import FORWARDED, HOLDS_NOTHING, Forwarder, Peer
from metrics_adapter.api.tls import self_signed_pair
from metrics_adapter.errors import Unauthorized
from metrics_adapter.kube import wire
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.server import Server, server_config
from tests.support.servers import running, serving

METRIC = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s0-cron"
WORKER = {"labelSelector": "scaledobject.keda.sh/name=worker"}
WHEN = datetime(2026, 11, 22, 8, 30, 0, tzinfo=UTC)
"""The owner's measurement: the timestamp a stale answer still carries."""
SERVICE_NAME = ["metrics-adapter.keda.svc"]
TOKEN = "sa-token-of-replica-b"


async def bearer() -> str | None:
    return f"Bearer {TOKEN}"


async def nobody() -> str | None:
    return None


TIMEOUT = 0.5
STALE_FOR = 30.0


@dataclass
class OwnerApp:
    """The owner's routes behind a switch that can make it fail as owners do."""

    app: ASGIApp
    mode: str = "ok"
    """``ok``; ``hang`` (no answer until released); ``bad_gateway`` (a 502 page, no Status);
    ``refuse`` (401: our token rejected)."""
    seen: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request that reached it."""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append({k.decode(): v.decode() for k, v in scope.get("headers", [])})
        if self.mode == "hang":
            await self.release.wait()
        if self.mode in ("bad_gateway", "refuse"):
            status, body, kind = (
                (502, b"<html>502 Bad Gateway</html>", b"text/html")
                if self.mode == "bad_gateway"
                else (401, wire.status(Unauthorized("token rejected")), b"application/json")
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", kind)],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class Clock:
    """The forwarder's clock, moved by the test: staleness without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Fixed:
    """A Route naming one owner (``None``: this replica) for every object."""

    peer: Peer | None
    exists: bool = False
    """What the watch says: every object exists, or none."""

    def owner(self, namespace: str, name: str) -> Peer | None:
        return self.peer

    def watched(self, namespace: str, name: str) -> bool:
        return self.exists


@dataclass
class Pair:
    owner: OwnerApp
    owner_url: str
    direct: httpx.AsyncClient
    """The owner's own API, as the aggregator would reach it."""
    client: httpx.AsyncClient
    """The non-owner's API."""
    local: MetricStore
    """The non-owner's store: ``ns/worker``'s ``s0-cron`` = 3 (a value only it has)."""
    forwarder: Forwarder
    telemetry: Telemetry
    clock: Clock
    stop_owner: contextlib.AsyncExitStack
    route: Fixed

    def count(self, result: str) -> float:
        sample = self.telemetry.registry.get_sample_value(
            "metrics_adapter_forwarded_requests_total", {"result": result}
        )
        return sample or 0.0


def store_with(value: float) -> MetricStore:
    store = MetricStore()
    ref = ObjectRef("ns", "worker")
    store.register(ref, ["s0-cron", "s1-failing"])
    store.record_value(ref, "s0-cron", value, True, WHEN)
    store.record_error(ref, "s1-failing", "GET http://queue: connection refused")
    return store


@contextlib.asynccontextmanager
async def owner_server(app: ASGIApp, cert: Path, key: Path) -> AsyncIterator[str]:
    # Keep-alive as serve's (90 s): longer than the forwarder's, as in a cluster.
    config = server_config(app, ssl_certfile=str(cert), ssl_keyfile=str(key), timeout_keep_alive=90)
    async with running(Server(config)) as url:
        yield url


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    cert, key = self_signed_pair(tmp_path / "certs", SERVICE_NAME)
    health = Health(loaded=True, poller_running=lambda: True)
    owner = OwnerApp(create_app(store_with(7), health))
    telemetry, clock = Telemetry(), Clock()
    anchor = cert.read_bytes()
    forwarder = Forwarder(
        "replica-b",
        lambda: anchor,
        authorization=bearer,
        timeout=TIMEOUT,
        stale_for=STALE_FOR,
        observer=telemetry,
        clock=clock,
    )
    stop_owner = contextlib.AsyncExitStack()
    try:
        owner_url = await stop_owner.enter_async_context(owner_server(owner, cert, key))
        stop_owner.callback(owner.release.set)  # runs first: a hanging answer lets go
        local = store_with(3)
        route = Fixed(Peer("replica-a", owner_url))
        app = create_app(local, health, forward=(route, forwarder))
        async with (
            serving(app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            httpx.AsyncClient(base_url=owner_url, verify=False, timeout=10) as direct,
        ):
            yield Pair(
                owner,
                owner_url,
                direct,
                client,
                local,
                forwarder,
                telemetry,
                clock,
                stop_owner,
                route,
            )
    finally:
        await forwarder.aclose()
        await stop_owner.aclose()


async def test_the_owners_answer_is_passed_on_byte_for_byte(pair: Pair) -> None:
    direct = await pair.direct.get(METRIC, params=WORKER)
    forwarded = await pair.client.get(METRIC, params=WORKER)
    assert direct.status_code == forwarded.status_code == 200
    assert forwarded.content == direct.content
    assert forwarded.json()["items"][0]["value"] == "7"  # the owner's, not the local 3
    assert forwarded.headers["content-type"] == "application/json"
    assert pair.count("answered") == 1


async def test_the_forwarded_read_carries_our_identity_and_token(pair: Pair) -> None:
    await pair.client.get(METRIC, params=WORKER)
    [headers] = pair.owner.seen
    assert headers[FORWARDED.lower()] == "replica-b"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers.get("x-remote-user") is None


async def test_no_token_no_authorization_header(pair: Pair) -> None:
    pair.forwarder.authorization = nobody
    await pair.client.get(METRIC, params=WORKER)
    assert "authorization" not in pair.owner.seen[0]


@pytest.mark.parametrize(
    ("metric", "selector", "code", "message"),
    [
        ("s0-cron", "other", 404, "ScaledObject ns/other not found"),
        ("s9-none", "worker", 404, "no matching metrics found for s9-none"),
        ("s1-failing", "worker", 503, "metric:s1-failing encountered error"),
    ],
)
async def test_the_owners_errors_are_answers_with_their_codes(
    pair: Pair, metric: str, selector: str, code: int, message: str
) -> None:
    path = METRIC.replace("s0-cron", metric)
    params = {"labelSelector": f"scaledobject.keda.sh/name={selector}"}
    direct = await pair.direct.get(path, params=params)
    forwarded = await pair.client.get(path, params=params)
    assert direct.status_code == forwarded.status_code == code
    assert forwarded.content == direct.content
    assert message in forwarded.json()["message"]
    assert pair.count("answered") == 1 and pair.count("stale") == 0


async def test_a_forwarded_read_is_answered_here_never_forwarded_again(pair: Pair) -> None:
    response = await pair.client.get(METRIC, params=WORKER, headers={FORWARDED: "replica-c"})
    assert response.status_code == 200
    assert response.json()["items"][0]["value"] == "3"  # the local store's
    assert pair.owner.seen == []
    assert pair.count("answered") == 0


async def test_an_object_this_replica_owns_is_answered_here(pair: Pair, tmp_path: Path) -> None:
    app = create_app(pair.local, Health(), forward=(Fixed(None), pair.forwarder))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get(METRIC, params=WORKER)
    assert response.json()["items"][0]["value"] == "3"
    assert pair.owner.seen == []


async def break_owner(pair: Pair, how: str) -> None:
    if how == "stopped":
        await pair.stop_owner.aclose()
    else:
        pair.owner.mode = how


REASONS = {
    "stopped": "ClientConnectorError",
    "hang": f"no answer within {TIMEOUT:g} s",
    "bad_gateway": "it answered 502 with no Kubernetes Status",
    "refuse": "it answered 401: token rejected",
}


@pytest.mark.parametrize("how", list(REASONS))
async def test_an_unreachable_owner_leaves_its_last_value_then_a_503(
    pair: Pair, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = await pair.client.get(METRIC, params=WORKER)
    assert good.status_code == 200
    await break_owner(pair, how)
    caplog.set_level(logging.WARNING, "metrics_adapter.api.forward")

    pair.clock.now += STALE_FOR - 1
    for _ in range(3):
        stale = await pair.client.get(METRIC, params=WORKER)
        assert stale.status_code == 200
        assert stale.content == good.content  # the owner's own timestamp: visibly old
    assert stale.json()["items"][0]["timestamp"] == "2026-11-22T08:30:00Z"
    assert pair.count("stale") == 3

    pair.clock.now += 2  # past the bound
    gone = await pair.client.get(METRIC, params=WORKER)
    assert gone.status_code == 503, gone.text
    body = gone.json()
    assert (body["kind"], body["reason"]) == ("Status", "ServiceUnavailable")
    for named in ("ns/worker", "s0-cron", "replica-a", pair.owner_url, REASONS[how]):
        assert named in body["message"]
    assert "items" not in body
    assert pair.count("failed") == 1

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one per streak
    assert "replica-a" in warnings[0].getMessage()


async def test_a_metric_never_forwarded_is_a_503_when_the_owner_is_gone(pair: Pair) -> None:
    await pair.stop_owner.aclose()
    response = await pair.client.get(METRIC, params=WORKER)
    assert response.status_code == 503
    assert "replica-a" in response.json()["message"]
    assert pair.count("failed") == 1 and pair.count("stale") == 0


async def test_a_hanging_owner_is_given_up_on_after_the_timeout(pair: Pair) -> None:
    pair.owner.mode = "hang"
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await pair.client.get(METRIC, params=WORKER)
    elapsed = loop.time() - began
    assert response.status_code == 503
    # Not before the timeout; well before the 10 s the aggregator would give us.
    assert TIMEOUT <= elapsed < TIMEOUT + 3


async def test_an_owner_refusal_drops_its_older_value(pair: Pair) -> None:
    """The owner's 503 supersedes its older value: an outage right after serves no value."""
    await pair.client.get(METRIC, params=WORKER)
    failing = MetricStore()
    failing.register(ObjectRef("ns", "worker"), ["s0-cron"])
    failing.record_error(ObjectRef("ns", "worker"), "s0-cron", "GET http://queue: refused")
    pair.owner.app = create_app(failing, Health())
    assert (await pair.client.get(METRIC, params=WORKER)).status_code == 503
    await pair.stop_owner.aclose()
    assert (await pair.client.get(METRIC, params=WORKER)).status_code == 503


def holding_nothing() -> list[MetricStore]:
    """An owner that has just been handed the object: not reconciled yet, or not polled."""
    registered = MetricStore()
    registered.register(ObjectRef("ns", "worker"), ["s0-cron"])
    return [MetricStore(), registered]


@pytest.mark.parametrize("owner_store", holding_nothing(), ids=["unknown", "unpolled"])
async def test_a_new_owner_holding_nothing_yet_leaves_the_last_value_served(
    pair: Pair, owner_store: MetricStore
) -> None:
    """A hand-over: the read goes to the new owner before its first poll. The value we
    last forwarded is served (its old timestamp), not the new owner's 404 or 503."""
    first = await pair.client.get(METRIC, params=WORKER)
    pair.owner.app = create_app(owner_store, Health())
    pair.clock.now += STALE_FOR - 1
    during = await pair.client.get(METRIC, params=WORKER)
    assert during.status_code == 200, during.text
    assert during.content == first.content
    assert pair.count("stale") == 1
    pair.clock.now += 2  # older than the bound: the new owner's own answer
    after = await pair.client.get(METRIC, params=WORKER)
    assert after.status_code in (404, 503)
    assert after.headers.get(HOLDS_NOTHING) is None  # it is ours to answer, not to pass on


async def test_an_owner_holding_nothing_is_passed_on_when_we_hold_nothing_either(
    pair: Pair,
) -> None:
    pair.owner.app = create_app(MetricStore(), Health())
    response = await pair.client.get(METRIC, params=WORKER)
    assert response.status_code == 404
    assert "ScaledObject ns/worker not found" in response.json()["message"]
    direct = await pair.direct.get(METRIC, params=WORKER, headers={FORWARDED: "replica-b"})
    assert direct.headers.get(HOLDS_NOTHING) == "true"


async def test_the_owner_answering_again_ends_the_streak(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "metrics_adapter.api.forward")
    pair.owner.mode = "bad_gateway"
    await pair.client.get(METRIC, params=WORKER)
    pair.owner.mode = "ok"
    assert (await pair.client.get(METRIC, params=WORKER)).status_code == 200
    pair.owner.mode = "bad_gateway"
    await pair.client.get(METRIC, params=WORKER)
    levels = [r.levelname for r in caplog.records if r.name == "metrics_adapter.api.forward"]
    assert levels == ["WARNING", "INFO", "WARNING"]


async def test_a_peer_whose_certificate_we_do_not_trust_is_refused(
    pair: Pair, tmp_path: Path
) -> None:
    """A peer serving a certificate of another issuer gets no request, and its answer is not
    one: our last good value, then 503."""
    await pair.client.get(METRIC, params=WORKER)  # a good answer to fall back on
    rogue_cert, rogue_key = self_signed_pair(tmp_path / "rogue", SERVICE_NAME)
    rogue = OwnerApp(create_app(store_with(666), Health()))
    async with owner_server(rogue, rogue_cert, rogue_key) as rogue_url:
        app = create_app(
            pair.local, Health(), forward=(Fixed(Peer("rogue", rogue_url)), pair.forwarder)
        )
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            stale = await client.get(METRIC, params=WORKER)
            pair.clock.now += STALE_FOR + 1
            refused = await client.get(METRIC, params=WORKER)
    assert rogue.seen == []
    assert stale.status_code == 200 and stale.json()["items"][0]["value"] == "7"
    assert refused.status_code == 503
    assert "certificate" in refused.json()["message"].lower()


async def test_a_replica_just_handed_an_object_serves_the_last_answer_it_forwarded(
    pair: Pair,
) -> None:
    """Ownership moved to this replica (its Route names nobody else) before its first poll:
    the answer it last forwarded stands in while young enough, then its own 503."""
    forwarded = await pair.client.get(METRIC, params=WORKER)
    assert forwarded.json()["items"][0]["value"] == "7"
    pair.route.peer = None
    worker = ObjectRef("ns", "worker")
    pair.local.unregister(worker)
    pair.local.register(worker, ["s0-cron"])  # reconciled here, not polled yet
    handed = await pair.client.get(METRIC, params=WORKER)
    assert handed.status_code == 200 and handed.content == forwarded.content
    assert pair.count("stale") == 1
    pair.clock.now += STALE_FOR + 1
    own = await pair.client.get(METRIC, params=WORKER)
    assert own.status_code == 503 and "has no value yet" in own.json()["message"]


async def test_an_answer_given_here_stands_in_when_the_object_moves_back(pair: Pair) -> None:
    """The replica's own answers are remembered too: it polled the object, lost it and got
    it back before polling it again (a member came and went)."""
    pair.route.peer = None
    own = await pair.client.get(METRIC, params=WORKER)
    assert own.json()["items"][0]["value"] == "3"
    worker = ObjectRef("ns", "worker")
    pair.local.unregister(worker)
    again = await pair.client.get(METRIC, params=WORKER)
    assert again.status_code == 200 and again.content == own.content


async def test_a_rotated_serving_certificate_is_trusted_from_the_next_hop(
    pair: Pair, tmp_path: Path
) -> None:
    """Every replica serves the one Secret's pair; when it is rotated, a peer that loaded
    the new pair is refused until this replica serves it too, then reached again."""
    old_cert, _ = self_signed_pair(tmp_path / "old", SERVICE_NAME)
    new_cert, new_key = self_signed_pair(tmp_path / "new", SERVICE_NAME)
    served = {"pem": old_cert.read_bytes()}
    forwarder = Forwarder("replica-b", lambda: served["pem"], authorization=bearer, timeout=TIMEOUT)
    rotated = OwnerApp(create_app(store_with(7), Health(loaded=True, poller_running=lambda: True)))
    try:
        async with owner_server(rotated, new_cert, new_key) as owner_url:
            app = create_app(
                pair.local, Health(), forward=(Fixed(Peer("rotated", owner_url)), forwarder)
            )
            async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
                before = await client.get(METRIC, params=WORKER)
                served["pem"] = new_cert.read_bytes()
                after = await client.get(METRIC, params=WORKER)
    finally:
        await forwarder.aclose()
    assert before.status_code == 503 and "certificate" in before.json()["message"].lower()
    assert after.status_code == 200 and after.json()["items"][0]["value"] == "7"
    assert len(rotated.seen) == 1


@pytest.mark.parametrize(("exists", "code"), [(True, 503), (False, 404)])
async def test_an_object_just_handed_here_is_unavailable_not_missing(
    pair: Pair, exists: bool, code: int
) -> None:
    """This replica owns the object but has not bound it yet, and gave no answer for it to
    fall back on: a 503 saying so when its watch has the object (the HPA keeps its
    replicas), a 404 when it does not exist."""
    app = create_app(MetricStore(), Health(), forward=(Fixed(None, exists), pair.forwarder))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get(METRIC, params=WORKER)
    assert answer.status_code == code, answer.text
    if exists:
        assert "has no value yet" in answer.json()["message"]
        assert "just handed to this replica" in answer.json()["message"]
