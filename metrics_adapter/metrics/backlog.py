"""The poller's backlog: how many queries are behind their schedule, how old the oldest
answer is, and how many have gone unanswered past the staleness bound; as series, and as a
log line when it starts, every :data:`REPEAT_SECONDS` while it lasts, and when it ends.

One line for every query at once, not one per trigger: a backlog is the process's state,
and ten thousand lines would only deepen it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from metrics_adapter.metrics.telemetry import Telemetry

log = logging.getLogger(__name__)

REPEAT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Backlog:
    queries: int
    overdue: int
    """Queries not answered for longer than their interval and a timed-out poll."""
    stale: int
    """Queries not answered past the staleness bound: their values are errors."""
    oldest_s: float
    """Seconds since the least recently answered query was answered."""

    @property
    def fields(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            "overdue": self.overdue,
            "stale": self.stale,
            "oldestAnswerSeconds": round(self.oldest_s, 1),
        }


class BacklogReport:
    def __init__(self, telemetry: Telemetry, stale_intervals: float) -> None:
        self.telemetry = telemetry
        self.stale_intervals = stale_intervals
        self.since: float | None = None
        """When the current backlog began (monotonic); None while polls keep up."""
        self._said = 0.0
        self.worst = 0.0
        """The oldest answer seen during the current or last backlog, in seconds."""

    def report(self, backlog: Backlog, now: float) -> None:
        self.telemetry.backlog(backlog.overdue, backlog.stale, backlog.oldest_s)
        if backlog.overdue == 0:
            if self.since is not None:
                log.info(
                    "polls caught up after %.0fs; the oldest answer was %.0fs old",
                    now - self.since,
                    self.worst,
                    extra=backlog.fields,
                )
                self.since = None
            return
        if self.since is None:
            self.since, self._said, self.worst = now, now, backlog.oldest_s
            log.warning(
                "polls behind: %d of %d queries overdue, the oldest answer %.0fs old; a value "
                "is served as it ages and becomes an error after --stale-intervals=%g polling "
                "intervals without an answer",
                backlog.overdue,
                backlog.queries,
                backlog.oldest_s,
                self.stale_intervals,
                extra=backlog.fields,
            )
            return
        self.worst = max(self.worst, backlog.oldest_s)
        if now - self._said >= REPEAT_SECONDS:
            self._said = now
            log.warning(
                "polls still behind after %.0fs: %d of %d queries overdue, %d of them "
                "unanswered too long (their values are errors), the oldest answer %.0fs old "
                "(at worst %.0fs)",
                now - self.since,
                backlog.overdue,
                backlog.queries,
                backlog.stale,
                backlog.oldest_s,
                self.worst,
                extra=backlog.fields,
            )
