"""Shards: the ScaledObjects (and ScaledJobs) split across the live replicas, over Leases.

Each replica holds a Lease of its own, labelled ``metrics-adapter.io/shards=<group>`` and
annotated with the URL its API answers on; it renews it every ``retry_period`` and lists the
group's Leases in the same round. The live members are those whose Lease it saw renewed
within the Lease's duration (judged on the local monotonic clock from when it *saw* each
change, as client-go's leader election does, so clock skew between replicas does not
matter). An object belongs to the member with the highest rendezvous hash of
``(member, namespace/name)``: a member joining or leaving moves only its own share.

Polling follows the last membership known. Writing is fenced, so that an old owner stops
before a new one starts:

- A replica writes only while its own last renewal *and* its last list started less than
  ``renew_deadline`` ago. A replica paused (SIGSTOP, a long GC, a partition) longer than that
  finds itself fenced when it wakes, before it has listed again.
- An object gained from a member that is still live is written for only ``lease_duration``
  after the change was seen. That member's view is at most ``renew_deadline`` old when it
  writes, and it saw no newcomer before the newcomer's Lease existed, so it has stopped by
  then, with ``lease_duration - renew_deadline`` left for writes in flight (the same margin
  as the leader's).
- An object gained from a member that left is written for at once: a released Lease is
  deleted after its holder's writes stopped, and an expired one was last renewed at least
  ``lease_duration`` ago, ``lease_duration - renew_deadline`` after its holder stopped.

:class:`Membership` holds those decisions, pure, with the times passed in; :class:`Shards`
does the calls and the waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from metrics_adapter.control.leader import JITTER, check_timings, default_identity
from metrics_adapter.control.ownership import shard_key
from metrics_adapter.errors import KubeConflict, KubeError, KubeNotFound
from metrics_adapter.kube.client import LEASES, KubeClient
from metrics_adapter.kube.objects import Lease, LeaseSpec, ObjectMeta
from metrics_adapter.model.keda import ObjectRef

log = logging.getLogger(__name__)

GROUP_LABEL = "metrics-adapter.io/shards"
ADDRESS_ANNOTATION = "metrics-adapter.io/address"
DEFAULT_GROUP = "metrics-adapter"


def score(member: str, key: str) -> int:
    """The rendezvous weight of ``key`` on ``member``: 64 bits of BLAKE2b, so the same on
    every replica and every Python (``hash()`` is salted per process)."""
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(key: str, members: Iterable[str]) -> str | None:
    """The member ``key`` belongs to: the highest score wins (ties by name, never in
    practice); ``None`` when there are no members."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (score(member, key), member)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best else None


@dataclass
class _Seen:
    spec: LeaseSpec
    address: str
    observed_at: float
    """When this version of the Lease was first seen: it expires ``duration`` after."""


