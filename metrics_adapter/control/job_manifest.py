"""The Jobs KEDA creates for a ScaledJob, and which of them it deletes (keda-scaledjob
reference §1.3-§1.5; kedacore/keda ``pkg/scaling/executor/scale_jobs.go`` and
``controllers/keda/scaledjob_controller.go``).

Pure: :func:`build_job` returns the JSON to create, :func:`history_to_delete` and
:func:`rollout_to_delete` pick from Jobs the caller listed. The label and annotation names
the rest of the service shares are defined here, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from metrics_adapter.control.hpa import label_value
from metrics_adapter.kube.batch import JOB_COMPLETE, JOB_FAILED, Job
from metrics_adapter.kube.objects import KEDA_OPERATOR, Json, JsonObject, OwnerReference
from metrics_adapter.model.keda import API_VERSION
from metrics_adapter.model.scaled_job import EXCLUDED_LABELS, KIND, ScaledJob

JOB_API_VERSION = "batch/v1"
JOB_KIND = "Job"
JOB_LABEL = "scaledjob.keda.sh/name"
"""On every Job of a ScaledJob and on its Pod template: how KEDA lists and counts them."""
GENERATION_ANNOTATION = "scaledjob.keda.sh/generation"
"""The ScaledJob's ``metadata.generation`` a Job was made from (see :func:`rollout_to_delete`)."""
JOB_EXCLUDED_LABELS = EXCLUDED_LABELS
"""``scaledjob.keda.sh/job-excluded-labels``: the ScaledJob labels its Jobs do not get."""
NAME_LABEL = "app.kubernetes.io/name"
VERSION_LABEL = "app.kubernetes.io/version"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
DEFAULT_RESTART_POLICY = "OnFailure"
"""A pod template without one would get ``Always``, which a Job refuses."""
BACKGROUND = "Background"
FOREGROUND = "Foreground"
HISTORY_PROPAGATION = BACKGROUND
"""History cleanup always deletes in the background; only a rollout can be foreground."""

_NEVER = datetime.min.replace(tzinfo=UTC)


def job_selector(sj: ScaledJob) -> str:
    """The label selector of the ScaledJob's Jobs, in its namespace."""
    return f"{JOB_LABEL}={sj.meta.name}"


def owned(sj: ScaledJob, jobs: Sequence[Job]) -> list[Job]:
    """The Jobs that are ``sj``'s as KEDA lists them: its namespace and its label. Deletions
    pick only among these, so a caller that listed too much cannot delete another's Job."""
    name, namespace = sj.meta.name, sj.meta.namespace
    return [j for j in jobs if j.namespace == namespace and j.labels.get(JOB_LABEL) == name]


def build_job(sj: ScaledJob, version: str) -> JsonObject:
    """One Job as KEDA's ``generateJobs`` makes it: the API server names it ``<name>-<random>``.

    KEDA's labels come first and the ScaledJob's own labels (less the excluded ones) after,
    so a ScaledJob label of the same key wins; the same for annotations, all copied. The
    spec is a deep copy of ``jobTargetRef``: the ScaledJob is never changed. ``version`` is
    the ``app.kubernetes.io/version`` label, made a valid label value.
    """
    name = sj.meta.name
    # KEDA splits on "," alone; label keys hold no spaces, so stripping only forgives them.
    excluded = {k.strip() for k in sj.meta.annotations.get(EXCLUDED_LABELS, "").split(",")}
    labels: JsonObject = {
        NAME_LABEL: name,
        VERSION_LABEL: label_value(version),
        PART_OF_LABEL: name,
        MANAGED_BY_LABEL: KEDA_OPERATOR,
        JOB_LABEL: name,
    }
    labels.update((k, v) for k, v in sj.meta.labels.items() if k not in excluded)
    annotations: JsonObject = {GENERATION_ANNOTATION: str(sj.meta.generation)}
    annotations.update(sj.meta.annotations)

    spec = _copy(sj.job_spec)
    template = _object(spec, "template")
    template_meta = _object(template, "metadata")
    # KEDA sets these on the ScaledJob's template before copying it, so every Job has them.
    template_meta["generateName"] = f"{name}-"
    _object(template_meta, "labels")[JOB_LABEL] = name
    pod_spec = _object(template, "spec")
    if not pod_spec.get("restartPolicy"):
        pod_spec["restartPolicy"] = DEFAULT_RESTART_POLICY

    owner = OwnerReference(API_VERSION, KIND, name, sj.meta.uid)
    return {
        "apiVersion": JOB_API_VERSION,
        "kind": JOB_KIND,
        "metadata": {
            "generateName": f"{name}-",
            "namespace": sj.meta.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner.to_json()],
        },
        "spec": spec,
    }


def history_to_delete(sj: ScaledJob, jobs: Sequence[Job]) -> list[Job]:
    """The finished Jobs past ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit``:
    the oldest (count - limit) of each kind by ``status.completionTime``, Complete ones
    first. A limit of 0 removes them all. Delete them with :data:`HISTORY_PROPAGATION`.

    KEDA sorts with ``metav1.Time.Before``, which is false whenever either time is nil, so a
    Job without a completion time (every Failed Job: Kubernetes sets it on success only) is
    neither before nor after any other and Go's unstable sort leaves the order undefined.
    Here such Jobs count as oldest, in the order listed, and the sort is stable: for the usual
    all-nil Failed list that is the list order, which is what KEDA ends up with too.
    """
    result: list[Job] = []
    mine = owned(sj, jobs)
    for kind, limit in (
        (JOB_COMPLETE, sj.successful_jobs_history_limit),
        (JOB_FAILED, sj.failed_jobs_history_limit),
    ):
        finished = sorted((j for j in mine if j.finished == kind), key=_completed)
        result.extend(finished[: max(len(finished) - limit, 0)])
    return result


def rollout_to_delete(sj: ScaledJob, jobs: Sequence[Job]) -> list[Job]:
    """The Jobs a new generation of ``sj`` deletes (reference §1.4): unless the rollout is
    ``gradual``, every Job of ``sj`` whose generation annotation is missing or is not
    ``metadata.generation``, running or not. Annotations are compared as text, as written.
    Delete them with :func:`propagation`."""
    if sj.rollout_strategy == "gradual":
        return []
    generation = str(sj.meta.generation)
    return [j for j in owned(sj, jobs) if j.annotations.get(GENERATION_ANNOTATION) != generation]


def propagation(sj: ScaledJob) -> str:
    """The ``propagationPolicy`` of rollout deletions: ``rollout.propagationPolicy``."""
    return FOREGROUND if sj.rollout_propagation == "foreground" else BACKGROUND


def _completed(job: Job) -> tuple[bool, datetime]:
    return job.completion_time is not None, job.completion_time or _NEVER


def _copy(value: Mapping[str, object]) -> JsonObject:
    """A deep copy as plain JSON containers: nothing is shared with the ScaledJob."""
    return {str(k): _copy_value(v) for k, v in value.items()}


def _copy_value(value: object) -> Json:
    if isinstance(value, Mapping):
        return _copy(value)
    if isinstance(value, list | tuple):
        return [_copy_value(v) for v in value]
    return cast(Json, value)  # a scalar, as YAML or JSON decoded it


def _object(parent: JsonObject, key: str) -> JsonObject:
    """``parent[key]`` as an object, made empty when absent (KEDA's typed JobSpec always has
    it); a value of another type could not be in KEDA's JobSpec either and is replaced."""
    child = parent.get(key)
    if not isinstance(child, dict):
        child = parent[key] = {}
    return child
