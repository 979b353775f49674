"""The trigger metadata the activemq tests write, as a user would."""

from __future__ import annotations

from scalers.activemq import KIND, ActiveMQScaler
from tests.support.activemq import BROKER, PASSWORD, USER, ActiveMQBroker
from tests.support.stomp import Stomp
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


async def producer(broker: ActiveMQBroker) -> Stomp:
    return await Stomp.connect(broker.stomp_port, USER, PASSWORD)
