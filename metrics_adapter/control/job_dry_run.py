"""Standalone ScaledJobs: what KEDA's poll would do, logged instead of done.

Standalone mode has no cluster, so no Jobs: every plan counts running 0 and pending 0. So
each poll that finds a queue logs the Jobs KEDA would create *if none were running* (KEDA,
having created them, would count them at its next poll and create fewer). The line is the
plan's own summary, with the formula beside it, so a user sees the numbers KEDA computes
with before deploying the ScaledJob. A paused ScaledJob is left alone, as KEDA stops its loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_adapter.control.activator import TriggerState
from metrics_adapter.control.job_scaling import JobCounts, JobPlan, plan
from metrics_adapter.control.scaled_jobs import metrics
from metrics_adapter.model.annotations import PAUSED
from metrics_adapter.model.scaled_job import ScaledJob, ScaledJobRef

log = logging.getLogger(__name__)

NO_JOBS = JobCounts(running=0, pending=0)
"""What a standalone poll counts: there is no cluster to list Jobs in."""


@dataclass(frozen=True, slots=True)
class _Logged:
    summary: str
    at: datetime


class DryRunJobs:
    """Evaluates a ScaledJob after each new reading of one of its triggers; logs its
    activity when it changes, and the Jobs it would create when that changes or once per
    ``pollingInterval`` (KEDA's cadence), not once per trigger read in that interval."""

    def __init__(self) -> None:
        self.activity: dict[ScaledJobRef, bool] = {}
        self._logged: dict[ScaledJobRef, _Logged] = {}
        self._paused: set[ScaledJobRef] = set()

    def evaluate(
        self, sj: ScaledJob, states: Sequence[TriggerState], now: datetime
    ) -> JobPlan | None:
        """The plan of this poll (``None`` when paused)."""
        ref = sj.ref
        extra = {"scaledJob": str(ref)}
        if sj.paused:
            if ref not in self._paused:
                log.info("%s is paused by %s: no Jobs would be created", ref, PAUSED, extra=extra)
                self._paused.add(ref)
            return None
        decided = plan(sj, metrics(list(states)), NO_JOBS)
        if self.activity.get(ref, False) != decided.active:
            state = "active" if decided.active else "inactive"
            log.info("%s is %s: %s", ref, state, _why(sj, states, decided), extra=extra)
            self.activity[ref] = decided.active
        if decided.jobs_to_create > 0:
            summary = decided.summary(f"{ref.namespace}/{ref.name}")
            last = self._logged.get(ref)
            # A tenth of slack: one loop's readings come a poll's latency earlier or later.
            due = timedelta(seconds=0.9 * sj.polling_interval)
            if last is None or last.summary != summary or now - last.at >= due:
                log.info("%s (%s)", summary, decided.formula, extra=extra)
                self._logged[ref] = _Logged(summary, now)
        return decided


def _why(sj: ScaledJob, states: Sequence[TriggerState], decided: JobPlan) -> str:
    """As the ScaledObject dry run says it: the triggers whose queue made it active, else
    ``minReplicaCount``, else every trigger's comparison or error."""
    if decided.used:
        return "; ".join(s.why() for s in states if s.bound.metric_name in decided.used)
    if decided.active:
        return f"minReplicaCount {sj.min_jobs} keeps it active"
    return "; ".join(s.why() for s in states) or "no trigger read yet"
