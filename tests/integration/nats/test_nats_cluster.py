"""nats-jetstream against a real 3-node JetStream cluster: the consumer's leader is read,
followed when it moves, and the request count does not grow with the triggers."""

from __future__ import annotations

import asyncio
import time

import pytest

from scalers import nats_jetstream
from scalers.clients import Clients
from scalers.errors import ScalerError
from tests.support import jetstream
from tests.support.nats import NatsCluster
from tests.support.triggers import build, poll

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 3.0
POLL_ROUND = 3 * CLIENT_TIMEOUT
"""A poll at its slowest: the endpoint's /jsz, then its /varz, then every peer's /jsz at once."""
ROUTE_RECONNECT = 1.0
"""nats-server re-dials a lost route every second (DEFAULT_ROUTE_RECONNECT)."""
MESHED_WITHIN = ROUTE_RECONNECT + 2 * POLL_ROUND
"""A node the endpoint has no route to is back one re-dial later; the poll in flight may still
miss it, the next one reaches it."""
ELECTION = 9.0 + 0.8
"""nats-server's Raft (server/raft.go): a follower without a leader campaigns after at most
9 s (maxElectionTimeoutDefault), and a campaign waits at most 0.8 s more."""
ELECTED_WITHIN = 2 * ELECTION + POLL_ROUND
"""A new leader, even when a first election splits its votes, then read by one poll."""
TWO_OF_THREE_ELECTED_WITHIN = ELECTED_WITHIN + ELECTION
"""With a node down, or just back and a term behind, two nodes must vote alike: a split is
likelier, so one more election."""


def scaler(
    cluster: NatsCluster, consumer: str = "workers", endpoint: str | None = None
) -> nats_jetstream.NatsJetStreamScaler:
    fields = {
        "natsServerMonitoringEndpoint": cluster.monitoring_endpoint(endpoint),
        "account": "$G",
        "stream": "JOBS",
        "consumer": consumer,
    }
    return build(nats_jetstream.KIND, nats_jetstream.NatsJetStreamScaler, fields)


async def test_lag_comes_from_the_consumer_leader(nats_cluster: NatsCluster) -> None:
    url = nats_cluster.url()
    await jetstream.prepare_replicated(url, "JOBS", "jobs", ["workers"])
    await jetstream.publish(url, "jobs.x", 30)
    await jetstream.consume(url, "JOBS", "workers", fetch=10, ack=4)
    leader = await jetstream.consumer_leader(url, "JOBS", "workers")
    s, clients = scaler(nats_cluster), Clients(timeout=CLIENT_TIMEOUT)
    try:
        answer, _ = await full_round(s.query, clients, nats_cluster)
        assert answer.clustered
        assert sorted(answer.docs) == ["node-2", "node-3", "node-4"]
        # 20 never delivered + 6 delivered and unacked, as the leader reports it.
        assert await wait_for_value(s, clients, 26.0) == 26.0
        assert leader in answer.docs
    finally:
        await clients.aclose()


async def test_a_moved_leader_is_followed(nats_cluster: NatsCluster) -> None:
    url = nats_cluster.url()
    await jetstream.prepare_replicated(url, "JOBS", "jobs", ["workers"])
    await jetstream.publish(url, "jobs.x", 12)
    s, clients = scaler(nats_cluster), Clients(timeout=CLIENT_TIMEOUT)
    try:
        assert await wait_for_value(s, clients, 12.0) == 12.0
        before = await jetstream.consumer_leader(url, "JOBS", "workers")
        await jetstream.step_down(url, "JOBS", "workers")
        after = await wait_for_new_leader(url, before)
        await jetstream.publish(url, "jobs.x", 5)
        assert await wait_for_value(s, clients, 17.0) == 17.0
        answer, _ = await full_round(s.query, clients, nats_cluster)
        leaders_view = nats_jetstream._find_consumer(answer.docs[after], s.meta)
        assert leaders_view.leader == after != before
    finally:
        await clients.aclose()


