"""kube-apiserver's wall clock, as the ``Date`` header of its answers shows it.

``lastActiveTime`` is written by one process and read by the next (after a restart, or by
another replica taking the Lease), and a cooldown compares it with "now". With each process
on its own clock, a replica five minutes ahead sees every cooldown of 300 s as over the moment
it starts, and scales to zero what should have stayed. So the controller's "now" is the API
server's: the local clock corrected by the median offset of the last answers. ``Date`` has a
resolution of one second, so an offset under a second is left alone.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

SAMPLES = 15
RESOLUTION = 1.0
"""Seconds: ``Date`` is truncated to the second."""
WARN_BEYOND = 30.0


class ServerClock:
    def __init__(self, wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._wall = wall
        self._offsets: deque[float] = deque(maxlen=SAMPLES)
        self._warned = False

    def observe(self, date: str | None, sent: datetime, received: datetime) -> None:
        """One answer's ``Date``, for a request sent and answered at these local times."""
        if not date:
            return
        try:
            server = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        # The server stamped it between sending and receiving, within its second.
        local = sent + (received - sent) / 2
        self._offsets.append((server - local).total_seconds() + RESOLUTION / 2)
        skew = self.offset
        if abs(skew) > WARN_BEYOND and not self._warned:
            self._warned = True
            log.warning(
                "this machine's clock is %.0f s %s kube-apiserver's: lastActiveTime and "
                "cooldowns use kube-apiserver's",
                abs(skew),
                "behind" if skew > 0 else "ahead of",
            )

    @property
    def offset(self) -> float:
        """Seconds to add to the local clock to read the server's; 0 until an answer came,
        or while the two agree to within the header's resolution."""
        if not self._offsets:
            return 0.0
        median = statistics.median(self._offsets)
        return median if abs(median) > RESOLUTION else 0.0

    def local(self) -> datetime:
        return self._wall()

    def now(self) -> datetime:
        return self._wall() + timedelta(seconds=self.offset)
