"""Leader election on a real kube-apiserver: two electors, one Lease, never two leaders.

The electors run as the adapter's ServiceAccount (a client certificate with its name), so
deploy/rbac.yaml is what lets them near the Lease. Timings are shortened (lease 3 s, renew
deadline 2 s, retry 0.5 s); a sampler reads both ``is_leader`` every few milliseconds and
every change of leadership is checked against the other elector as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.control.leader import JITTER, LeaderElector
from metrics_adapter.kube.client import LEASES, KubeClient, Obj
from metrics_adapter.kube.transport import connect
from tests.support.controlplane import DEPLOY, ControlPlane, load_manifests
from tests.support.controlplane.pki import write_kubeconfig

pytestmark = pytest.mark.e2e

NS = "keda"  # where deploy/rbac.yaml lets the adapter's ServiceAccount hold Leases
SERVICE_ACCOUNT = "system:serviceaccount:keda:metrics-adapter"
LEASE, DEADLINE, RETRY = 3, 2.0, 0.5
PAUSE = RETRY * (1 + JITTER)
"""The longest a candidate waits between two attempts."""
ELECTED_WITHIN = 4 * DEADLINE + 3 * PAUSE
"""A free Lease is taken at a candidate's first attempt, each bounded by the renew deadline
and the longest pause between them: four attempts allow for a loaded apiserver."""
EXPIRED_WITHIN = LEASE + 2 * PAUSE + 2 * DEADLINE
"""An unreleased Lease is taken a lease duration after a candidate saw its last renewal, which
it sees up to a pause late, and takes up to a pause late: each attempt bounded as above."""


@dataclass
class Cluster:
    cp: ControlPlane
    kubeconfig: Path
    """The adapter's ServiceAccount."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cp = ControlPlane()
    try:
        cp.start()
        for doc in load_manifests(DEPLOY / "rbac.yaml"):
            cp.apply(doc)
        user = cp.ca.issue(SERVICE_ACCOUNT, organizations=["system:serviceaccounts"])
        kubeconfig = tmp_path_factory.mktemp("leader") / "kubeconfig"
        write_kubeconfig(kubeconfig, cp.url, cp.ca.pem, user)
        yield Cluster(cp, kubeconfig)
    except BaseException:
        print(cp.logs())
        raise
    finally:
        cp.cleanup()


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[KubeClient]:
    """An admin client, to read the Lease as a user would."""
    async with await KubeClient.connect(cluster.cp.kubeconfig, timeout=5.0) as client:
        yield client


@contextlib.asynccontextmanager
async def elector(
    kubeconfig: Path, lease: str, identity: str, **kwargs: Any
) -> AsyncIterator[LeaderElector]:
    async with await KubeClient.connect(kubeconfig, timeout=5.0) as client:
        yield LeaderElector(
            client,
            NS,
            lease,
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            **kwargs,
        )


@dataclass
class Referee:
    """Runs electors and watches them: every sample, and every change of leadership at the
    moment it happens, must show at most one leader."""

    electors: list[LeaderElector]
    samples: int = 0
    changes: list[tuple[float, str, bool]] = field(default_factory=list)
    sampled: list[int] = field(default_factory=list)
    """``samples`` at each change of leadership."""
    overlaps: list[str] = field(default_factory=list)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, e: LeaderElector) -> None:
        def changed(leading: bool) -> None:
            self.changes.append((time.monotonic(), e.identity, leading))
            self.sampled.append(self.samples)
            self._check(f"{e.identity} took the lead" if leading else "")

        e.listeners.append(changed)
        self.tasks[e.identity] = asyncio.create_task(e.run(), name=f"elector {e.identity}")

    async def stop(self, e: LeaderElector) -> None:
        task = self.tasks.pop(e.identity)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _check(self, when: str) -> None:
        leaders = [e.identity for e in self.electors if e.is_leader]
        if len(leaders) > 1:
            self.overlaps.append(f"{when or 'sampled'} at {time.monotonic():.3f}: {leaders}")

    async def sample(self) -> None:
        while True:
            self._check("")
            self.samples += 1
            await asyncio.sleep(0.005)

    def leader(self) -> LeaderElector | None:
        leaders = [e for e in self.electors if e.is_leader]
        assert len(leaders) <= 1, leaders
        return leaders[0] if leaders else None

    def took_lead(self, identity: str) -> float | None:
        """When ``identity`` last took the lead."""
        times = [t for t, who, leading in self.changes if who == identity and leading]
        return times[-1] if times else None


