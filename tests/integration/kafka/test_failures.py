"""Reading Kafka fails loudly: unreachable, slow, or not what the trigger needs. Never a zero."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers import kafka
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.kafka_client import connect
from tests.support.kafka import KafkaBroker, commit, create_topic, produce
from tests.support.servers import free_port
from tests.support.triggers import new_poller, scaled_object

from .helpers import read, scaler

pytestmark = pytest.mark.integration


async def test_nothing_listening_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SourceUnreachable) as info:
        await read(scaler(address, "g", "t"))
    message = str(info.value)
    assert message.startswith(f"kafka {address}: cannot bootstrap: {address}: ")
    assert "Connect call failed" in message or "refused" in message


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    """Something that is not Kafka: answers every connection with an HTTP error."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(64)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_is_not_kafka_is_unreachable(http_server: str) -> None:
    with pytest.raises(SourceUnreachable, match=f"kafka {http_server}: cannot bootstrap"):
        await read(scaler(http_server, "g", "t"))


async def test_a_missing_topic_is_an_error(kafka_broker: KafkaBroker, name: str) -> None:
    with pytest.raises(SourceResponseError) as info:
        await read(scaler(kafka_broker.bootstrap, "g", f"{name}-nope"))
    assert str(info.value) == (
        f'kafka {kafka_broker.bootstrap}: offsets of group "g" on topic "{name}-nope": '
        f'topic "{name}-nope" does not exist'
    )


async def test_a_limitation_matching_no_partition_is_an_error(
    kafka_broker: KafkaBroker, name: str
) -> None:
    await create_topic(kafka_broker.bootstrap, f"{name}-t", 2)
    s = scaler(kafka_broker.bootstrap, "g", f"{name}-t", partitionLimitation="4-8")
    with pytest.raises(SourceResponseError, match=r"none of its partitions \(0, 1\)"):
        await read(s)


# Authentication that the broker refuses.


async def test_a_wrong_password_is_unreachable_and_says_why(kafka_broker: KafkaBroker) -> None:
    address = kafka_broker.address("SASL_PLAINTEXT")
    s = scaler(address, "g", "t", {"username": "alice", "password": "wrong"}, sasl="scram_sha256")
    with pytest.raises(SourceUnreachable) as info:
        await read(s)
    assert str(info.value).startswith(
        f"kafka {address} (SASL_PLAINTEXT, SCRAM-SHA-256 as alice): cannot bootstrap:"
    )
    assert "SaslAuthenticationFailed" in str(info.value)
    assert "wrong" not in str(info.value)


async def test_tls_without_the_required_client_certificate(kafka_broker: KafkaBroker) -> None:
    assert kafka_broker.pki is not None
    s = scaler(kafka_broker.address("SSL"), "g", "t", {"ca": kafka_broker.pki.ca_pem}, tls="enable")
    with pytest.raises(SourceUnreachable, match=r"\(SSL\): cannot bootstrap"):
        await read(s)


async def test_tls_with_a_ca_that_did_not_sign_the_broker(kafka_broker: KafkaBroker) -> None:
    # The system's CAs did not sign the test broker's certificate.
    s = scaler(
        kafka_broker.address("SASL_SSL"),
        "g",
        "t",
        {"sasl": "plaintext", "username": "alice", "password": "alice-secret"},
        tls="enable",
    )
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await read(s)


async def test_a_ca_that_is_not_pem_fails_at_tls_setup(kafka_broker: KafkaBroker) -> None:
    s = scaler(kafka_broker.address("SSL"), "g", "t", {"ca": "not a certificate"}, tls="enable")
    with pytest.raises(SourceUnreachable, match=r"\(SSL\): cannot set up TLS"):
        await read(s)


# A broker that goes away, or stops answering, and comes back.


async def test_a_stopped_broker_keeps_the_error_not_a_zero_then_recovers(
    own_broker: KafkaBroker,
) -> None:
    bootstrap = own_broker.bootstrap
    await create_topic(bootstrap, "jobs", 2)
    await produce(bootstrap, "jobs", {0: 4, 1: 4})
    await commit(bootstrap, "workers", {("jobs", 0): 1, ("jobs", 1): 1})
    poller = new_poller(3)
    store, clients = poller.store, poller.clients
    metadata = {"bootstrapServers": bootstrap, "consumerGroup": "workers", "topic": "jobs"}
    so = parse_scaled_object(
        scaled_object("consumer", "default", {"type": "kafka", "metadata": metadata})
    )
    [bound] = bind(so, Inventory())
    assert isinstance(bound.scaler, kafka.KafkaScaler)
    query, key = bound.scaler.query, bound.metric_name.lower()
    poller.set_triggers(so.ref, [bound])
    try:
        await poller.poll(query)
        assert store.readings(so.ref)[key].value == 6
        before = await connect(clients, query.backend)
        own_broker.stop()
        await poller.poll(query)
        reading = store.readings(so.ref)[key]
        assert reading.error is not None and reading.error.startswith(f"kafka {bootstrap}: ")
        assert (reading.value, reading.active, reading.failures) == (6, False, 1)
        own_broker.start()
        await poller.poll(query)
        reading = store.readings(so.ref)[key]
        assert (reading.error, reading.value) == (None, 6)
        assert await connect(clients, query.backend) is not before  # dropped and reopened
    finally:
        await clients.aclose()


async def test_a_frozen_broker_times_out_then_recovers(own_broker: KafkaBroker) -> None:
    bootstrap = own_broker.bootstrap
    await create_topic(bootstrap, "jobs", 1)
    await produce(bootstrap, "jobs", {0: 3})
    s = scaler(bootstrap, "workers", "jobs", offsetResetPolicy="earliest")
    poller = new_poller(1)
    clients = poller.clients
    try:
        assert (await read(s, clients)).metric == 3
        own_broker.pause()
        try:
            with pytest.raises(SourceTimeout) as info:
                await read(s, clients)
            # Through the poller, whose own timeout cuts the query short: the same error.
            with pytest.raises(SourceTimeout) as cut:
                await poller.fetch(s.query)
        finally:
            own_broker.resume()
        message = (
            f'kafka {bootstrap}: offsets of group "workers" on topic "jobs": no answer within 1s'
        )
        assert str(info.value) == str(cut.value) == message
        assert (await read(s, clients)).metric == 3
    finally:
        await clients.aclose()
