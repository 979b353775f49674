"""The Kafka watcher's bookkeeping (:class:`LogEnds`): answers in, positions and hints out."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaError

from scalers.kafka_client import EARLIEST, LATEST
from scalers.wake import NoWake, Wake, wake_of
from scalers.wake_kafka import PARTITION_BYTES, GroupTopics, KafkaWatch, LogEnds
from tests.support.triggers import trigger


def metadata(topic: str, leaders: dict[int, int], error: int = 0) -> dict[str, Any]:
    partitions = [{"partition": p, "leader": leader} for p, leader in leaders.items()]
    return {"topic": topic, "error_code": error, "partitions": partitions}


def offsets(topic: str, found: dict[int, int], error: int = 0) -> dict[str, Any]:
    rows = [{"partition": p, "offset": o, "error_code": error} for p, o in found.items()]
    return {"topic": topic, "partitions": rows}


def watching(**topics: dict[int, int]) -> LogEnds:
    """Ends of ``topics`` (name → partition → log end), all led by broker 1."""
    ends = LogEnds()
    ends.apply_metadata(topics, [metadata(t, dict.fromkeys(ps, 1)) for t, ps in topics.items()])
    ends.set_offsets([offsets(t, ps) for t, ps in topics.items()])
    return ends


def test_a_new_topic_starts_at_its_log_end_and_a_later_partition_at_its_start() -> None:
    ends = LogEnds()
    added, refused = ends.apply_metadata(["jobs"], [metadata("jobs", {0: 1, 1: 2})])
    assert (added, refused) == ({"jobs"}, {})
    assert ends.pending == {("jobs", 0): LATEST, ("jobs", 1): LATEST}
    assert ends.offset_requests() == {1: [("jobs", [(0, LATEST)])], 2: [("jobs", [(1, LATEST)])]}
    assert ends.set_offsets([offsets("jobs", {0: 7, 1: 3})])
    assert ends.positions == {("jobs", 0): 7, ("jobs", 1): 3} and not ends.pending
    added, _ = ends.apply_metadata(["jobs"], [metadata("jobs", {0: 1, 1: 2, 2: 1})])
    assert added == set()
    # Created since the topic was first read: whatever it holds is new.
    assert ends.pending == {("jobs", 2): EARLIEST}


def test_topics_no_longer_wanted_are_dropped() -> None:
    ends = watching(a={0: 1}, b={0: 2})
    ends.apply_metadata(["b"], [metadata("b", {0: 1})])
    assert ends.positions == {("b", 0): 2} and ends.resolved == {"b"}


def test_a_missing_or_forbidden_topic_is_refused_and_a_leaderless_partition_waits() -> None:
    ends = watching(a={0: 5, 1: 6})
    added, refused = ends.apply_metadata(
        ["a", "gone", "secret"],
        [
            metadata("a", {0: -1, 1: 1}),
            metadata("gone", {}, error=3),
            metadata("secret", {}, error=29),
        ],
    )
    assert added == set()
    assert refused == {
        "gone": "the topic does not exist",
        "secret": "not authorized for this topic (the watcher needs DESCRIBE and READ on it)",
    }
    assert ends.positions == {("a", 0): 5, ("a", 1): 6}  # an election keeps the position


def test_a_transient_metadata_error_changes_nothing() -> None:
    ends = watching(a={0: 5})
    assert ends.apply_metadata(["a"], [metadata("a", {}, error=5)]) == (set(), {})
    assert ends.positions == {("a", 0): 5}


def test_a_failed_list_offsets_is_asked_again() -> None:
    ends = LogEnds()
    ends.apply_metadata(["a"], [metadata("a", {0: 1})])
    assert not ends.set_offsets([offsets("a", {0: -1}, error=6)])
    assert ends.pending == {("a", 0): LATEST} and not ends.positions


def test_fetches_go_to_each_leader_at_each_position() -> None:
    ends = watching(a={0: 5, 1: 6}, b={0: 9})
    ends.leaders[("a", 1)] = 2
    assert ends.fetch_requests() == {
        1: [("a", [(0, 5, PARTITION_BYTES)]), ("b", [(0, 9, PARTITION_BYTES)])],
        2: [("a", [(1, 6, PARTITION_BYTES)])],
    }


def row(partition: int, code: int, high: int) -> tuple[Any, ...]:
    """A Fetch v11 partition: (partition, error, high watermark, ..., records)."""
    return (partition, code, high, high, 0, None, -1, b"")


def test_a_higher_watermark_is_a_hint_and_the_new_position() -> None:
    ends = watching(a={0: 5, 1: 6})
    sent = {("a", 0): 5, ("a", 1): 6}
    woken, refused, refresh = ends.absorb(sent, [("a", [row(0, 0, 5), row(1, 0, 8)])])
    assert (woken, refused, refresh) == ({"a"}, {}, False)
    assert ends.positions == {("a", 0): 5, ("a", 1): 8}
    # The same answer again is stale: the position moved on since that request.
    assert ends.absorb(sent, [("a", [row(1, 0, 9)])]) == (set(), {}, False)


def test_an_answer_for_a_dropped_partition_is_ignored() -> None:
    ends = watching(a={0: 5})
    ends.apply_metadata([], [])
    assert ends.absorb({("a", 0): 5}, [("a", [row(0, 0, 9)])]) == (set(), {}, False)


def test_out_of_range_finds_the_end_again_and_hints() -> None:
    ends = watching(a={0: 5})
    woken, _, refresh = ends.absorb({("a", 0): 5}, [("a", [row(0, 1, -1)])])
    assert (woken, refresh) == ({"a"}, True)
    assert ends.pending == {("a", 0): LATEST} and not ends.positions


@pytest.mark.parametrize("code", [3, 6, 74, 75])
def test_a_moved_leader_keeps_the_position_and_reads_metadata(code: int) -> None:
    ends = watching(a={0: 5})
    assert ends.absorb({("a", 0): 5}, [("a", [row(0, code, -1)])]) == (set(), {}, True)
    assert ends.positions == {("a", 0): 5}


def test_a_refused_fetch_names_the_topic() -> None:
    ends = watching(a={0: 5})
    _, refused, _ = ends.absorb({("a", 0): 5}, [("a", [row(0, 29, -1)])])
    assert list(refused) == ["a"]


def test_another_error_ends_the_session() -> None:
    ends = watching(a={0: 5})
    with pytest.raises(KafkaError):
        ends.absorb({("a", 0): 5}, [("a", [row(0, 87, -1)])])


def kafka_wake(topic: str | None, auth: dict[str, str] | None = None, **meta: str) -> Wake | NoWake:
    fields = {"bootstrapServers": "b:9092,a:9092", "consumerGroup": "g", **meta}
    if topic is not None:
        fields["topic"] = topic
    return wake_of(trigger("kafka", fields, auth))


def test_triggers_of_one_cluster_and_identity_share_a_watcher() -> None:
    alice = {"sasl": "plaintext", "username": "alice", "password": "alice-secret"}
    first = kafka_wake("jobs", alice)
    assert isinstance(first, Wake) and isinstance(first.watcher, KafkaWatch)
    assert first.topic == "jobs"
    # Another group and topic, the servers in another order: the same connection.
    same = kafka_wake("other", alice, consumerGroup="h", bootstrapServers="a:9092,b:9092")
    assert isinstance(same, Wake) and same.watcher == first.watcher
    bob = kafka_wake("jobs", {**alice, "username": "bob"})
    assert isinstance(bob, Wake) and bob.watcher != first.watcher
    assert "alice-secret" not in repr(first.watcher) + first.watcher.describe()
    assert first.watcher.describe() == "kafka a:9092,b:9092 (SASL_PLAINTEXT, PLAIN as alice)"


def test_a_trigger_without_topic_is_woken_by_its_groups_topics() -> None:
    found = kafka_wake(None)
    assert isinstance(found, Wake) and found.topic == GroupTopics("g")
    other = kafka_wake("jobs")
    assert isinstance(other, Wake) and found.watcher == other.watcher
