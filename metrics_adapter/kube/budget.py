"""The write budget: a client-side rate limit on the controller's writes to the Kubernetes API.

``--kube-api-qps`` and ``--kube-api-burst`` (KEDA's flags, and client-go's token bucket:
``burst`` writes at once, then ``qps`` a second). Only writes spend it: reads cost the
apiserver little and the activator reads each target's ``/scale`` before it decides, and the
Lease's renewals and the metrics API's TokenReviews and SubjectAccessReviews never wait
behind a storm (their callers send them outside the budget).

Writes waiting for the budget go by kind, then in order: a target's replicas first (what an
activation is for), then statuses, HPAs and the rest, then Events. (An activation waits
for its /scale, then its status; its Event goes in the background, when nothing else waits.)

A 429 from the apiserver (its own overload protection, API Priority and Fairness) pauses
the whole budget for its ``Retry-After``: every write slows down, instead of each retrying
on its own into the same storm.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from enum import IntEnum


class Write(IntEnum):
    """What a write is for, in the order waiting writes are sent."""

    SCALE = 0
    """A scale target's replicas."""
    OBJECT = 1
    """A status, an HPA, a finalizer, a Job."""
    EVENT = 2


class WriteBudget:
    """A token bucket of ``burst`` writes refilled at ``qps`` a second, served by kind."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"a write budget needs qps > 0 and burst >= 1, not {qps}, {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._filled_at = clock()
        self._paused_until = 0.0
        self._waiting: list[tuple[Write, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Writes waiting for the budget now."""
        return sum(not f.done() for _, _, f in self._waiting)

    def free(self) -> bool:
        """Whether a write would be sent now, without waiting (nothing spent)."""
        now = self._refill()
        return not self._waiting and now >= self._paused_until and self._tokens >= 1

    async def take(self, kind: Write) -> float:
        """Wait until a write of ``kind`` may be sent; the seconds waited."""
        if self.free():
            self._tokens -= 1
            return 0.0
        now = self._clock()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (kind, next(self._order), turn))
        self._schedule(now)
        await turn  # a cancelled waiter's future is skipped when its turn comes
        return self._clock() - now

    def pause(self, seconds: float) -> None:
        """No write for ``seconds`` (the apiserver's Retry-After), and the burst spent: the
        writes after the pause resume at ``qps``."""
        now = self._refill()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = min(self._tokens, 0.0)
        if self._waiting:
            self._schedule(now)

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._filled_at) * self.qps)
        self._filled_at = now
        return now

    def _release(self) -> None:
        self._timer = None
        now = self._refill()
        while self._waiting and now >= self._paused_until:
            if self._waiting[0][2].done():  # cancelled while waiting
                heapq.heappop(self._waiting)
                continue
            if self._tokens < 1:
                break
            self._tokens -= 1
            heapq.heappop(self._waiting)[2].set_result(None)
        if self._waiting:
            self._schedule(now)

    def _schedule(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(self._paused_until - now, (1 - self._tokens) / self.qps, 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._release)