@contextlib.asynccontextmanager
async def refereed(*electors: LeaderElector) -> AsyncIterator[Referee]:
    referee = Referee(list(electors))
    sampler = asyncio.create_task(referee.sample(), name="sampler")
    try:
        yield referee
    finally:
        for identity in list(referee.tasks):
            await referee.stop(next(e for e in electors if e.identity == identity))
        # One more sample, of the state the stops left, before the sampler ends.
        last = referee.samples
        await until("a sample after the stops", lambda: referee.samples > last, 5)
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    # The sampler ran to the end, after the last change: counted, not expected of the clock.
    assert referee.samples > max(referee.sampled, default=0)
    assert not referee.overlaps, referee.overlaps


async def until(what: str, probe: Callable[[], Awaitable[bool] | bool], within: float) -> float:
    """Poll ``probe`` until true; return the time it became so."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if result if isinstance(result, bool) else await result:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.02)


async def spec(kube: KubeClient, lease: str) -> dict[str, Any]:
    return dict((await kube.get(LEASES, lease, NS)).get("spec") or {})


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def history(kube: KubeClient, since: Obj) -> list[dict[str, Any]]:
    """The specs of the Lease ``since`` (as read) and every one the server gave it after,
    in order, up to its current version: who wrote it, as the server applied it."""
    lease = since["metadata"]["name"]
    now = (await kube.get(LEASES, lease, NS))["metadata"]["resourceVersion"]
    specs = [dict(since.get("spec") or {})]
    version = since["metadata"]["resourceVersion"]
    events = kube.open_watch(LEASES, NS, f"metadata.name={lease}", version)
    async with asyncio.timeout(kube.timeout), contextlib.aclosing(events):
        async for kind, obj in events:
            if kind in ("ADDED", "MODIFIED"):
                specs.append(dict(obj.get("spec") or {}))
                if obj["metadata"]["resourceVersion"] == now:
                    break
    return specs


def held_by(specs: list[dict[str, Any]], holder: str) -> list[dict[str, Any]]:
    return [s for s in specs if s.get("holderIdentity") == holder]


def holders(specs: list[dict[str, Any]]) -> list[str]:
    """Who held the Lease, each change once (``""``: released)."""
    found: list[str] = []
    for s in specs:
        holder = str(s.get("holderIdentity") or "")
        if not found or found[-1] != holder:
            found.append(holder)
    return found


def sees_held_by(e: LeaderElector, holder: str) -> Callable[[], bool]:
    """Whether ``e`` has read the Lease and found ``holder`` holding it."""
    return lambda: getattr(e.election.observed, "holder", None) == holder


async def test_two_electors_one_leader_and_the_lease_says_who(
    cluster: Cluster, kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metrics_adapter.control.leader")
    async with (
        elector(cluster.kubeconfig, "one-leader", "replica-a") as a,
        elector(cluster.kubeconfig, "one-leader", "replica-b") as b,
        refereed(a, b) as referee,
    ):
        referee.start(a)
        referee.start(b)
        await until("a leader", lambda: referee.leader() is not None, ELECTED_WITHIN)
        leader = referee.leader()
        assert leader is not None and leader.leading.is_set() and not leader.following.is_set()
        first = await spec(kube, "one-leader")
        await asyncio.sleep(LEASE + RETRY)  # past a lease duration: renewed all along
        assert referee.leader() is leader  # renewed, never lost
        follower = b if leader is a else a
        assert follower.following.is_set() and not follower.leading.is_set()
        lease = await spec(kube, "one-leader")
        changes = [(who, leading) for _, who, leading in referee.changes]
    assert lease["holderIdentity"] == leader.identity
    assert lease["leaseDurationSeconds"] == LEASE
    assert lease["leaseTransitions"] == 0
    assert lease["acquireTime"] == first["acquireTime"]  # one term
    assert stamp(lease["renewTime"]) > stamp(first["renewTime"])
    assert changes == [(leader.identity, True)]
    assert f"Lease keda/one-leader: {leader.identity} became leader" in caplog.text
    assert f"Lease keda/one-leader: {leader.identity} stopped leading: stopped" in caplog.text


async def test_a_leader_that_stops_releases_the_lease_to_the_other_at_once(
    cluster: Cluster, kube: KubeClient
) -> None:
    async with (
        elector(cluster.kubeconfig, "handover", "first") as first,
        elector(cluster.kubeconfig, "handover", "second") as second,
        refereed(first, second) as referee,
    ):
        referee.start(first)
        await until("first leads", lambda: first.is_leader, ELECTED_WITHIN)
        referee.start(second)
        await until("second sees first lead", sees_held_by(second, "first"), ELECTED_WITHIN)
        assert not second.is_leader
        before = await kube.get(LEASES, "handover", NS)
        await referee.stop(first)
        released = time.monotonic()
        assert not first.is_leader and first.following.is_set()
        took = await until("second leads", lambda: second.is_leader, EXPIRED_WITHIN)
        # The release, not expiry, told by who wrote the Lease: the server saw it cleared,
        # then taken. And promptly: at the successor's next attempt after the release (a
        # pause at most, plus its calls), inside the LEASE - RETRY an expiry takes at least.
        assert holders(await history(kube, before))[-2:] == ["", "second"]
        assert took - released < LEASE - RETRY
        lease = await spec(kube, "handover")
    assert lease["holderIdentity"] == "second"
    assert lease["leaseTransitions"] == 1
    assert lease["leaseDurationSeconds"] == LEASE


class LostAnswers(KubeClient):
    """A client whose next Lease update reaches the server, which applies it, while its
    answer never comes back: the renew a cancellation catches on its way back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.losing = False
        self.applied = asyncio.Event()

    async def request(self, method: str, path: str, subject: str, **kwargs: Any) -> Obj:
        answer = await super().request(method, path, subject, **kwargs)
        if method == "PUT" and self.losing:
            self.losing = False
            self.applied.set()
            await asyncio.Event().wait()  # the answer is lost; only a cancel ends this
        return answer