async def test_losing_the_leader_node_gives_errors_or_the_truth_never_a_zero(
    nats_cluster: NatsCluster,
) -> None:
    url = nats_cluster.url()
    await jetstream.prepare_replicated(url, "JOBS", "jobs", ["workers"])
    await jetstream.publish(url, "jobs.x", 9)
    leader = await jetstream.consumer_leader(url, "JOBS", "workers")
    down = nats_cluster.host_of(leader)
    survivor = next(h for h in nats_cluster.hosts if h != down)
    s, clients = scaler(nats_cluster, endpoint=survivor), Clients(timeout=2)
    try:
        assert await wait_for_value(s, clients, 9.0) == 9.0
        nats_cluster.stop_node(down)
        # Until the survivors elect a new leader a poll may fail; it never reads a follower's
        # numbers or a zero. Then the new leader is followed.
        deadline = time.monotonic() + TWO_OF_THREE_ELECTED_WITHIN
        while True:
            try:
                value = (await poll(s, clients)).value
            except ScalerError:
                assert time.monotonic() < deadline, "no new leader was followed"
                await asyncio.sleep(0.2)
                continue
            assert value == 9.0
            break
        assert (
            await jetstream.consumer_leader(nats_cluster.url(survivor), "JOBS", "workers") != leader
        )
        nats_cluster.start_node(down)
        assert await wait_for_value(s, clients, 9.0, TWO_OF_THREE_ELECTED_WITHIN) == 9.0
    finally:
        await clients.aclose()


async def test_requests_per_poll_do_not_grow_with_consumers(nats_cluster: NatsCluster) -> None:
    url = nats_cluster.url()
    consumers = [f"c{i}" for i in range(12)]
    await jetstream.prepare_replicated(url, "JOBS", "jobs", consumers)
    await jetstream.publish(url, "jobs.x", 4)
    scalers = [scaler(nats_cluster, c) for c in consumers]
    assert len({s.query for s in scalers}) == 1
    clients = Clients(timeout=CLIENT_TIMEOUT)
    try:
        await full_round(scalers[0].query, clients, nats_cluster)  # learns every node's name
        answer, requests = await full_round(scalers[0].query, clients, nats_cluster)
        assert [s.measure(answer) for s in scalers] == [4.0] * 12
        # One /jsz per node and the endpoint's /varz for membership: 4 for 3 nodes.
        assert requests["/jsz"] == 3
        own_reads = len(nats_cluster.hosts)  # served() reading each node's /varz counts too
        assert requests["/varz"] - own_reads == 1
    finally:
        await clients.aclose()


async def full_round(
    query: nats_jetstream.JszQuery, clients: Clients, cluster: NatsCluster
) -> tuple[nats_jetstream.JszAnswer, dict[str, int]]:
    """A poll that reached every node, and the monitoring requests the nodes served during it.

    The endpoint's /varz lists only the peers it has a route to at that moment; on a loaded
    machine a route may be down for a re-dial, and a poll then lacks that node (an error for
    a consumer led there, rightly). Such a poll, or one that failed, is polled again, and only
    the requests around the poll that reached every node are counted."""
    nodes = sorted(cluster.name(host) for host in cluster.hosts)
    deadline = time.monotonic() + MESHED_WITHIN
    while True:
        try:
            before = served(cluster)
            answer = await query.run(clients)
            after = served(cluster)
        except (ScalerError, OSError) as exc:
            last: object = exc
        else:
            if sorted(answer.docs) == nodes:
                return answer, {path: after[path] - before[path] for path in after}
            last = f"nodes answering: {', '.join(sorted(answer.docs))}"
        assert time.monotonic() < deadline, f"no poll reached {nodes} in {MESHED_WITHIN}s: {last}"
        await asyncio.sleep(0.2)


def served(cluster: NatsCluster) -> dict[str, int]:
    import json
    import urllib.request

    totals = {"/jsz": 0, "/varz": 0}
    for host in cluster.hosts:
        url = f"http://{host}:{cluster.monitor_port}/varz"
        with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as r:
            stats = json.loads(r.read()).get("http_req_stats", {})
        for path in totals:
            totals[path] += int(stats.get(path, 0))
    return totals


async def wait_for_value(
    s: nats_jetstream.NatsJetStreamScaler,
    clients: Clients,
    expected: float,
    within: float = ELECTED_WITHIN,
) -> float:
    """Replicas converge asynchronously: poll until the leader reports ``expected``, allowing
    for the leader to move (an election) meanwhile."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = (await poll(s, clients)).value
            if last == expected:
                return expected
        except ScalerError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {expected}, last saw {last!r}")


async def wait_for_new_leader(url: str, old: str, within: float = ELECTED_WITHIN) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            leader = await jetstream.consumer_leader(url, "JOBS", "workers")
            if leader != old:
                return leader
        except Exception:  # no leader during the election
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"leader stayed {old}")
