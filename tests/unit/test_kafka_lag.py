"""``kafka``: one trigger's lag out of a group's offsets, table-driven against KEDA's rules."""

from __future__ import annotations

from typing import Any

import pytest

from scalers import kafka
from scalers.base import is_active
from scalers.errors import Problems, SourceResponseError
from scalers.kafka_client import GroupOffsets, TopicOffsets
from scalers.params import TriggerInputs

NONE = -1  # what OffsetFetch answers for a partition never committed


def scaler(**metadata: str) -> kafka.KafkaScaler:
    problems = Problems()
    fields = {"bootstrapServers": "kafka:9092", "consumerGroup": "g", "topic": "t", **metadata}
    built = kafka.KIND.create(TriggerInputs(fields), problems)
    assert not problems, list(problems)
    assert isinstance(built, kafka.KafkaScaler)
    return built


def topic(
    latest: list[int], committed: list[int], earliest: dict[int, int] | None = None
) -> TopicOffsets:
    return TopicOffsets(
        partitions=tuple(range(len(latest))),
        committed=dict(enumerate(committed)),
        latest=dict(enumerate(latest)),
        earliest=earliest or {},
    )


def answer(*topics: tuple[str, TopicOffsets]) -> GroupOffsets:
    return GroupOffsets("g", dict(topics))


def one(latest: list[int], committed: list[int], earliest: dict[int, int] | None = None) -> Any:
    return answer(("t", topic(latest, committed, earliest)))


# (offsets, trigger metadata) -> (metric value, KEDA's activity)
ROWS = [
    # lag = log end - committed, summed
    ("sum", one([10, 10, 10], [5, 7, 10]), {}, 8, True),
    ("zero lag", one([10, 10], [10, 10]), {}, 0, False),
    # no commit (-1)
    ("-1 latest: 1 each", one([10, 10, 10], [NONE, NONE, 4]), {}, 8, True),
    (
        "-1 latest, scaleToZero",
        one([10, 10], [NONE, NONE]),
        {"scaleToZeroOnInvalidOffset": "true"},
        0,
        False,
    ),
    (
        "-1 earliest: log end",
        one([10, 4], [NONE, NONE]),
        {"offsetResetPolicy": "earliest"},
        14,
        True,
    ),
    (
        "-1 earliest: minus deleted history (#7937)",
        one([10, 4], [NONE, NONE], {0: 7, 1: 4}),
        {"offsetResetPolicy": "earliest"},
        3,
        True,
    ),
    (
        "-1 earliest, scaleToZero",
        one([10, 4], [NONE, NONE]),
        {"offsetResetPolicy": "earliest", "scaleToZeroOnInvalidOffset": "true"},
        0,
        False,
    ),
    # the cap at the partition count: lag/threshold (integer) above the bound
    ("cap", one([100, 100, 100], [0, 0, 0]), {}, 30, True),
    ("cap: not above the bound", one([10, 10, 10], [0, 0, 0]), {"lagThreshold": "10"}, 30, True),
    ("cap: 15/4 = 3 is not above 3", one([15, 0, 0], [0, 0, 0]), {"lagThreshold": "4"}, 15, True),
    ("cap: 16/4 = 4 is above 3", one([16, 0, 0], [0, 0, 0]), {"lagThreshold": "4"}, 12, True),
    (
        "allowIdleConsumers: no cap",
        one([100, 100, 100], [0, 0, 0]),
        {"allowIdleConsumers": "true"},
        300,
        True,
    ),
    # limitToPartitionsWithLag: the bound is the partitions with lag
    (
        "partitions with lag",
        one([50, 10, 10], [0, 10, 10]),
        {"limitToPartitionsWithLag": "true"},
        10,
        True,
    ),
    (
        "partitions with lag: none",
        one([10, 10], [10, 10]),
        {"limitToPartitionsWithLag": "true"},
        0,
        False,
    ),
    # ensureEvenDistributionOfPartitions: a factor of the partition count x threshold
    (
        "even: 25 -> 3 of 6",
        one([5] * 6, [0, 0, 0, 0, 0, 5]),
        {"ensureEvenDistributionOfPartitions": "true"},
        30,
        True,
    ),
    (
        "even: 30 -> 3 of 6",
        one([5] * 6, [0] * 6),
        {"ensureEvenDistributionOfPartitions": "true"},
        30,
        True,
    ),
    (
        "even: 31 on 7 -> 7",
        one([5] * 6 + [1], [0] * 7),
        {"ensureEvenDistributionOfPartitions": "true"},
        70,
        True,
    ),
    (
        "even: 45 -> 6",
        one([10, 10, 10, 10, 5, 0], [0] * 6),
        {"ensureEvenDistributionOfPartitions": "true"},
        60,
        True,
    ),
    (
        "even: over the bound",
        one([100] * 6, [0] * 6),
        {"ensureEvenDistributionOfPartitions": "true"},
        60,
        True,
    ),
    # KEDA's quirk: no lag still rounds up to one factor, while the trigger stays inactive.
    (
        "even: no lag -> 1",
        one([5] * 6, [5] * 6),
        {"ensureEvenDistributionOfPartitions": "true"},
        10,
        False,
    ),
    (
        "even with allowIdleConsumers still caps",
        one([100] * 4, [0] * 4),
        {"ensureEvenDistributionOfPartitions": "true", "allowIdleConsumers": "true"},
        40,
        True,
    ),
    # partitionLimitation narrows the partitions, and so the cap
    (
        "partitionLimitation",
        one([10, 20, 30], [0, 0, 0]),
        {"partitionLimitation": "0,2", "allowIdleConsumers": "true"},
        40,
        True,
    ),
    (
        "partitionLimitation range",
        one([10, 20, 30], [0, 0, 0]),
        {"partitionLimitation": "1-2", "lagThreshold": "5"},
        10,
        True,
    ),
    (
        "partitionLimitation outside",
        one([10, 20], [0, 0]),
        {"partitionLimitation": "1,7"},
        10,
        True,
    ),
    # activation compares the total lag, strictly
    ("activation: equal is inactive", one([7], [0]), {"activationLagThreshold": "7"}, 7, False),
    ("activation: above", one([8], [0]), {"activationLagThreshold": "7"}, 8, True),
    (
        "activation: capped metric, real lag",
        one([100], [0]),
        {"activationLagThreshold": "50"},
        10,
        True,
    ),
    # committed ahead of the log end: a negative lag, summed like KEDA
    ("negative lag", one([5, 10], [8, 4]), {}, 3, True),
    ("negative total", one([5], [30]), {}, -25, False),
]


