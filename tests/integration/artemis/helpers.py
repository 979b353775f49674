"""The trigger metadata the artemis-queue tests write, as a user would, and queue states."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from scalers.artemis import KIND, ArtemisScaler
from tests.support.artemis import BROKER, PASSWORD, USER, ArtemisBroker
from tests.support.stomp import Stomp
from tests.support.triggers import build

AUTH = {"username": USER, "password": PASSWORD}
ANYCAST = {"destination-type": "ANYCAST"}


def metadata(broker: ArtemisBroker, queue: str, **extra: str) -> dict[str, str]:
    """A trigger on ``queue``, on the address of the same name (the ``queue`` fixture's)."""
    return {
        "managementEndpoint": broker.endpoint,
        "brokerName": BROKER,
        "brokerAddress": queue,
        "queueName": queue,
        **extra,
    }


def template(broker: ArtemisBroker, queue: str, host: str | None = None) -> str:
    """KEDA's default URL for ``queue``, written out as a restApiTemplate."""
    mbean = broker.queue_mbean(queue, queue)
    return f"http://{host or broker.endpoint}/console/jolokia/read/{mbean}/MessageCount"


def scaler(meta: dict[str, str], auth: dict[str, str] | None = None) -> ArtemisScaler:
    return build(KIND, ArtemisScaler, meta, AUTH if auth is None else auth)


@contextlib.asynccontextmanager
async def filled(
    broker: ArtemisBroker, queue: str, state: tuple[int, int, int]
) -> AsyncIterator[None]:
    """``queue`` with ``state`` = (sent, delivered, of which acknowledged) until the block
    ends: messages sent over STOMP, a consumer holding its unacknowledged deliveries."""
    sent, delivered, acked = state
    stomp = await Stomp.connect(broker.port, USER, PASSWORD)
    try:
        await stomp.send(queue, sent, ANYCAST)
    finally:
        await stomp.close()
    consumer: Stomp | None = None
    try:
        if delivered:
            consumer = await Stomp.connect(broker.port, USER, PASSWORD)
            # Artemis sends a client-acknowledging subscriber one message at a time unless
            # its window is opened.
            window = {"subscription-type": "ANYCAST", "consumer-window-size": "-1"}
            await consumer.subscribe(queue, window)
            messages = [await consumer.receive() for _ in range(delivered)]
            for message in messages[:acked]:
                await consumer.ack(message)
        yield
    finally:
        if consumer is not None:
            await consumer.close()
