"""Kafka wake hints: a group-less long Fetch at the log end of every watched topic.

A watcher keeps one connection per broker set and identity (the trigger's TLS and SASL),
separate from the polls' (a broker answers one connection's requests in order, and a Fetch
waits). It learns each watched partition's log end (ListOffsets), then asks each leader for
everything after it with ``min_bytes=1`` and a wait of :data:`FETCH_WAIT_MS`: the broker
holds the Fetch until a record is appended, so an append on an idle topic answers it within
a round trip. A high watermark past the offset asked for is a hint for that topic. A trigger
without ``topic`` (every topic its group committed to, as KEDA reads it) is watched as
:class:`GroupTopics`: the group's topics are read with OffsetFetch at each metadata read.

Nothing else is touched: no group joined, no offset committed (the consumer groups'
offsets and lag stay exactly as they were), no records decoded (:data:`PARTITION_BYTES`
keeps what the broker sends to one batch per Fetch, whatever the compression), nothing
created. :class:`LogEnds` is the bookkeeping, free of I/O; :class:`KafkaWatcher` its session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiokafka.errors import for_code
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from scalers.kafka_client import EARLIEST, LATEST, KafkaBackend, KafkaConnection
from scalers.wake import HintCallback, Topic, Watcher, WatchOptions, finish

WAKE_CLIENT_ID = "metrics-adapter-wake"
"""The watcher's client id, apart from the polls' ``metrics-adapter`` in the broker's logs."""
FETCH_WAIT_MS = 500
"""How long a broker holds a Fetch with nothing new (Kafka's own ``fetch.max.wait.ms``)."""
PARTITION_BYTES = 1
"""Bytes asked per partition: the broker still returns the first batch of the first partition
with data (KIP-74) and the high watermark of every partition, which is all a hint needs."""
REFETCH_GAP = 0.1
"""Seconds at least between two Fetches to one broker: under a flood each Fetch is answered
at once, and ten a second per broker is plenty for hints the service rate-limits anyway."""
REFRESH = 10.0
"""Seconds between metadata reads: partitions added, leaders moved, topics created."""

Key = tuple[str, int]
"""(topic, partition)."""

_MOVED = {3, 5, 6, 74, 75, 100}
"""UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN
LEADER_EPOCH, UNKNOWN_TOPIC_ID: keep the position, read the metadata again."""
_OUT_OF_RANGE = 1
_COORDINATOR_MOVED = {14, 15, 16}
"""COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR."""
_REFUSED = {29: "not authorized for this topic (the watcher needs DESCRIBE and READ on it)"}


@dataclass(frozen=True, slots=True)
class KafkaWatch:
    """One wake watcher per broker set and identity."""

    backend: KafkaBackend
    source_type: ClassVar[str] = "kafka"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return KafkaWatcher(self, on_hint, options)

    def describe(self) -> str:
        return self.backend.describe()


@dataclass(frozen=True, slots=True)
class GroupTopics:
    """What wakes a trigger without ``topic``: a record on any topic its group has committed
    to, as OffsetFetch tells at each metadata read (a read: it moves no offset)."""

    group: str


