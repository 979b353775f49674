"""Jobs and Pods as read back from the API server: what KEDA looks at, and nothing a
controller wrote oddly stops the read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.kube.batch import Job, Pod

T0 = datetime(2020, 7, 29, 15, 37, tzinfo=UTC)


def test_a_finished_job() -> None:
    job = Job.parse(
        {
            "metadata": {
                "name": "thumbnailer-x7k2p",
                "namespace": "media",
                "uid": "u-1",
                "labels": {"scaledjob.keda.sh/name": "thumbnailer"},
                "annotations": {"scaledjob.keda.sh/generation": "3"},
                "creationTimestamp": "2020-07-29T15:30:00Z",
            },
            "status": {
                "completionTime": "2020-07-29T15:37:00Z",
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            },
        }
    )
    assert job == Job(
        name="thumbnailer-x7k2p",
        namespace="media",
        uid="u-1",
        labels={"scaledjob.keda.sh/name": "thumbnailer"},
        annotations={"scaledjob.keda.sh/generation": "3"},
        finished="Complete",
        completion_time=T0,
        creation_timestamp=datetime(2020, 7, 29, 15, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("conditions", "finished"),
    [
        pytest.param([], None, id="none"),
        pytest.param([{"type": "Failed", "status": "True"}], "Failed", id="failed"),
        pytest.param([{"type": "Complete", "status": "False"}], None, id="not-true"),
        pytest.param([{"type": "Suspended", "status": "True"}], None, id="other-type"),
        pytest.param(
            [{"type": "Failed", "status": "True"}, {"type": "Complete", "status": "True"}],
            "Failed",
            id="first-wins",
        ),
        pytest.param([{"type": "Complete", "status": "yes"}], None, id="odd-status"),
        pytest.param("Complete", None, id="not-a-list"),
        pytest.param(["Complete", {"type": "Complete", "status": "True"}], "Complete", id="junk"),
    ],
)
def test_finished_is_a_true_complete_or_failed_condition(
    conditions: Any, finished: str | None
) -> None:
    job = Job.parse({"metadata": {"name": "j"}, "status": {"conditions": conditions}})
    assert job.finished == finished


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({}, Job(name="", namespace="default"), id="empty"),
        pytest.param(
            {"metadata": "j", "status": [1]}, Job(name="", namespace="default"), id="not-objects"
        ),
        pytest.param(
            {"metadata": {"name": "j", "labels": {"a": "1", "b": 2}}},
            Job(name="j", namespace="default", labels={"a": "1"}),
            id="non-string-label-dropped",
        ),
        pytest.param(
            {"metadata": {"name": "j"}, "status": {"completionTime": "yesterday"}},
            Job(name="j", namespace="default"),
            id="bad-time",
        ),
        pytest.param(
            {"metadata": {"name": "j"}, "status": {"completionTime": "2020-07-29T15:37:00"}},
            Job(name="j", namespace="default", completion_time=T0),
            id="time-without-offset-is-utc",
        ),
    ],
)
def test_an_unreadable_field_counts_as_absent(raw: dict[str, Any], expected: Job) -> None:
    assert Job.parse(raw) == expected


def test_a_pod_of_a_job() -> None:
    pod = Pod.parse(
        {
            "metadata": {"name": "p", "labels": {"job-name": "j", "controller-uid": "u"}},
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False"},
                    {"type": "Initialized", "status": "True"},
                ],
            },
        }
    )
    assert pod == Pod("p", "j", "Running", frozenset({"PodScheduled", "Initialized"}))


@pytest.mark.parametrize(
    ("labels", "job_name"),
    [
        pytest.param({"job-name": "a", "batch.kubernetes.io/job-name": "b"}, "a", id="keda-label"),
        pytest.param({"batch.kubernetes.io/job-name": "b"}, "b", id="new-label"),
        pytest.param({"job-name": ""}, None, id="empty"),
        pytest.param({}, None, id="none"),
    ],
)
def test_a_pods_job_name(labels: dict[str, str], job_name: str | None) -> None:
    assert Pod.parse({"metadata": {"name": "p", "labels": labels}}).job_name == job_name


def test_an_odd_pod_is_read_as_far_as_it_goes() -> None:
    pod = Pod.parse({"metadata": {"name": "p"}, "status": {"phase": 3, "conditions": {}}})
    assert pod == Pod("p", None)