@dataclass
class Membership:
    """What one replica knows of its group and decides from it; every time is passed in
    (monotonic seconds)."""

    identity: str
    lease_duration: int
    renew_deadline: float
    peers: dict[str, _Seen] = field(default_factory=dict)
    """Other members' Leases, by holder identity, as last listed."""
    renewed_at: float | None = None
    """Start of our last successful renewal."""
    listed_at: float | None = None
    """Start of our last successful list."""
    view: tuple[str, ...] = ()
    """The live members, sorted: what objects are assigned over."""
    settled: tuple[str, ...] = ()
    """The last view whose changes had all been written for (the previous owners)."""
    changed_at: float = 0.0
    _owners: dict[str, str | None] = field(default_factory=dict)
    _rejoining: bool = False

    def renewed(self, started: float) -> None:
        """Our Lease was renewed by a request sent at ``started``. After a lapse (paused,
        cut off: fenced meanwhile), the others may have taken our share: we come back as a
        newcomer does, writing for it only after the hand-over wait, when they have seen
        our Lease renewed and let it go."""
        if self.renewed_at is not None and started >= self.renewed_at + self.renew_deadline:
            self._rejoining = True
        self.renewed_at = started

    def listed(self, leases: Sequence[Lease], started: float, now: float) -> bool:
        """Take in the group's Leases as listed (the request was sent at ``started``);
        True when the view changed."""
        seen: dict[str, _Seen] = {}
        for lease in leases:
            holder = lease.spec.holder
            if not holder or holder == self.identity:
                continue
            old = self.peers.get(holder)
            if old is not None and old.spec == lease.spec:
                seen[holder] = old
            else:
                address = lease.meta.annotations.get(ADDRESS_ANNOTATION, "")
                seen[holder] = _Seen(lease.spec, address, now)
        self.peers, self.listed_at = seen, started
        return self.refresh(now)

    def valid(self, now: float) -> bool:
        """Our Lease and our list are both fresh enough to write on."""
        if self.renewed_at is None or self.listed_at is None:
            return False
        return now < min(self.renewed_at, self.listed_at) + self.renew_deadline

    def live(self, now: float) -> tuple[str, ...]:
        members = [
            holder
            for holder, seen in self.peers.items()
            if now < seen.observed_at + (seen.spec.duration or self.lease_duration)
        ]
        if self.renewed_at is not None:
            members.append(self.identity)
        return tuple(sorted(members))

    def refresh(self, now: float) -> bool:
        """Recompute the view (peers expire with time alone); True when it changed."""
        view = self.live(now)
        if view == self.view and not self._rejoining:
            return False
        if not self.view or self._rejoining:  # what we gain, we gain from the peers there
            self.settled = tuple(m for m in view if m != self.identity)
        elif self.grace_over(now):
            self.settled = self.view
        self._rejoining = False
        self.view, self.changed_at = view, now
        self._owners.clear()
        return True

    def grace_over(self, now: float) -> bool:
        return now >= self.changed_at + self.lease_duration

    def owner(self, key: str) -> str | None:
        """The member ``key`` belongs to in the current view."""
        try:
            return self._owners[key]
        except KeyError:
            found = self._owners[key] = rendezvous(key, self.view)
            return found

    def polls(self, key: str) -> bool:
        return self.owner(key) == self.identity

    def writes(self, key: str, now: float) -> bool:
        """Ours, fenced: see the module's docstring."""
        if not self.valid(now) or self.owner(key) != self.identity:
            return False
        if self.grace_over(now):
            return True
        before = rendezvous(key, self.settled)
        return before is None or before == self.identity or before not in self.view

    def address(self, member: str) -> str:
        seen = self.peers.get(member)
        return seen.address if seen is not None else ""


def default_address(port: int) -> str:
    """Where peers reach this replica's API: the Pod's IP (``POD_IP``, from the downward
    API) on the secure port; loopback outside a Pod."""
    host = os.environ.get("POD_IP", "127.0.0.1")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def lease_name(group: str, identity: str) -> str:
    """A DNS-1123 name per member: the group and a digest of the identity."""
    digest = hashlib.blake2b(identity.encode(), digest_size=5).hexdigest()
    return f"{group}-{digest}"