@dataclass
class LogEnds:
    """Where each watched partition is read from, and which broker leads it."""

    positions: dict[Key, int] = field(default_factory=dict)
    leaders: dict[Key, int] = field(default_factory=dict)
    pending: dict[Key, int] = field(default_factory=dict)
    """Partitions without a position yet → the ListOffsets timestamp to find it with."""
    resolved: set[str] = field(default_factory=set)
    """Topics whose metadata was read: a partition found later is new, read from its start."""
    denied: dict[str, float] = field(default_factory=dict)
    """Topics a Fetch was refused for → when (monotonic) to try them again."""

    def forget(self, topic: str) -> None:
        """Stop reading ``topic``; found again, it starts over at its log end."""
        for key in [k for k in self.leaders if k[0] == topic]:
            self._drop(key)
        self.resolved.discard(topic)

    def apply_metadata(
        self, wanted: Iterable[str], topics: Iterable[Mapping[str, Any]]
    ) -> tuple[set[str], dict[str, str]]:
        """Take a Metadata answer for ``wanted``: (topics now watched for the first time,
        topic → why it cannot be watched). Partitions of topics no longer wanted go."""
        wanted = set(wanted)
        for key in [k for k in self.leaders if k[0] not in wanted]:
            self._drop(key)
        self.resolved &= wanted
        added: set[str] = set()
        refused: dict[str, str] = {}
        for topic in topics:
            name, code = topic["topic"], topic["error_code"]
            if name not in wanted:
                continue
            if code == 3:
                refused[name] = "the topic does not exist"
            elif code in _REFUSED:
                refused[name] = _REFUSED[code]
            elif code:  # LEADER_NOT_AVAILABLE and the like: as it was, until the next read
                continue
            if name in refused:
                self.forget(name)
                continue
            start = EARLIEST if name in self.resolved else LATEST
            if name not in self.resolved:
                added.add(name)
                self.resolved.add(name)
            for partition in topic["partitions"]:
                key, leader = (name, partition["partition"]), partition["leader"]
                if leader < 0:
                    continue  # an election is under way: it keeps its position meanwhile
                if key not in self.leaders and key not in self.positions:
                    self.pending[key] = start
                self.leaders[key] = leader
        return added, refused

    def _drop(self, key: Key) -> None:
        self.leaders.pop(key, None)
        self.positions.pop(key, None)
        self.pending.pop(key, None)

    def offset_requests(self) -> dict[int, list[tuple[str, list[tuple[int, int]]]]]:
        """Leader → ListOffsets topics for the partitions that need a position."""
        return _by_leader(
            {k: ts for k, ts in self.pending.items() if k in self.leaders}, self.leaders
        )

    def set_offsets(self, topics: Iterable[Mapping[str, Any]]) -> bool:
        """Take a ListOffsets answer; False if some partition must be asked again."""
        complete = True
        for topic in topics:
            for partition in topic["partitions"]:
                key = (topic["topic"], partition["partition"])
                if key not in self.pending:
                    continue
                if partition["error_code"]:
                    complete = False
                    continue
                self.positions[key] = partition["offset"]
                del self.pending[key]
        return complete

    def fetch_requests(self) -> dict[int, list[tuple[str, list[tuple[int, int, int]]]]]:
        """Leader → the Fetch topics of its partitions, each at its position."""
        by_leader = _by_leader(self.positions, self.leaders)
        return {
            node: [(t, [(p, offset, PARTITION_BYTES) for p, offset in ps]) for t, ps in topics]
            for node, topics in by_leader.items()
        }

    def absorb(
        self, sent: Mapping[Key, int], answer: Iterable[tuple[str, Iterable[Any]]]
    ) -> tuple[set[str], dict[str, str], bool]:
        """Take a Fetch answer to a request made at the ``sent`` positions: (topics with
        new records, topic → refusal, whether the metadata must be read again)."""
        woken: set[str] = set()
        refused: dict[str, str] = {}
        refresh = False
        for topic, partitions in answer:
            for row in partitions:
                # Every Fetch version starts with (partition, error_code, high watermark).
                partition, code, high = row[0], row[1], row[2]
                key = (topic, partition)
                if sent.get(key) is None or self.positions.get(key) != sent[key]:
                    continue  # dropped or moved since the request went out
                if code == 0:
                    if high > sent[key]:
                        woken.add(topic)
                        self.positions[key] = high
                elif code == _OUT_OF_RANGE:  # truncated or deleted: find the end again
                    woken.add(topic)
                    del self.positions[key]
                    self.pending[key] = LATEST
                    refresh = True
                elif code in _REFUSED:
                    refused[topic] = _REFUSED[code]
                elif code in _MOVED:
                    refresh = True
                else:
                    error = for_code(code)
                    raise error(f"Fetch of {topic}[{partition}]: error {code}")
        return woken, refused, refresh


def _by_leader(
    values: Mapping[Key, int], leaders: Mapping[Key, int]
) -> dict[int, list[tuple[str, list[tuple[int, int]]]]]:
    grouped: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for (topic, partition), value in sorted(values.items()):
        leader = leaders.get((topic, partition))
        if leader is not None:
            grouped.setdefault(leader, {}).setdefault(topic, []).append((partition, value))
    return {node: sorted(topics.items()) for node, topics in grouped.items()}