async def test_a_leader_stopped_while_a_renew_answer_is_lost_still_releases_at_once(
    cluster: Cluster, kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The renew was applied, so the Lease's version is newer than the one the leader
    remembers: its release gets 409, reads the Lease again, finds it still its own and
    releases that version, so the successor takes over at once rather than after expiry."""
    caplog.set_level(logging.INFO, logger="metrics_adapter.control.leader")
    client = LostAnswers(await connect(cluster.kubeconfig), timeout=5.0)
    async with (
        client,
        elector(cluster.kubeconfig, "lost-answer", "heir") as heir,
    ):
        first = LeaderElector(
            client,
            NS,
            "lost-answer",
            identity="first",
            lease_duration=LEASE,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
        )
        async with refereed(first, heir) as referee:
            referee.start(first)
            await until("first leads", lambda: first.is_leader, ELECTED_WITHIN)
            referee.start(heir)
            client.losing = True
            async with asyncio.timeout(3 * RETRY * (1 + JITTER)):
                await client.applied.wait()  # the next renew, applied, its answer lost
            stopped = time.monotonic()
            await referee.stop(first)
            took = await until("heir leads", lambda: heir.is_leader, LEASE)
            assert took - stopped < 2.2 * RETRY + 0.5 < LEASE  # released, not expired
            lease = await spec(kube, "lost-answer")
    assert lease["holderIdentity"] == "heir" and lease["leaseTransitions"] == 1
    assert "not released" not in caplog.text
    assert "Lease keda/lost-answer: released by first" in caplog.text


async def test_a_refused_release_leaves_alone_a_lease_another_holder_took(
    cluster: Cluster, kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """While a renew's answer is lost, the Lease passes to somebody else (as after a
    partition longer than the lease); the release's 409 re-reads it and clears nothing."""
    caplog.set_level(logging.INFO, logger="metrics_adapter.control.leader")
    client = LostAnswers(await connect(cluster.kubeconfig), timeout=5.0)
    async with client:
        old = LeaderElector(
            client,
            NS,
            "taken",
            identity="old",
            lease_duration=LEASE,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
        )
        task = asyncio.create_task(old.run())
        try:
            await until("old leads", lambda: old.is_leader, ELECTED_WITHIN)
            client.losing = True
            async with asyncio.timeout(3 * RETRY * (1 + JITTER)):
                await client.applied.wait()
            lease = await kube.get(LEASES, "taken", NS)
            lease["spec"].update(holderIdentity="usurper", leaseDurationSeconds=30)
            await kube.request("PUT", LEASES.path(NS, "taken"), "Lease (take)", body=lease)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert (await spec(kube, "taken"))["holderIdentity"] == "usurper"
    assert "Lease keda/taken: now held by another replica: not ours to release" in caplog.text


