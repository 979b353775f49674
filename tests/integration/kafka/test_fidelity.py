"""The fidelity table: broker state made with aiokafka → KEDA's metric, activity and replicas.

Each row creates its own topic and group on the session broker: messages per partition,
committed offsets (``None``: never committed, so OffsetFetch answers -1), optionally records
deleted as retention would. Replicas are what the HPA asks for with an AverageValue target:
``ceil(value / lagThreshold)``. Activity is KEDA's: total lag (persistent lag included) above
``activationLagThreshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from scalers.clients import Clients
from tests.support.kafka import KafkaBroker, commit, create_topic, delete_records, produce

from .helpers import read, scaler

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Row:
    id: str
    messages: list[int]
    commits: list[int | None]
    metadata: dict[str, str]
    value: int
    active: bool
    replicas: int
    deleted: dict[int, int] = field(default_factory=dict)


N = None
ROWS = [
    Row("lag summed", [6, 4, 8], [1, 4, 3], {"lagThreshold": "5"}, 10, True, 2),
    Row("no lag", [6, 4, 8], [6, 4, 8], {}, 0, False, 0),
    Row("-1, latest: 1 each", [6, 4, 8], [N, N, N], {}, 3, True, 1),
    Row("-1 on one partition", [6, 4, 8], [6, N, 2], {}, 7, True, 1),
    Row(
        "-1, latest, scaleToZero",
        [6, 4, 8],
        [N, N, N],
        {"scaleToZeroOnInvalidOffset": "true"},
        0,
        False,
        0,
    ),
    Row(
        "-1, earliest: log end",
        [6, 4, 8],
        [N, N, N],
        {"offsetResetPolicy": "earliest"},
        18,
        True,
        2,
    ),
    Row(
        "-1, earliest: retained only (#7937)",
        [6, 4, 8],
        [N, N, N],
        {"offsetResetPolicy": "earliest"},
        2 + 4 + 0,
        True,
        1,
        deleted={0: 4, 2: 8},
    ),
    Row(
        "-1, earliest, scaleToZero",
        [6, 4, 8],
        [N, N, N],
        {"offsetResetPolicy": "earliest", "scaleToZeroOnInvalidOffset": "true"},
        0,
        False,
        0,
    ),
    Row("capped at the partition count", [30, 30, 30], [0, 0, 0], {}, 30, True, 3),
    Row("cap: 90/30 is not above 3", [30, 30, 30], [0, 0, 0], {"lagThreshold": "30"}, 90, True, 3),
    Row("allowIdleConsumers", [30, 30, 30], [0, 0, 0], {"allowIdleConsumers": "true"}, 90, True, 9),
    Row(
        "partitionLimitation",
        [6, 4, 8],
        [0, 0, 0],
        {"partitionLimitation": "0,2", "allowIdleConsumers": "true"},
        14,
        True,
        2,
    ),
    Row(
        "partitionLimitation narrows the cap",
        [6, 4, 8],
        [0, 0, 0],
        {"partitionLimitation": "1-2", "lagThreshold": "1"},
        2,
        True,
        2,
    ),
    Row(
        "limitToPartitionsWithLag",
        [30, 5, 5],
        [0, 5, 5],
        {"limitToPartitionsWithLag": "true", "lagThreshold": "5"},
        5,
        True,
        1,
    ),
    Row(
        "even distribution: 30 → 3 of 6",
        [5] * 6,
        [0] * 6,
        {"ensureEvenDistributionOfPartitions": "true"},
        30,
        True,
        3,
    ),
    Row(
        "even distribution: 30 → 6 of 6",
        [5] * 6,
        [0] * 6,
        {"ensureEvenDistributionOfPartitions": "true", "lagThreshold": "4"},
        24,
        True,
        6,
    ),
    Row(
        "even distribution, no lag: 1, inactive",
        [5] * 6,
        [5] * 6,
        {"ensureEvenDistributionOfPartitions": "true"},
        10,
        False,
        1,
    ),
    Row("activation: equal is inactive", [7], [0], {"activationLagThreshold": "7"}, 7, False, 1),
    Row(
        "activation on the lag, not the capped value",
        [100],
        [0],
        {"activationLagThreshold": "50"},
        10,
        True,
        1,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_fidelity(kafka_broker: KafkaBroker, name: str, row: Row) -> None:
    bootstrap, topic, group = kafka_broker.bootstrap, f"{name}-t", f"{name}-g"
    await create_topic(bootstrap, topic, len(row.messages))
    await produce(bootstrap, topic, dict(enumerate(row.messages)))
    commits = {(topic, p): o for p, o in enumerate(row.commits) if o is not None}
    if commits:
        await commit(bootstrap, group, commits)
    if row.deleted:
        await delete_records(bootstrap, topic, row.deleted)
    s = scaler(bootstrap, group, topic, **row.metadata)
    lag = await read(s)
    replicas = math.ceil(lag.metric / s.target)
    assert (lag.metric, s.is_active(lag), replicas) == (row.value, row.active, row.replicas)
    assert s.metric_name == f"kafka-{topic}"


async def test_without_topic_every_topic_the_group_committed_to(
    kafka_broker: KafkaBroker, name: str
) -> None:
    bootstrap, group = kafka_broker.bootstrap, f"{name}-g"
    a, b, other = f"{name}-a", f"{name}-b", f"{name}-other"
    for topic, messages in ((a, [5, 5, 5]), (b, [4, 4]), (other, [50])):
        await create_topic(bootstrap, topic, len(messages))
        await produce(bootstrap, topic, dict(enumerate(messages)))
    # Partition 1 of b never committed: -1, so 1 (latest); topic "other" is not the group's.
    await commit(bootstrap, group, {(a, 0): 2, (a, 1): 2, (a, 2): 2, (b, 0): 1})
    s = scaler(bootstrap, group, None)
    lag = await read(s)
    assert s.metric_name == f"kafka-{group}-topics"
    assert (lag.metric, s.is_active(lag), math.ceil(lag.metric / s.target)) == (13, True, 2)
    # The cap counts the partitions of both topics: 5.
    assert (await read(scaler(bootstrap, group, None, lagThreshold="1"))).metric == 5
    # partitionLimitation needs a topic: ignored here, as in KEDA.
    limited = scaler(bootstrap, group, None, partitionLimitation="0", allowIdleConsumers="true")
    assert (await read(limited)).metric == 13


async def test_a_group_with_no_commits_and_no_topic_has_no_lag(
    kafka_broker: KafkaBroker, name: str
) -> None:
    """Not the lag of every topic in the cluster (KEDA #8104)."""
    await create_topic(kafka_broker.bootstrap, f"{name}-t", 2)
    await produce(kafka_broker.bootstrap, f"{name}-t", {0: 9, 1: 9})
    lag = await read(scaler(kafka_broker.bootstrap, f"{name}-nobody", None))
    assert (lag.metric, lag.total) == (0, 0)


async def test_exclude_persistent_lag_across_polls(kafka_broker: KafkaBroker, name: str) -> None:
    bootstrap, topic, group = kafka_broker.bootstrap, f"{name}-t", f"{name}-g"
    await create_topic(bootstrap, topic, 3)
    await produce(bootstrap, topic, {0: 5, 1: 5, 2: 5})
    await commit(bootstrap, group, {(topic, 0): 2, (topic, 1): 2})
    s = scaler(bootstrap, group, topic, excludePersistentLag="true", allowIdleConsumers="true")
    clients = Clients(timeout=5)
    try:
        first = await read(s, clients)
        assert (first.metric, first.total) == (3 + 3 + 1, 7)
        # New messages, nothing consumed: partitions 0 and 1 are stuck, 2 never committed.
        await produce(bootstrap, topic, {0: 3})
        second = await read(s, clients)
        assert (second.metric, second.total, s.is_active(second)) == (1, 6 + 3 + 1, True)
        # Partition 0 moves on and counts again; partition 1 is still stuck.
        await commit(bootstrap, group, {(topic, 0): 4})
        third = await read(s, clients)
        assert (third.metric, third.total) == (4 + 1, 4 + 3 + 1)
    finally:
        await clients.aclose()


async def test_new_partitions_count_on_the_next_poll(kafka_broker: KafkaBroker, name: str) -> None:
    """Partitions are read from metadata every poll, as KEDA describes the topic every time."""
    bootstrap, topic, group = kafka_broker.bootstrap, f"{name}-t", f"{name}-g"
    await create_topic(bootstrap, topic, 2)
    await produce(bootstrap, topic, {0: 10, 1: 10})
    await commit(bootstrap, group, {(topic, 0): 10, (topic, 1): 5})
    s = scaler(bootstrap, group, topic, lagThreshold="1")
    clients = Clients(timeout=5)
    try:
        assert (await read(s, clients)).metric == 2  # 5, capped at 2 partitions
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=4)})
        finally:
            await admin.close()
        await produce(bootstrap, topic, {2: 3, 3: 3})
        # 5 + 1 + 1 (two partitions never committed, latest policy), capped at 4 partitions.
        lag = await read(s, clients)
        assert (lag.metric, lag.total) == (4, 7)
    finally:
        await clients.aclose()
