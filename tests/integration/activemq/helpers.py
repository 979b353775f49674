"""The trigger metadata the activemq tests write, as a user would, and queue states."""

from __future__ import annotations

import contextlib

from scalers.activemq import KIND, ActiveMQScaler
from tests.support.activemq import BROKER, PASSWORD, USER, ActiveMQBroker
from tests.support.stomp import holding
from tests.support.triggers import build

AUTH = {"username": USER, "password": PASSWORD}


def metadata(broker: ActiveMQBroker, queue: str, **extra: str) -> dict[str, str]:
    return {
        "managementEndpoint": broker.endpoint,
        "brokerName": BROKER,
        "destinationName": queue,
        **extra,
    }


def scaler(meta: dict[str, str], auth: dict[str, str] | None = None, **env: str) -> ActiveMQScaler:
    return build(KIND, ActiveMQScaler, meta, AUTH if auth is None else auth, env or None)


def filled(
    broker: ActiveMQBroker, queue: str, state: tuple[int, int, int]
) -> contextlib.AbstractAsyncContextManager[None]:
    """``queue`` in ``state``: see :func:`tests.support.stomp.holding`."""
    return holding(broker.stomp_port, (USER, PASSWORD), f"/queue/{queue}", state)