async def test_a_crashed_leader_is_replaced_only_after_the_lease_expires(
    cluster: Cluster, kube: KubeClient
) -> None:
    async with (
        elector(cluster.kubeconfig, "crash", "doomed", release_on_cancel=False) as doomed,
        elector(cluster.kubeconfig, "crash", "heir") as heir,
        refereed(doomed, heir) as referee,
    ):
        referee.start(doomed)
        await until("doomed leads", lambda: doomed.is_leader, ELECTED_WITHIN)
        referee.start(heir)
        await until("heir sees doomed lead", sees_held_by(heir, "doomed"), ELECTED_WITHIN)
        before = await kube.get(LEASES, "crash", NS)
        await referee.stop(doomed)  # no release: the Lease still names it
        await until("heir leads", lambda: heir.is_leader, EXPIRED_WITHIN)
        specs = await history(kube, before)
    assert holders(specs)[-2:] == ["doomed", "heir"]  # never released
    last, taken = held_by(specs, "doomed")[-1], held_by(specs, "heir")[0]
    # Between the last renewal and the takeover, as written in the Lease (the test's clock
    # would add the stop and every call): not before the lease duration, and not much after
    # it: seen up to a pause late, taken up to a pause late, plus two reads of the Lease.
    waited = stamp(taken["acquireTime"]) - stamp(last["renewTime"])
    assert timedelta(seconds=LEASE) <= waited < timedelta(seconds=LEASE + 2 * PAUSE + 0.5)
    assert taken["holderIdentity"] == "heir" and taken["leaseTransitions"] == 1
    assert taken["renewTime"] >= taken["acquireTime"]


class Partition:
    """A loopback TCP relay to kube-apiserver that can stop passing bytes (a network
    partition): requests hang, none fails fast."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[Any]] = set()
        self._sockets: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Partition:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        """Close every connection, so each relay ends by itself (Python 3.11 logs an error
        for a connection handler that ends cancelled)."""
        assert self._server is not None
        self._server.close()
        self.flowing.set()
        for sock in self._sockets:
            sock.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._relays)
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._sockets.add(writer)
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            upstream = None
        try:
            if upstream is not None:
                self._sockets.add(upstream)
                await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        finally:
            for sock in (writer, upstream):
                if sock is not None:
                    sock.close()
                    self._sockets.discard(sock)
            self._relays.discard(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.close()


async def test_a_partitioned_leader_steps_down_before_anyone_takes_over(
    cluster: Cluster, kube: KubeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(cluster.cp.url.rsplit(":", 1)[1])
    terms: list[tuple[str, str, float]] = []

    def work(identity: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def write_while_leading() -> None:
            terms.append(("start", identity, time.monotonic()))
            try:
                await asyncio.Event().wait()
            finally:
                terms.append(("stop", identity, time.monotonic()))

        return write_while_leading

    async with Partition(port) as partition:
        cut_off = tmp_path / "partitioned.kubeconfig"
        user = cluster.cp.ca.issue(SERVICE_ACCOUNT, organizations=["system:serviceaccounts"])
        write_kubeconfig(cut_off, partition.url, cluster.cp.ca.pem, user)
        async with (
            elector(cut_off, "partition", "island") as island,
            elector(cluster.kubeconfig, "partition", "mainland") as mainland,
            refereed(island, mainland) as referee,
        ):
            gated = [
                asyncio.create_task(e.while_leading(work(e.identity))) for e in (island, mainland)
            ]
            try:
                referee.start(island)
                await until("island leads", lambda: island.is_leader, ELECTED_WITHIN)
                referee.start(mainland)
                seen = sees_held_by(mainland, "island")
                await until("mainland sees island lead", seen, ELECTED_WITHIN)
                before = await kube.get(LEASES, "partition", NS)
                partition.flowing.clear()
                stepped = await until(
                    "island steps down", lambda: not island.leading.is_set(), EXPIRED_WITHIN
                )
                took = await until("mainland leads", lambda: mainland.is_leader, EXPIRED_WITHIN)
                # By order and by the Lease, not by the clock of a loaded machine: the island
                # stopped for its own renew deadline (logged), before the mainland took over;
                # and the mainland took the Lease a lease duration after the island's last
                # renewal, which the island's deadline follows by at most DEADLINE: LEASE -
                # DEADLINE are left for writes in flight.
                assert stepped < took
                specs = await history(kube, before)
                last, taken = held_by(specs, "island")[-1], held_by(specs, "mainland")[0]
                waited = stamp(taken["acquireTime"]) - stamp(last["renewTime"])
                assert waited >= timedelta(seconds=LEASE)
                partition.flowing.set()  # what it sent meanwhile arrives, on an old resourceVersion
                await asyncio.sleep(4 * RETRY)
                assert referee.leader() is mainland
                assert (await spec(kube, "partition"))["holderIdentity"] == "mainland"
            finally:
                for task in gated:
                    task.cancel()
                await asyncio.gather(*gated, return_exceptions=True)
    assert [(what, who) for what, who, _ in terms] == [
        ("start", "island"),
        ("stop", "island"),
        ("start", "mainland"),
        ("stop", "mainland"),
    ]
    assert terms[1][2] < terms[2][2]  # the island's work ended before the mainland's began
    assert "Lease keda/partition: island stopped leading: not renewed within 2s" in caplog.text