class KafkaWatcher(Watcher):
    """The session: metadata and log ends when the topics change (and every
    :data:`REFRESH` s), one long Fetch in flight per leader, hints from their answers."""

    key: KafkaWatch

    async def session(self) -> None:
        timeout = self.options.timeout
        connection = await KafkaConnection.open(
            self.key.backend, timeout + FETCH_WAIT_MS / 1000, WAKE_CLIENT_ID
        )
        ends = LogEnds()
        inflight: dict[int, asyncio.Task[tuple[dict[Key, int], Any]]] = {}
        change: asyncio.Task[None] | None = None
        watched: frozenset[Topic] | None = None
        groups: dict[GroupTopics, frozenset[str]] = {}  # → the topics the group committed to
        refresh_at = 0.0
        last: dict[int, float] = {}  # leader → when its last Fetch went out
        try:
            while True:
                wanted = self.topics
                if wanted != watched or time.monotonic() >= refresh_at:
                    added, complete = await self._arrange(connection, ends, wanted, groups)
                    self.caught_up(wanted if watched is None else added)
                    watched = wanted
                    refresh_at = time.monotonic() + (REFRESH if complete else REFRESH / 10)
                for node, topics in ends.fetch_requests().items():
                    if node not in inflight:
                        # Answered at once means records are arriving: not again just yet.
                        gap = last.get(node, 0.0) + REFETCH_GAP - time.monotonic()
                        last[node] = time.monotonic() + max(0.0, gap)
                        inflight[node] = asyncio.create_task(
                            self._fetch(connection, node, topics, gap)
                        )
                change = change or asyncio.create_task(self.changed())
                await asyncio.wait(
                    {*inflight.values(), change},
                    timeout=max(0.0, refresh_at - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if change.done():
                    change = None
                for node, task in list(inflight.items()):
                    if task.done():
                        del inflight[node]
                        woken, refused, refresh = ends.absorb(*task.result())
                        for topic, reason in refused.items():
                            if topic in wanted:
                                self.refuse(topic, reason)
                            ends.forget(topic)
                            ends.denied[topic] = time.monotonic() + self.options.recheck
                        for topic in woken:
                            self._hint(topic, wanted, groups)
                        if refresh:
                            refresh_at = 0.0
        finally:
            pending: list[asyncio.Task[Any]] = [*inflight.values(), *([change] if change else [])]
            await finish(_closed(pending, connection), self.options.timeout)

    def _hint(
        self, name: str, wanted: frozenset[Topic], groups: Mapping[GroupTopics, frozenset[str]]
    ) -> None:
        """Hint the watched topics a record on Kafka topic ``name`` concerns."""
        if name in wanted:
            self.hint(name)
        for group, names in groups.items():
            if name in names:
                self.hint(group)

    async def _arrange(
        self,
        connection: KafkaConnection,
        ends: LogEnds,
        wanted: frozenset[Topic],
        groups: dict[GroupTopics, frozenset[str]],
    ) -> tuple[set[Topic], bool]:
        """Read the groups' topics, the metadata of every topic, and the log ends of new
        partitions: (the watched topics new from now on, whether every partition has a
        position). A topic a Fetch was refused for waits ``recheck`` s, refused meanwhile."""
        before = dict(groups)
        groups.clear()
        for group in (t for t in wanted if isinstance(t, GroupTopics)):
            groups[group] = await self._group_topics(connection, group, before.get(group))
        names = {t for t in wanted if isinstance(t, str)}.union(*groups.values())
        now = time.monotonic()
        topics = sorted(t for t in names if ends.denied.get(t, 0.0) <= now)
        answer: dict[str, Any] = {"topics": []}
        if topics:
            async with asyncio.timeout(self.options.timeout):
                answer = await connection.send(
                    connection.any_node(), MetadataRequest(topics, allow_auto_topic_creation=False)
                )
        added, refused = ends.apply_metadata(topics, answer["topics"])
        for topic in wanted.intersection(topics):
            if topic in refused:
                self.refuse(topic, refused[topic])
            else:
                self.accept(topic)
        requests = ends.offset_requests()
        async with asyncio.timeout(self.options.timeout):
            answers = await asyncio.gather(
                *(connection.send(n, OffsetRequest(-1, 0, ts)) for n, ts in requests.items())
            )
        complete = True
        for offsets in answers:  # every answer taken, even after an incomplete one
            complete = ends.set_offsets(offsets["topics"]) and complete
        new: set[Topic] = {t for t in added if t in wanted}
        new.update(g for g, names in groups.items() if g not in before or names & added)
        return new, complete

    async def _group_topics(
        self, connection: KafkaConnection, group: GroupTopics, before: frozenset[str] | None
    ) -> frozenset[str]:
        """The topics ``group`` has committed to; as they were when the coordinator is
        moving (the next read asks again); none, and the group refused, on another error."""
        async with asyncio.timeout(self.options.timeout):
            node = await connection.coordinator(group.group)
            answer = await connection.send(node, OffsetFetchRequest(group.group, None))
        code = answer.get("error_code", 0)
        if code in _COORDINATOR_MOVED:
            connection.forget_coordinator(group.group)
            return before or frozenset()
        if code:
            error = for_code(code)
            self.refuse(group, f"reading the group's committed topics: {error.__name__}")
            return frozenset()
        self.accept(group)
        return frozenset(
            t["topic"] for t in answer["topics"] if any(p["offset"] >= 0 for p in t["partitions"])
        )

    async def _fetch(
        self,
        connection: KafkaConnection,
        node: int,
        topics: list[tuple[str, list[tuple[int, int, int]]]],
        delay: float,
    ) -> tuple[dict[Key, int], Any]:
        """One long Fetch to ``node`` after ``delay`` s; (the positions it asked from, the
        answer's topics)."""
        if delay > 0:
            await asyncio.sleep(delay)
        request = FetchRequest(FETCH_WAIT_MS, 1, PARTITION_BYTES, 0, topics)
        async with asyncio.timeout(self.options.timeout + FETCH_WAIT_MS / 1000):
            answer = await connection.request(node, request)
        code = getattr(answer, "error_code", 0)  # v7 and later: the request's own error
        if code:
            raise for_code(code)(f"Fetch from broker {node}: error {code}")
        sent = {(t, p): offset for t, ps in topics for p, offset, _ in ps}
        return sent, answer.topics


async def _closed(pending: list[asyncio.Task[Any]], connection: KafkaConnection) -> None:
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    await connection.close()
