"""artemis-queue against Artemis 2.40: what KEDA would compute for real queue states.

Messages are sent over STOMP; a consumer takes some and acknowledges some of those. The
broker's ``MessageCount`` counts every message in the queue, those being delivered
included, and it is exact at once: the table expects exact values. KEDA's default
``activationQueueLength`` is 10, so ten messages are not yet active.
"""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active
from tests.integration.artemis.helpers import filled, metadata, scaler, template
from tests.support.artemis import ArtemisBroker
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

# (sent, delivered to a consumer, of which acknowledged)
EMPTY = (0, 0, 0)
BACKLOG = (25, 0, 0)
IN_FLIGHT = (25, 5, 0)
ACKED = (25, 5, 5)

# (queue state, trigger metadata) -> (value, active, HPA replicas = ceil(value / queueLength))
FIDELITY = [
    (EMPTY, {}, 0, False, 0),
    (BACKLOG, {}, 25, True, 3),
    (IN_FLIGHT, {}, 25, True, 3),
    (ACKED, {}, 20, True, 2),
    ((10, 0, 0), {}, 10, False, 1),
    ((11, 0, 0), {}, 11, True, 2),
    ((3, 0, 0), {"activationQueueLength": "0"}, 3, True, 1),
    (BACKLOG, {"queueLength": "5"}, 25, True, 5),
    (BACKLOG, {"queueLength": "30", "activationQueueLength": "24"}, 25, True, 1),
    (BACKLOG, {"activationQueueLength": "25"}, 25, False, 3),
]


def _row_id(row: tuple[tuple[int, int, int], dict[str, str], int, bool, int]) -> str:
    (sent, delivered, acked), meta, *_ = row
    flags = ",".join(f"{k}={v}" for k, v in meta.items()) or "defaults"
    return f"{sent}sent-{delivered}delivered-{acked}acked-{flags}"


@pytest.mark.parametrize(
    ("state", "meta", "value", "active", "replicas"), FIDELITY, ids=[_row_id(r) for r in FIDELITY]
)
async def test_fidelity(
    artemis: ArtemisBroker,
    queue: str,
    state: tuple[int, int, int],
    meta: dict[str, str],
    value: int,
    active: bool,
    replicas: int,
) -> None:
    s = scaler(metadata(artemis, queue, **meta))
    async with filled(artemis, queue, state):
        measured = await measure(s)
        assert measured == artemis.message_count(queue, queue) == value  # the broker agrees
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"artemis-{queue}"


async def test_a_rest_api_template_reads_the_same_queue(artemis: ArtemisBroker, queue: str) -> None:
    async with filled(artemis, queue, (7, 0, 0)):
        s = scaler({"restApiTemplate": template(artemis, queue)})
        assert await measure(s) == 7
        # As KEDA takes the names out of the template: quotes and all.
        assert s.metric_name == f'artemis-"{queue}"'
        # KEDA's default URL is exactly this one: the two triggers ask one question.
        assert s.query == scaler(metadata(artemis, queue)).query
        # Quotes written %22 read the same queue (KEDA would panic on them).
        encoded = scaler({"restApiTemplate": template(artemis, queue).replace('"', "%22")})
        assert await measure(encoded) == 7
        assert encoded.metric_name == s.metric_name
