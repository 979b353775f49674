"""activemq against Debian's ActiveMQ 5.17: what KEDA would compute for real queue states.

Messages are sent over STOMP; a consumer takes some and acknowledges some of those. The
broker's ``QueueSize`` counts every message not yet acknowledged, those delivered to a
consumer included, and it is exact at once: the table expects exact values.
"""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active
from tests.integration.activemq.helpers import filled, metadata, scaler
from tests.support.activemq import BROKER, PASSWORD, USER, ActiveMQBroker
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

# (sent, delivered to a consumer, of which acknowledged)
EMPTY = (0, 0, 0)
BACKLOG = (25, 0, 0)
IN_FLIGHT = (25, 5, 0)
ACKED = (25, 5, 5)
TWENTY = (20, 0, 0)
TWENTY_ONE = (21, 0, 0)

# (queue state, trigger metadata) -> (value, active, HPA replicas = ceil(value / target))
FIDELITY = [
    (EMPTY, {}, 0, False, 0),
    (BACKLOG, {}, 25, True, 3),
    (IN_FLIGHT, {}, 25, True, 3),
    (ACKED, {}, 20, True, 2),
    (BACKLOG, {"targetQueueSize": "5"}, 25, True, 5),
    (BACKLOG, {"targetQueueSize": "30"}, 25, True, 1),
    (TWENTY, {"activationTargetQueueSize": "20"}, 20, False, 2),
    (TWENTY_ONE, {"activationTargetQueueSize": "20"}, 21, True, 3),
]


def _row_id(row: tuple[tuple[int, int, int], dict[str, str], int, bool, int]) -> str:
    (sent, delivered, acked), meta, *_ = row
    flags = ",".join(f"{k}={v}" for k, v in meta.items()) or "defaults"
    return f"{sent}sent-{delivered}delivered-{acked}acked-{flags}"


@pytest.mark.parametrize(
    ("state", "meta", "value", "active", "replicas"), FIDELITY, ids=[_row_id(r) for r in FIDELITY]
)
async def test_fidelity(
    activemq: ActiveMQBroker,
    queue: str,
    state: tuple[int, int, int],
    meta: dict[str, str],
    value: int,
    active: bool,
    replicas: int,
) -> None:
    s = scaler(metadata(activemq, queue, **meta))
    async with filled(activemq, queue, state):
        measured = await measure(s)
        assert measured == activemq.queue_size(queue) == value  # the broker agrees
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"activemq-{queue}"


async def test_a_rest_api_template_reads_the_same_queue(
    activemq: ActiveMQBroker, queue: str
) -> None:
    async with filled(activemq, queue, (7, 0, 0)):
        template = (
            f"http://{activemq.endpoint}/api/jolokia/read/org.apache.activemq:type=Broker,"
            f"brokerName={BROKER},destinationType=Queue,destinationName={queue}/QueueSize"
        )
        s = scaler({"restAPITemplate": template})
        assert await measure(s) == 7
        assert s.metric_name == f"activemq-{queue}"
        # KEDA's default URL is exactly this one: the two triggers ask one question.
        assert s.query == scaler(metadata(activemq, queue)).query


async def test_the_login_from_the_scale_targets_environment(
    activemq: ActiveMQBroker, queue: str
) -> None:
    async with filled(activemq, queue, (3, 0, 0)):
        meta = metadata(activemq, queue, usernameFromEnv="AMQ_USER", passwordFromEnv="AMQ_PASS")
        s = scaler(meta, {}, AMQ_USER=USER, AMQ_PASS=PASSWORD)
        assert await measure(s) == 3
