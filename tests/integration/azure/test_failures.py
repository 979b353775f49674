"""azure-queue and azure-blob when the account cannot be read: each an error naming what
failed, never a zero, and never the key, the SAS or the connection string."""

from __future__ import annotations

import logging
import re

import pytest

from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from scalers import azure_queue
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.azure.helpers import blob_trigger, bound, queue_trigger
from tests.support.azurite import KEY, Azurite, wrong_key
from tests.support.servers import free_port
from tests.support.triggers import measure_once

pytestmark = pytest.mark.integration


async def test_a_wrong_key_is_refused_naming_the_key_not_showing_it(
    queues: Azurite, blobs: Azurite, name: str
) -> None:
    queues.create_queue(name)
    blobs.create_container(name)
    key = wrong_key()
    for s in (
        queue_trigger(queues, {"queueName": name}, connection=queues.connection_string(key)),
        blob_trigger(blobs, {"blobContainerName": name}, connection=blobs.connection_string(key)),
    ):
        with pytest.raises(SourceResponseError) as error:
            await measure_once(s)
        message = str(error.value)
        assert "HTTP 403 Authori" in message or "HTTP 403 Authenti" in message  # blob, queue
        assert "check the AccountKey of the connection string" in message
        assert key not in message and KEY not in message
        assert "SharedKey" in message


async def test_an_account_sas_reads_and_a_forged_one_is_refused(
    queues: Azurite, blobs: Azurite, name: str
) -> None:
    queues.create_queue(name)
    queues.send(name, 3)
    blobs.create_container(name)
    blobs.put_blobs(name, "one", "two")
    q_sas, b_sas = queues.account_sas(), blobs.account_sas()
    for strategy in ("all", "visibleonly"):
        meta = {"queueName": name, "queueLengthStrategy": strategy}
        s = queue_trigger(queues, meta, connection=queues.connection_string(sas=q_sas))
        assert await measure_once(s) == 3
    s = blob_trigger(
        blobs, {"blobContainerName": name}, connection=blobs.connection_string(sas=b_sas)
    )
    assert await measure_once(s) == 2

    forged = blobs.account_sas(key=wrong_key())
    s = blob_trigger(
        blobs, {"blobContainerName": name}, connection=blobs.connection_string(sas=forged)
    )
    with pytest.raises(SourceResponseError) as error:
        await measure_once(s)
    message = str(error.value)
    assert "HTTP 403 " in message
    assert "check the SharedAccessSignature of the connection string" in message
    assert "sig=" not in message and "sv=" not in message
    signature = dict(p.split("=", 1) for p in forged.split("&"))["sig"]
    assert signature not in message


async def test_an_unknown_queue_or_container_is_an_error(
    queues: Azurite, blobs: Azurite, name: str
) -> None:
    for strategy in ("all", "visibleonly"):
        meta = {"queueName": name, "queueLengthStrategy": strategy}
        with pytest.raises(SourceResponseError, match="HTTP 404 QueueNotFound"):
            await measure_once(queue_trigger(queues, meta))
    with pytest.raises(SourceResponseError, match="HTTP 404 ContainerNotFound") as error:
        await measure_once(blob_trigger(blobs, {"blobContainerName": name}))
    assert f"{blobs.endpoint}/{name}?restype=container&comp=list" in str(error.value)


async def test_nothing_listening_is_unreachable(queues: Azurite) -> None:
    closed = free_port()
    connection = queues.connection_string().replace(f":{queues.port}/", f":{closed}/")
    s = queue_trigger(queues, {"queueName": "orders"}, connection=connection)
    with pytest.raises(SourceUnreachable, match=f"127.0.0.1:{closed}/devstoreaccount1/orders"):
        await measure_once(s)


async def test_a_paused_service_times_out_then_recovers(blobs: Azurite, name: str) -> None:
    blobs.create_container(name)
    blobs.put_blobs(name, "one")
    s = blob_trigger(blobs, {"blobContainerName": name})
    blobs.pause()
    try:
        with pytest.raises(SourceTimeout, match=re.escape("no answer within 0.5s")):
            await measure_once(s, client_timeout=0.5)
    finally:
        blobs.resume()
    assert await measure_once(s) == 1


async def test_a_failed_poll_logs_no_credential_and_keeps_no_value(
    queues: Azurite, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the poller, as serve runs it: the error is recorded and logged, the store
    has no value for the trigger, and neither the key nor the connection string shows."""
    queues.create_queue(name)
    key = wrong_key()
    connection = queues.connection_string(key)
    s = queue_trigger(queues, {"queueName": name}, connection=connection)
    trigger = bound("so", azure_queue.KIND, s)
    store, clients = MetricStore(), Clients(timeout=3)
    poller = Poller(store, clients, Telemetry())
    poller.set_triggers(trigger.so, [trigger])
    caplog.set_level(logging.DEBUG)
    try:
        await poller.poll(s.query)
    finally:
        await clients.aclose()
    reading = store.readings(trigger.so)[trigger.metric_name.lower()]
    assert reading.value is None and not reading.healthy
    assert reading.error is not None and "HTTP 403 " in reading.error
    assert "HTTP 403" in caplog.text
    for secret in (key, KEY, connection):
        assert secret not in caplog.text
        assert secret not in repr(s) and secret not in repr(s.query)