class Shards:
    """This replica's membership of the group, kept current until cancelled; answers
    :class:`~metrics_adapter.control.ownership.Ownership` for the controllers."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        address: str,
        *,
        group: str = DEFAULT_GROUP,
        identity: str | None = None,
        lease_duration: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        subject = f"shard Leases {namespace}/{group}-*"
        check_timings(subject, lease_duration, renew_deadline, retry_period)
        self.kube, self.namespace, self.group, self.address = kube, namespace, group, address
        self.identity = identity or os.environ.get("POD_NAME") or default_identity()
        self.name = lease_name(group, self.identity)
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.membership = Membership(self.identity, lease_duration, renew_deadline)
        self.listeners: list[Callable[[], None]] = []
        self._joined = asyncio.Event()
        self._clock = clock
        self._lease: Lease | None = None
        self._state: tuple[object, ...] = ()
        self._failing = ""

    @property
    def subject(self) -> str:
        return f"shard Lease {self.namespace}/{self.name}"

    # Ownership.

    def polls(self, ref: ObjectRef) -> bool:
        return self.membership.polls(shard_key(ref))

    def writes(self, ref: ObjectRef) -> bool:
        return self.membership.writes(shard_key(ref), self._clock())

    @property
    def acting(self) -> bool:
        return self.membership.valid(self._clock())

    def owner(self, namespace: str, name: str) -> tuple[str, str] | None:
        """The member that polls ``namespace/name`` and its address, or ``None`` when it is
        this replica (or nobody is known yet)."""
        member = self.membership.owner(shard_key(ObjectRef(namespace, name)))
        if member is None or member == self.identity:
            return None
        return member, self.membership.address(member)

    async def known(self) -> None:
        """Once the first round listed the group: until then this replica would take
        every object for another's."""
        await self._joined.wait()

    @property
    def members(self) -> tuple[str, ...]:
        return self.membership.view

    # The loop.

    async def run(self) -> None:
        log.info("%s: joining shard group %s as %s", self.subject, self.group, self.identity)
        try:
            while True:
                await self._round()
                await asyncio.sleep(self.retry_period * (1 + random.random() * JITTER / 4))
        finally:
            self.membership.renewed_at = None  # nothing is written from here on
            self._notify_if_changed()
            if self.release_on_cancel:
                await self._release()

    async def _round(self) -> None:
        m = self.membership
        try:
            async with asyncio.timeout(m.renew_deadline):
                started = self._clock()
                await self._renew()
                m.renewed(started)
                started = self._clock()
                found, _ = await self.kube.list_objects(
                    LEASES, self.namespace, label_selector=f"{GROUP_LABEL}={self.group}"
                )
                leases = [Lease.from_response(o, f"list shard Leases {self.group}") for o in found]
                if m.listed(leases, started, self._clock()):
                    log.info("shard group %s: members %s", self.group, ", ".join(m.view))
                self._failing = ""
                self._joined.set()
        except TimeoutError:
            self._failed("no answer in time")
        except KubeError as exc:
            self._failed(str(exc))
        m.refresh(self._clock())
        self._notify_if_changed()

    async def _renew(self) -> None:
        """Create our Lease, or renew it on the version we last wrote (read again after a
        conflict, or when somebody removed it)."""
        wall = datetime.now(UTC)
        lease = self._lease
        duration = self.membership.lease_duration
        if lease is None:
            spec = LeaseSpec(self.identity, duration, wall, wall, 0)
            meta = ObjectMeta(
                self.name,
                self.namespace,
                labels={GROUP_LABEL: self.group},
                annotations={ADDRESS_ANNOTATION: self.address},
            )
            try:
                self._lease = await self._write("POST", Lease(meta, spec))
                return
            except KubeConflict:  # already there: ours, from before a restart
                pass
            found = await self.kube.get(LEASES, self.name, self.namespace)
            lease = Lease.from_response(found, f"{self.subject} (get)")
        spec = LeaseSpec(self.identity, duration, lease.spec.acquire_time or wall, wall, 0)
        meta = ObjectMeta(
            self.name,
            self.namespace,
            resource_version=lease.meta.resource_version,
            labels={GROUP_LABEL: self.group},
            annotations={ADDRESS_ANNOTATION: self.address},
        )
        try:
            self._lease = await self._write("PUT", Lease(meta, spec))
        except KubeNotFound:  # removed under us: announce ourselves again
            self._lease = await self._write("POST", Lease(replace(meta, resource_version=""), spec))
        except KubeError:
            self._lease = None  # changed under us: read it again next round
            raise

    async def _write(self, method: str, lease: Lease) -> Lease:
        path = LEASES.path(self.namespace, None if method == "POST" else self.name)
        subject = f"{self.subject} ({'create' if method == 'POST' else 'renew'})"
        answer = await self.kube.request(
            method, path, subject, body=lease.to_json(), content_type="application/json"
        )
        return Lease.from_response(answer, subject)

    async def _release(self) -> None:
        """Delete our Lease, so the others take our share at once instead of after its
        duration. Only after our writes stopped: run() is cancelled last."""
        try:
            async with asyncio.timeout(self.kube.timeout):
                await self.kube.request(
                    "DELETE", LEASES.path(self.namespace, self.name), f"{self.subject} (delete)"
                )
            log.info("%s: left shard group %s", self.subject, self.group)
        except (KubeError, TimeoutError) as exc:
            log.warning("%s: not deleted, it expires instead: %s", self.subject, exc)

    def _notify_if_changed(self) -> None:
        """Tell the listeners when what this replica polls or writes may have changed: the
        view, whether writing is fenced, whether the hand-over wait is over."""
        m, now = self.membership, self._clock()
        state = (m.view, m.valid(now), m.grace_over(now))
        if state == self._state:
            return
        self._state = state
        for listener in self.listeners:
            listener()

    def _failed(self, why: str) -> None:
        level = logging.DEBUG if why == self._failing else logging.WARNING
        self._failing = why
        log.log(level, "%s: renew or list failed: %s", self.subject, why)
