"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics, so
that of two replicas only one writes (KEDA runs one active operator the same way).

Every replica polls the Lease every ``retry_period``. It takes the Lease when it is absent,
released (no holder), already its own, or expired; it renews it while leading. Writes carry
the ``resourceVersion`` that was read, so when two replicas race, one gets ``409 Conflict``
and backs off.

Two clocks are kept apart. Expiry is judged on the local monotonic clock, as client-go
does: another holder's Lease expires ``leaseDurationSeconds`` after this replica *saw* it
change, never by comparing the holder's ``renewTime`` with a clock of ours, so skew between
replicas cannot make two leaders. A leader stops leading ``renew_deadline`` after the start
of its last successful renewal, which is before any other replica can have seen that Lease
unchanged for ``lease_duration``: the two never overlap, with ``lease_duration -
renew_deadline`` (5 s by default) left for writes in flight.

:class:`Election` holds those decisions, pure, with the times passed in;
:class:`LeaderElector` does the calls and the waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from metrics_adapter.errors import KubeConflict, KubeError, KubeNotFound
from metrics_adapter.kube.client import LEASES, KubeClient
from metrics_adapter.kube.objects import Lease, LeaseSpec, ObjectMeta

log = logging.getLogger(__name__)

DEFAULT_LEASE = "metrics-adapter"
JITTER = 1.2
"""A candidate waits ``retry_period * (1 + random() * JITTER)``, as client-go's does."""
RELEASE_ATTEMPTS = 3
"""Writes a release may try: each 409 re-reads the Lease first."""


def check_timings(
    subject: str, lease_duration: float, renew_deadline: float, retry_period: float
) -> None:
    """ValueError naming ``subject`` unless leaseDuration > renew deadline > the longest
    retry: the margins both a leader and a shard member rely on."""
    if not lease_duration > renew_deadline > retry_period * JITTER > 0:
        raise ValueError(
            f"{subject}: need leaseDuration ({lease_duration:g}s) > renew deadline "
            f"({renew_deadline:g}s) > {JITTER:g} x retry period ({retry_period:g}s)"
        )


def default_identity() -> str:
    """``<hostname>_<uuid>``, as controller-runtime names its candidates: unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass
class Election:
    """What one candidate knows and decides; every time is passed in (monotonic seconds for
    deciding, wall-clock datetimes only to write into the Lease)."""

    identity: str
    lease_duration: int
    renew_deadline: float
    observed: LeaseSpec | None = None
    """The Lease as last read or written; ``None``: absent, or not read yet."""
    observed_at: float = 0.0
    """When ``observed`` was first seen as it is: another holder's expiry counts from here."""
    renewed_at: float | None = None
    """Start of the last successful acquire or renew while leading; ``None``: not leading."""

    def observe(self, record: LeaseSpec | None, now: float) -> bool:
        """Take in the Lease as read; True when it changed since the last observation."""
        if record == self.observed:
            return False
        self.observed, self.observed_at = record, now
        return True

    def expired(self, now: float) -> bool:
        """Another holder's Lease has gone unrenewed for its duration, as seen from here."""
        record = self.observed
        if record is None:
            return True
        duration = record.duration or self.lease_duration
        return now >= self.observed_at + duration

    def held_by_other(self, now: float) -> bool:
        """Somebody else holds the Lease and it has not expired: hands off."""
        record = self.observed
        if record is None or not record.holder or record.holder == self.identity:
            return False
        return not self.expired(now)

    def ours(self) -> bool:
        return self.observed is not None and self.observed.holder == self.identity

    def claim(self, wall: datetime) -> LeaseSpec:
        """The record that takes or renews the Lease: a renewal keeps ``acquireTime`` and the
        transition count; a takeover starts a new term."""
        old = self.observed
        if old is None:
            return LeaseSpec(self.identity, self.lease_duration, wall, wall, 0)
        if old.holder == self.identity:
            return replace(old, duration=self.lease_duration, renew_time=wall)
        return LeaseSpec(self.identity, self.lease_duration, wall, wall, old.transitions + 1)

    def release(self, wall: datetime) -> LeaseSpec | None:
        """The record that hands the Lease over at once (client-go's: no holder, 1 s), or
        ``None`` when it is not ours to release."""
        if not self.ours():
            return None
        assert self.observed is not None
        return replace(self.observed, holder="", duration=1, acquire_time=wall, renew_time=wall)

    def won(self, record: LeaseSpec, started: float, now: float) -> None:
        """Our write of ``record``, sent at ``started``, was accepted."""
        self.observe(record, now)
        self.renewed_at = started

    def leading(self, now: float) -> bool:
        return self.renewed_at is not None and now < self.renewed_at + self.renew_deadline

    def must_step_down(self, now: float) -> bool:
        """Leading, but the last renewal is ``renew_deadline`` old: another replica could
        soon take the Lease."""
        return self.renewed_at is not None and not self.leading(now)

    def time_left(self, now: float) -> float | None:
        """Seconds until a leader must step down; ``None`` when not leading."""
        if self.renewed_at is None:
            return None
        return max(0.0, self.renewed_at + self.renew_deadline - now)

    def step_down(self) -> None:
        self.renewed_at = None


