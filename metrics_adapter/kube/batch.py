"""The ``batch/v1`` Jobs a ScaledJob creates, and their Pods, as read back from the API
server: only what KEDA's job executor looks at (keda-scaledjob reference §1.2 step C,
§1.4, §1.5).

Controllers write these objects, not users, and a poll must not stop on one odd Job: a field
that cannot be read counts as absent and never raises. Times are UTC-aware, so finished Jobs
always sort.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.objects import Condition, ObjectMeta, frozen
from metrics_adapter.kube.wire import parse_time
from scalers.errors import Problems

JOB_COMPLETE = "Complete"
JOB_FAILED = "Failed"
JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
"""What the Job controller labels its Pods with: KEDA selects by the first; Kubernetes 1.27+
also writes the second, which is read when the first is missing."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    namespace: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: frozen({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: frozen({}))
    finished: str | None = None
    """``Complete`` or ``Failed`` when a condition of that type is ``True`` (the first such,
    in list order, as KEDA's ``getFinishedJobConditionType``); ``None`` while it runs."""
    completion_time: datetime | None = None
    """Set by the Job controller on success only: a Failed Job usually has none."""
    creation_timestamp: datetime | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> Job:
        problems = Problems()  # deliberately dropped: see the module docstring
        meta = ObjectMeta.parse(raw.get("metadata"), problems)
        status = Fields(raw.get("status"), "status", problems, [])
        return cls(
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            labels=meta.labels,
            annotations=meta.annotations,
            finished=_finished(status),
            completion_time=_utc(parse_time(status.raw.get("completionTime"))),
            creation_timestamp=_utc(meta.creation_timestamp),
        )


@dataclass(frozen=True, slots=True)
class Pod:
    """A Pod of a Job. No namespace: Jobs and their Pods are listed in the ScaledJob's."""

    name: str
    job_name: str | None
    phase: str = ""
    true_conditions: frozenset[str] = frozenset()
    """The types of the Pod's conditions whose status is ``True``."""

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> Pod:
        problems = Problems()  # deliberately dropped: see the module docstring
        meta = ObjectMeta.parse(raw.get("metadata"), problems)
        status = Fields(raw.get("status"), "status", problems, [])
        conditions = (Condition.parse(c) for c in status.items("conditions"))
        return cls(
            name=meta.name,
            job_name=next((meta.labels[k] for k in JOB_NAME_LABELS if meta.labels.get(k)), None),
            phase=status.string("phase", "") or "",
            true_conditions=frozenset(c.type for c in conditions if c.status == "True"),
        )


def _finished(status: Fields) -> str | None:
    for f in status.items("conditions"):
        c = Condition.parse(f)
        if c.type in (JOB_COMPLETE, JOB_FAILED) and c.status == "True":
            return c.type
    return None


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC, so it compares with the others."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