@pytest.mark.parametrize(
    ("offsets", "metadata", "value", "active"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_lag_table(
    offsets: GroupOffsets, metadata: dict[str, str], value: int, active: bool
) -> None:
    s = scaler(**metadata)
    lag = s.lag(offsets)
    assert lag.metric == value
    measured = s.measure(offsets)
    assert measured.value == float(value)
    assert s.is_active(lag) is active
    # The poller decides activity the same way, from the measurement's activity number.
    assert is_active(measured.activity, s.activation_target) is active


def test_a_partition_missing_from_the_log_end_answer_counts_nothing() -> None:
    offsets = TopicOffsets(
        partitions=(0, 1, 2), committed={0: 0, 1: 0, 2: 0}, latest={0: 50, 2: 50}
    )
    # 100 over 2 answered partitions: capped at 2 x 10, the missing one adds neither lag nor room.
    assert scaler().lag(answer(("t", offsets))).metric == 20


def test_all_topics_of_the_group_are_summed() -> None:
    s = scaler(topic="")
    both = answer(("a", topic([5, 5, 5], [2, 2, 2])), ("b", topic([4, 4], [1, NONE])))
    assert s.metric_name == "kafka-g-topics"
    assert s.lag(both).metric == 9 + 3 + 1
    # the cap counts every topic's partitions: 5 partitions x 1
    assert scaler(topic="", lagThreshold="1").lag(both).metric == 5


def test_partition_limitation_is_ignored_without_a_topic() -> None:
    s = scaler(topic="", partitionLimitation="0", allowIdleConsumers="true")
    assert s.lag(answer(("a", topic([5, 5], [0, 0])))).metric == 10


def test_a_group_with_no_commits_and_no_topic_has_no_lag() -> None:
    """KEDA #8104: not the lag of every topic of the cluster."""
    lag = scaler(topic="").lag(GroupOffsets("g", {}))
    assert (lag.metric, lag.total) == (0, 0)


def test_exclude_persistent_lag_across_polls() -> None:
    s = scaler(excludePersistentLag="true", allowIdleConsumers="true")
    first = s.lag(one([10, 10, 10], [5, 5, NONE]))
    assert (first.metric, first.total) == (5 + 5 + 1, 11)
    # Nothing consumed since: stuck partitions count 0 for the metric, but still for activity.
    second = s.lag(one([12, 10, 10], [5, 5, NONE]))
    assert (second.metric, second.total) == (1, 7 + 5 + 1)
    assert s.is_active(second)
    # Partition 0 moved on: it counts again; partition 1 is still stuck.
    third = s.lag(one([12, 10, 10], [9, 5, NONE]))
    assert (third.metric, third.total) == (3 + 1, 3 + 5 + 1)
    # Stuck with no lag is just no lag.
    fourth = s.lag(one([12, 10, 10], [12, 10, NONE]))
    assert (fourth.metric, fourth.total) == (1, 1)


def test_each_trigger_remembers_its_own_polls() -> None:
    shared = one([10], [4])
    a, b = scaler(excludePersistentLag="true"), scaler(excludePersistentLag="true")
    assert a.lag(shared).metric == 6
    assert a.lag(one([10], [4])).metric == 0
    assert b.lag(shared).metric == 6  # b has seen only one poll


def test_reading_one_answer_twice_is_one_poll() -> None:
    """The poller measures a trigger again on the last answer when its object is re-set."""
    s = scaler(excludePersistentLag="true")
    shared = one([10], [4])
    assert s.measure(shared).value == 6
    assert s.measure(shared).value == 6
    assert s.measure(one([10], [4])).value == 0


def test_persistent_lag_is_not_capped_away_from_activation() -> None:
    s = scaler(excludePersistentLag="true", limitToPartitionsWithLag="true")
    s.lag(one([100, 100], [0, 0]))
    lag = s.lag(one([100, 100], [0, 0]))
    assert (lag.metric, lag.total, s.is_active(lag)) == (0, 200, True)


def test_a_limitation_matching_no_partition_is_an_error() -> None:
    with pytest.raises(SourceResponseError) as info:
        scaler(partitionLimitation="5-9").lag(one([1, 1], [0, 0]))
    assert str(info.value) == (
        'topic "t": none of its partitions (0, 1) is in partitionLimitation "5-9"'
    )


def test_a_partition_without_its_committed_offset_is_an_error() -> None:
    offsets = TopicOffsets(partitions=(0,), committed={}, latest={0: 3})
    with pytest.raises(SourceResponseError, match='topic "t" partition 0: no committed offset'):
        scaler().lag(answer(("t", offsets)))


@pytest.mark.parametrize("garbage", [None, {}, [], "offsets", 0])
def test_garbage_is_an_error_never_a_zero(garbage: Any) -> None:
    with pytest.raises(SourceResponseError, match="kafka answer is a"):
        scaler().measure(garbage)