class LeaderElector:
    """Campaign for one Lease until cancelled; lead while holding it.

    ``leading`` is set while this replica leads and ``following`` while it does not;
    ``listeners`` are called with ``True`` on taking the lead and ``False`` on losing it.
    :meth:`while_leading` runs a coroutine only during each term.
    """

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str = DEFAULT_LEASE,
        *,
        identity: str | None = None,
        lease_duration: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        check_timings(f"Lease {namespace}/{name}", lease_duration, renew_deadline, retry_period)
        self.kube, self.namespace, self.name = kube, namespace, name
        self.identity = identity or default_identity()
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        """False simulates a crash: a cancel leaves the Lease to expire."""
        self.election = Election(self.identity, lease_duration, renew_deadline)
        self.leading = asyncio.Event()
        self.following = asyncio.Event()
        self.following.set()
        self.listeners: list[Callable[[bool], None]] = []
        self._clock, self._wall = clock, wall_clock
        self._lease: Lease | None = None
        """The Lease as we last wrote it: a release replaces exactly that version."""
        self._failing = ""

    @property
    def subject(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    @property
    def is_leader(self) -> bool:
        """Leading, by the clock rather than by the loop: False as soon as the renew
        deadline passes, even if the loop that would step down has not run yet."""
        return self.election.leading(self._clock())

    async def run(self) -> None:
        """Campaign and renew until cancelled; then step down and, unless
        ``release_on_cancel`` is off, release the Lease so a successor takes it at once."""
        log.info("%s: campaigning as %s", self.subject, self.identity)
        try:
            while True:
                await self._attempt()
                await asyncio.sleep(self._pause())
        except asyncio.CancelledError:
            self._lose("stopped", level=logging.INFO)
            if self.release_on_cancel:
                await self._release()
            raise
        finally:
            self._lose("the election loop ended")

    async def while_leading(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` during each term, cancelling it when the term ends; until cancelled
        or until ``work()`` raises. ``run()`` must be running alongside."""
        while True:
            await self.leading.wait()
            async with asyncio.TaskGroup() as group:
                task = group.create_task(work())
                await self.following.wait()
                task.cancel()

    # One round.

    async def _attempt(self) -> None:
        started = self._clock()
        if self.election.must_step_down(started):
            self._lose(f"not renewed within {self.election.renew_deadline:g}s")
        left = self.election.time_left(started)
        try:
            # A leader's attempt may not outlive its term; a candidate's is bounded too.
            async with asyncio.timeout(self.election.renew_deadline if left is None else left):
                await self._acquire_or_renew(started)
        except TimeoutError:
            self._failed("no answer in time")
        except KubeConflict as exc:
            self._failing = ""
            if self.election.leading(self._clock()):
                self._lose(f"changed under us ({exc.code} {exc.reason})")
            else:
                log.debug("%s: another candidate won the race: %s", self.subject, exc)
        except KubeError as exc:
            self._failed(str(exc))
        if self.election.must_step_down(self._clock()):
            self._lose(f"not renewed within {self.election.renew_deadline:g}s")

    async def _acquire_or_renew(self, started: float) -> None:
        lease = await self._read()
        now = self._clock()
        record = lease.spec if lease is not None else None
        before = self.election.observed
        self.election.observe(record, now)
        if record and record.holder not in (self.identity, before and before.holder):
            log.info("%s: held by %s", self.subject, record.holder or "nobody")
        self._failing = ""
        if self.election.held_by_other(now):
            if self.election.renewed_at is not None:
                assert record is not None
                self._lose(f"now held by {record.holder}")
            return
        claim = self.election.claim(self._wall())
        written = await self._write(lease, claim)
        self.election.won(written.spec, started, self._clock())
        self._lease = written
        if not self.leading.is_set():
            self._win(claim)

    async def _read(self) -> Lease | None:
        """The Lease as it is now; ``None`` when there is none."""
        try:
            found = await self.kube.get(LEASES, self.name, self.namespace)
        except KubeNotFound:
            return None
        return Lease.from_response(found, f"{self.subject} (get)")

    async def _write(self, lease: Lease | None, record: LeaseSpec) -> Lease:
        """Create the Lease, or replace it on the resourceVersion it was read at: a replica
        that read an older version gets 409 Conflict."""
        if lease is None:
            method, path, subject = "POST", LEASES.path(self.namespace), f"{self.subject} (create)"
            body = Lease(ObjectMeta(self.name, self.namespace), record)
        else:
            method, path = "PUT", LEASES.path(self.namespace, self.name)
            subject, body = f"{self.subject} (update)", replace(lease, spec=record)
        answer = await self.kube.request(
            method, path, subject, body=body.to_json(), content_type="application/json"
        )
        return Lease.from_response(answer, subject)

    async def _release(self) -> None:
        """Clear the holder so that a successor takes the Lease at once.

        The write carries the version we last wrote. A 409 says the Lease changed since:
        most often by our own renew, applied by the server while a cancellation lost its
        answer. So a refused release reads the Lease again and releases that version while
        it still names us, and leaves it alone once somebody else holds it."""
        lease = self._lease
        if lease is None or not self.election.ours():
            return
        try:
            async with asyncio.timeout(self.kube.timeout):
                for _ in range(RELEASE_ATTEMPTS):
                    record = self.election.release(self._wall())
                    if record is None:
                        log.info(
                            "%s: now held by another replica: not ours to release", self.subject
                        )
                        return
                    try:
                        await self._write(lease, record)
                    except KubeConflict:
                        lease = await self._read_again()
                        if lease is None:
                            return
                        continue
                    self.election.observe(record, self._clock())
                    log.info("%s: released by %s", self.subject, self.identity)
                    return
                raise KubeConflict(self.subject, 409, "Conflict", "kept changing")
        except (KubeError, TimeoutError) as exc:
            log.warning("%s: not released, it expires instead: %s", self.subject, exc)

    async def _read_again(self) -> Lease | None:
        """The Lease as it is now, observed; ``None`` when it is gone."""
        lease = await self._read()
        if lease is not None:
            self.election.observe(lease.spec, self._clock())
        return lease

    def _pause(self) -> float:
        left = self.election.time_left(self._clock())
        if left is not None:  # renew on the period, and wake to step down on time
            return min(self.retry_period, left)
        return self.retry_period * (1 + random.random() * JITTER)

    # Transitions.

    def _win(self, record: LeaseSpec) -> None:
        log.info(
            "%s: %s became leader (term %d, lease %ds)",
            self.subject,
            self.identity,
            record.transitions,
            record.duration,
        )
        self.following.clear()
        self.leading.set()
        for listener in self.listeners:
            listener(True)

    def _lose(self, reason: str, *, level: int = logging.WARNING) -> None:
        self.election.step_down()
        if not self.leading.is_set():
            return
        log.log(level, "%s: %s stopped leading: %s", self.subject, self.identity, reason)
        self.leading.clear()
        self.following.set()
        for listener in self.listeners:
            listener(False)

    def _failed(self, why: str) -> None:
        """Log the first failure of a streak at warning level, its repeats at debug."""
        level = logging.DEBUG if why == self._failing else logging.WARNING
        self._failing = why
        role = "renew" if self.election.renewed_at is not None else "acquire"
        log.log(level, "%s: %s failed: %s", self.subject, role, why)
