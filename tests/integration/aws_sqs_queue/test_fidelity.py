"""aws-sqs-queue against moto: what KEDA would compute for real queue states.

moto's counts are exact and immediate (SQS's are approximate and lag by up to a minute), so
the table can expect exact values. In-flight messages are received with a 15-minute
visibility timeout and delayed ones sent with DelaySeconds=900: no clock moves them.
"""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active, normalize
from scalers.errors import SourceResponseError
from tests.integration.aws_sqs_queue.helpers import metadata, scaler
from tests.support.moto import MotoServer, make_queue
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

# (visible, in flight, delayed)
MIXED = (7, 4, 3)
IN_FLIGHT_ONLY = (0, 3, 0)
DELAYED_ONLY = (0, 0, 4)
EMPTY = (0, 0, 0)

# (queue state, trigger metadata) -> (value, active, HPA replicas = ceil(value / queueLength))
FIDELITY = [
    (MIXED, {}, 11, True, 3),
    (MIXED, {"scaleOnInFlight": "false"}, 7, True, 2),
    (MIXED, {"scaleOnDelayed": "true"}, 14, True, 3),
    (MIXED, {"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, 10, True, 2),
    (MIXED, {"queueLength": "2"}, 11, True, 6),
    (MIXED, {"queueLength": "20"}, 11, True, 1),
    (MIXED, {"activationQueueLength": "10"}, 11, True, 3),
    (MIXED, {"activationQueueLength": "11"}, 11, False, 3),
    (IN_FLIGHT_ONLY, {}, 3, True, 1),
    (IN_FLIGHT_ONLY, {"scaleOnInFlight": "false"}, 0, False, 0),
    (DELAYED_ONLY, {}, 0, False, 0),
    (DELAYED_ONLY, {"scaleOnDelayed": "true"}, 4, True, 1),
    (DELAYED_ONLY, {"scaleOnDelayed": "true", "activationQueueLength": "4"}, 4, False, 1),
    (EMPTY, {"scaleOnDelayed": "true"}, 0, False, 0),
]


def _row_id(row: tuple[tuple[int, int, int], dict[str, str], int, bool, int]) -> str:
    (visible, in_flight, delayed), meta, *_ = row
    flags = ",".join(f"{k}={v}" for k, v in meta.items()) or "defaults"
    return f"{visible}visible-{in_flight}inflight-{delayed}delayed-{flags}"


@pytest.mark.parametrize(
    ("state", "meta", "value", "active", "replicas"), FIDELITY, ids=[_row_id(r) for r in FIDELITY]
)
async def test_fidelity(
    moto: MotoServer,
    queue_name: str,
    state: tuple[int, int, int],
    meta: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    visible, in_flight, delayed = state
    url = await make_queue(moto, queue_name, visible=visible, in_flight=in_flight, delayed=delayed)
    s = scaler(metadata(moto, url, **meta))
    measured = await measure(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"aws-sqs-{queue_name}"


async def test_fifo_queue_counts_and_its_normalised_name(moto: MotoServer, queue_name: str) -> None:
    url = await make_queue(moto, f"{queue_name}.fifo", visible=5, fifo=True)
    s = scaler(metadata(moto, url))
    assert await measure(s) == 5
    assert s.metric_name == normalize(f"aws-sqs-{queue_name}.fifo") == f"aws-sqs-{queue_name}-fifo"


async def test_a_queue_named_without_url_is_read_by_name(moto: MotoServer, queue_name: str) -> None:
    # KEDA's docs allow the queue's simple name in queueURL; moto, like SQS, accepts it.
    await make_queue(moto, queue_name, visible=2)
    s = scaler(metadata(moto, queue_name))
    assert s.metric_name == f"aws-sqs-{queue_name}"
    assert await measure(s) == 2


async def test_queue_url_from_the_workload_env(moto: MotoServer, queue_name: str) -> None:
    url = await make_queue(moto, queue_name, visible=3)
    meta = metadata(moto, "", queueURLFromEnv="QUEUE_URL")
    del meta["queueURL"]
    assert await measure(scaler(meta, env={"QUEUE_URL": url})) == 3


async def test_a_missing_queue_is_an_error_naming_it(moto: MotoServer, queue_name: str) -> None:
    s = scaler(metadata(moto, moto.queue_url(queue_name)))
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert str(info.value).endswith(
        f'queue "{queue_name}" does not exist (or not in this region and account)'
    )
    assert str(info.value).startswith(f"SQS GetQueueAttributes {moto.queue_url(queue_name)} at ")


async def test_the_region_chooses_the_queue(moto: MotoServer, queue_name: str) -> None:
    # moto's URLs carry no region; its queues, like SQS's, live in the region of the request.
    url = await make_queue(moto, queue_name, visible=1)
    with pytest.raises(SourceResponseError, match=r"\(eu-west-1\): queue .* does not exist"):
        await measure(scaler(metadata(moto, url, awsRegion="eu-west-1")))
    url = await make_queue(moto, queue_name, visible=4, region="eu-west-1")
    assert await measure(scaler(metadata(moto, url, awsRegion="eu-west-1"))) == 4
