"""nats-jetstream against a real nats-server: lag, errors, and one request per distinct query."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers import nats_jetstream
from scalers.errors import SourceResponseError, SourceUnreachable
from tests.support import jetstream, triggers
from tests.support.nats import NatsServer
from tests.support.triggers import build, new_poller
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration


def scaler(server: NatsServer, **metadata: str) -> nats_jetstream.NatsJetStreamScaler:
    fields = {
        "natsServerMonitoringEndpoint": server.monitoring_endpoint,
        "account": "$G",
        "stream": "JOBS",
        "consumer": "workers",
        **metadata,
    }
    return build(nats_jetstream.KIND, nats_jetstream.NatsJetStreamScaler, fields)


async def test_lag_is_pending_plus_ack_pending(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=50)
    assert await measure(scaler(nats_server)) == 50
    await jetstream.consume(nats_server.url, "JOBS", "workers", fetch=5, ack=3)
    # 45 never delivered + 2 delivered and not acked, as KEDA counts it.
    assert await measure(scaler(nats_server)) == 47


async def test_account_id_is_matched_like_the_name(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=3)
    s = scaler(nats_server, account="", accountID="$G")
    assert await measure(s) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"consumer": "nobody"}, 'consumer "nobody" not found in stream "JOBS"'),
        ({"stream": "NOPE"}, 'stream "NOPE" not found in account "$G"'),
        ({"account": "ACME"}, 'account "ACME" not found'),
    ],
)
async def test_missing_objects_are_errors_never_zero(
    nats_server: NatsServer, override: dict[str, str], message: str
) -> None:
    # nats-server 2.9 answers an unknown account with every account; 2.10.14+ with none.
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=5)
    with pytest.raises(SourceResponseError, match=message.replace("$", r"\$")):
        await measure(scaler(nats_server, **override))


async def test_server_down_is_unreachable(nats_server: NatsServer) -> None:
    s = scaler(nats_server)
    nats_server.stop()
    with pytest.raises(SourceUnreachable, match=r"GET http://127\.0\.0\.1:\d+/jsz"):
        await measure(s)


async def test_https_against_plain_monitoring_fails_clearly(nats_server: NatsServer) -> None:
    with pytest.raises(SourceUnreachable, match="https://"):
        await measure(scaler(nats_server, useHttps="true"))


def so_doc(name: str, endpoint: str, consumer: str) -> dict[str, Any]:
    metadata = {
        "natsServerMonitoringEndpoint": endpoint,
        "account": "$G",
        "stream": "JOBS",
        "consumer": consumer,
        "lagThreshold": "10",
    }
    return triggers.so_doc(name, metadata, "nats-jetstream")


async def test_one_jsz_request_per_poll_serves_every_consumer(nats_server: NatsServer) -> None:
    consumers = [f"c{i}" for i in range(10)]
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", consumers, publish=12)
    poller = new_poller(2)
    store, clients = poller.store, poller.clients
    inventory = Inventory()
    # 200 ScaledObjects, 20 per consumer: 200 triggers, 1 distinct query (endpoint + account).
    bound = []
    for i in range(200):
        so = parse_scaled_object(
            so_doc(f"so{i}", nats_server.monitoring_endpoint, consumers[i % 10])
        )
        bound = list(bind(so, inventory))
        poller.set_triggers(so.ref, bound)
    assert poller.query_count == 1
    try:
        before = nats_server.requests_served("/jsz")
        await poller.poll(bound[0].scaler.query)
        assert nats_server.requests_served("/jsz") - before == 1
        for i in range(200):
            body = store.answer("default", f"so{i}", "s0-nats-jetstream-JOBS")
            assert b'"value":"12"' in body
    except BaseException:
        await clients.aclose()
        raise

    # Running on its schedule: one request per poll, not two hundred.
    before = nats_server.requests_served("/jsz")
    try:
        (polls,) = (await triggers.run_until_polled(poller, bound, 3)).values()
    finally:
        await clients.aclose()
    # Plus at most the poll in flight when the poller stopped.
    assert polls <= nats_server.requests_served("/jsz") - before <= polls + 1


async def test_a_stopped_server_keeps_the_error_and_not_a_zero(nats_server: NatsServer) -> None:
    await jetstream.prepare(nats_server.url, "JOBS", "jobs", ["workers"], publish=7)
    poller = new_poller(1)
    store, clients, telemetry = poller.store, poller.clients, poller.telemetry
    so = parse_scaled_object(so_doc("w", nats_server.monitoring_endpoint, "workers"))
    (bound,) = bind(so, Inventory())
    poller.set_triggers(so.ref, [bound])
    await poller.poll(bound.scaler.query)
    assert store.readings(so.ref)[bound.metric_name.lower()].value == 7
    nats_server.stop()
    await poller.poll(bound.scaler.query)
    reading = store.readings(so.ref)[bound.metric_name.lower()]
    assert reading.error is not None and "GET http://" in reading.error
    assert reading.value == 7 and not reading.active and reading.failures == 1
    errors = telemetry.registry.get_sample_value(
        "keda_scaler_detail_errors_total",
        {
            "namespace": "default",
            "metric": bound.metric_name,
            "scaledObject": "w",
            "scaler": "natsJetStreamScaler",
            "triggerIndex": "0",
            "type": "scaledobject",
        },
    )
    assert errors == 1
    nats_server.restart()
    await poller.poll(bound.scaler.query)
    assert store.readings(so.ref)[bound.metric_name.lower()].error is None
    await clients.aclose()
