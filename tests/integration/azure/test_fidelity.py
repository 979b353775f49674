"""azure-queue and azure-blob against Azurite: what KEDA would compute for real queues and
containers.

Azurite's counts are exact and immediate. Received messages stay invisible for ten minutes
and delayed ones are sent with a ten-minute visibility timeout: no clock moves them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from scalers import azure_blob
from scalers.base import is_active
from tests.integration.azure.helpers import blob_trigger, queue_trigger
from tests.support.azurite import Azurite
from tests.support.triggers import measure_once

pytestmark = pytest.mark.integration

# (visible, received, delayed)
MIXED = (7, 4, 3)
MANY_VISIBLE = (40, 2, 0)
EXACTLY_PEEKED = (32, 0, 1)
JUST_UNDER = (31, 5, 0)
EMPTY = (0, 0, 0)
VISIBLE_ONLY = {"queueLengthStrategy": "visibleonly"}

# (queue state, trigger metadata) -> (value, active, HPA replicas = ceil(value / queueLength))
QUEUES = [
    (MIXED, {}, 14, True, 3),
    (MIXED, {"queueLength": "2"}, 14, True, 7),
    (MIXED, {"activationQueueLength": "13"}, 14, True, 3),
    (MIXED, {"activationQueueLength": "14"}, 14, False, 3),
    (MIXED, VISIBLE_ONLY, 7, True, 2),
    # 32 peeked: there may be more, so KEDA reads the approximate count of all messages
    (MANY_VISIBLE, VISIBLE_ONLY, 42, True, 9),
    (EXACTLY_PEEKED, VISIBLE_ONLY, 33, True, 7),
    (JUST_UNDER, VISIBLE_ONLY, 31, True, 7),
    (JUST_UNDER, {}, 36, True, 8),
    (EMPTY, {}, 0, False, 0),
    (EMPTY, VISIBLE_ONLY, 0, False, 0),
]


def _queue_id(row: tuple[tuple[int, int, int], dict[str, str], int, bool, int]) -> str:
    (visible, received, delayed), meta, *_ = row
    flags = ",".join(f"{k}={v}" for k, v in meta.items()) or "defaults"
    return f"{visible}visible-{received}received-{delayed}delayed-{flags}"


@pytest.fixture(scope="module")
def queue_of(queues: Azurite) -> Callable[[tuple[int, int, int]], str]:
    """The queue in a state, filled once for every row that reads it (reading changes
    nothing: peeking hides no message)."""
    made: dict[tuple[int, int, int], str] = {}

    def queue(state: tuple[int, int, int]) -> str:
        if state not in made:
            visible, received, delayed = state
            made[state] = name = f"state-{visible}-{received}-{delayed}"
            queues.create_queue(name)
            queues.send(name, visible + received)
            queues.receive(name, received)
            queues.send(name, delayed, delay=600)
        return made[state]

    return queue


@pytest.mark.parametrize(
    ("state", "meta", "value", "active", "replicas"), QUEUES, ids=[_queue_id(r) for r in QUEUES]
)
async def test_queue_fidelity(
    queues: Azurite,
    queue_of: Callable[[tuple[int, int, int]], str],
    state: tuple[int, int, int],
    meta: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    name = queue_of(state)
    s = queue_trigger(queues, {"queueName": name, **meta})
    measured = await measure_once(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"azure-queue-{name}"


BLOBS = (
    "a.json",
    "b.txt",
    "in/1.json",
    "in/2.json",
    "in/3.txt",
    "in/sub/4.json",
    "in/sub/deep/5.json",
    "other/6.json",
)


@pytest.fixture(scope="module")
def container(blobs: Azurite) -> str:
    """One container holding :data:`BLOBS`, for every row (a listing changes nothing)."""
    blobs.create_container("fidelity")
    blobs.put_blobs("fidelity", *BLOBS)
    return "fidelity"


# trigger metadata -> (value, active, HPA replicas = ceil(value / blobCount))
CONTAINERS = [
    ({}, 2, True, 1),  # directly under the root: "directories" are not blobs
    ({"blobPrefix": "in"}, 3, True, 1),  # the prefix gets the delimiter: in/
    ({"blobPrefix": "in/sub"}, 1, True, 1),
    ({"blobPrefix": "in", "recursive": "true"}, 5, True, 1),
    ({"recursive": "true"}, 8, True, 2),
    ({"recursive": "true", "blobCount": "1"}, 8, True, 8),
    ({"blobDelimiter": "."}, 0, False, 0),  # every name holds a ".": all are "directories"
    ({"blobPrefix": "nothing"}, 0, False, 0),
    ({"activationBlobCount": "1"}, 2, True, 1),
    ({"activationBlobCount": "2"}, 2, False, 1),
    # globs match the whole name of every blob under the prefix, at any depth; * crosses /
    ({"globPattern": "*.json"}, 6, True, 2),
    ({"globPattern": "/in/*.json"}, 4, True, 1),  # a leading / is dropped
    ({"globPattern": "*.json", "blobPrefix": "in"}, 4, True, 1),
    ({"globPattern": "in/?.json"}, 2, True, 1),
    ({"globPattern": "{a,b}.*"}, 2, True, 1),
    ({"globPattern": "in/[12].json"}, 2, True, 1),
    ({"globPattern": "in/[!1].*"}, 2, True, 1),
    ({"globPattern": "in/**/*.json"}, 2, True, 1),
    ({"globPattern": "*.csv"}, 0, False, 0),
]


@pytest.mark.parametrize(
    ("meta", "value", "active", "replicas"),
    CONTAINERS,
    ids=[",".join(f"{k}={v}" for k, v in r[0].items()) or "defaults" for r in CONTAINERS],
)
async def test_blob_fidelity(
    blobs: Azurite,
    container: str,
    meta: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    s = blob_trigger(blobs, {"blobContainerName": container, **meta})
    measured = await measure_once(s)
    assert measured == value
    assert is_active(measured, s.activation_target) is active
    assert math.ceil(measured / s.target) == replicas
    assert s.metric_name == f"azure-blob-{container}"


async def test_a_listing_of_many_pages_counts_every_page(
    blobs: Azurite, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEDA reads every page of a listing (5,000 blobs each): with pages of 2, seven blobs
    take four requests, and the glob counts over all of them."""
    monkeypatch.setattr(azure_blob, "PAGE_SIZE", 2)
    blobs.create_container(name)
    blobs.put_blobs(name, *(f"b{i}.json" for i in range(6)), "c.txt")
    before = len(blobs.requests())
    assert await measure_once(blob_trigger(blobs, {"blobContainerName": name})) == 7
    assert len(blobs.requests()) - before == 4
    glob = blob_trigger(blobs, {"blobContainerName": name, "globPattern": "*.json"})
    assert await measure_once(glob) == 6
