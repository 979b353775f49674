"""The trigger metadata the artemis-queue tests write, as a user would, and queue states."""

from __future__ import annotations

import contextlib

from scalers.artemis import KIND, ArtemisScaler
from tests.support.artemis import BROKER, PASSWORD, USER, ArtemisBroker
from tests.support.stomp import holding
from tests.support.triggers import build

AUTH = {"username": USER, "password": PASSWORD}
ANYCAST = {"destination-type": "ANYCAST", "subscription-type": "ANYCAST"}


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


def filled(
    broker: ArtemisBroker, queue: str, state: tuple[int, int, int]
) -> contextlib.AbstractAsyncContextManager[None]:
    """``queue`` (on its own address) in ``state``: see :func:`tests.support.stomp.holding`."""
    return holding(broker.port, (USER, PASSWORD), queue, state, ANYCAST)
