"""The Jobs KEDA creates for a ScaledJob (reference §1.3), the finished ones its history
limits delete (§1.5) and the old-generation ones a rollout deletes (§1.4)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metrics_adapter.control.job_manifest import (
    GENERATION_ANNOTATION,
    JOB_LABEL,
    build_job,
    history_to_delete,
    job_selector,
    propagation,
    rollout_to_delete,
)
from metrics_adapter.kube.batch import Job
from metrics_adapter.model.scaled_job import ScaledJob, parse_scaled_job


def raw_scaled_job(
    metadata: dict[str, Any] | None = None, template_spec: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {
            "name": "thumbnailer",
            "namespace": "media",
            "uid": "sj-uid",
            "generation": 3,
            **(metadata or {}),
        },
        "spec": {
            "jobTargetRef": {
                "backoffLimit": 2,
                "template": {
                    "metadata": {"labels": {"app": "thumbs"}},
                    "spec": template_spec
                    or {"containers": [{"name": "w", "image": "busybox", "args": ["a"]}]},
                },
            },
            "triggers": [{"type": "cron", "metadata": {}}],
            **spec,
        },
    }


def scaled_job(**kwargs: Any) -> ScaledJob:
    return parse_scaled_job(raw_scaled_job(**kwargs))


def test_the_job_keda_builds() -> None:
    raw = raw_scaled_job(
        metadata={
            "labels": {
                "team": "media",
                "app.kubernetes.io/part-of": "site",  # overrides KEDA's
                "foo.bar/environment": "prod",
                "foo.bar/version": "1",
            },
            "annotations": {
                "scaledjob.keda.sh/job-excluded-labels": "foo.bar/environment, foo.bar/version",
                "note": "hi",
            },
        },
        template_spec={"containers": [{"name": "w", "image": "busybox"}], "restartPolicy": ""},
    )
    before = copy.deepcopy(raw)
    sj = parse_scaled_job(raw)
    assert build_job(sj, "2.20.2") == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": "thumbnailer-",
            "namespace": "media",
            "labels": {
                "app.kubernetes.io/name": "thumbnailer",
                "app.kubernetes.io/version": "2.20.2",
                "app.kubernetes.io/part-of": "site",
                "app.kubernetes.io/managed-by": "keda-operator",
                "scaledjob.keda.sh/name": "thumbnailer",
                "team": "media",
            },
            "annotations": {
                "scaledjob.keda.sh/generation": "3",
                "scaledjob.keda.sh/job-excluded-labels": "foo.bar/environment, foo.bar/version",
                "note": "hi",
            },
            "ownerReferences": [
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "ScaledJob",
                    "name": "thumbnailer",
                    "uid": "sj-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {
                    "generateName": "thumbnailer-",
                    "labels": {"app": "thumbs", "scaledjob.keda.sh/name": "thumbnailer"},
                },
                "spec": {
                    "containers": [{"name": "w", "image": "busybox"}],
                    "restartPolicy": "OnFailure",
                },
            },
        },
    }
    assert raw == before


def at(obj: Any, *path: str | int) -> Any:
    """The value at ``path`` in JSON built by the code under test."""
    for key in path:
        obj = obj[key]
    return obj


def test_jobs_share_nothing_with_the_scaled_job_or_each_other() -> None:
    sj = scaled_job()
    spec_before = copy.deepcopy(sj.job_spec)
    first, second = build_job(sj, "1"), build_job(sj, "1")
    at(first, "spec", "template", "spec", "containers", 0, "args").append("b")
    at(first, "metadata", "labels")["x"] = "y"
    assert sj.job_spec == spec_before
    assert second == build_job(sj, "1")
    assert "restartPolicy" not in at(sj.job_spec, "template", "spec")


def test_a_restart_policy_that_is_set_is_kept() -> None:
    sj = scaled_job(template_spec={"containers": [], "restartPolicy": "Never"})
    assert at(build_job(sj, "1"), "spec", "template", "spec", "restartPolicy") == "Never"


def test_a_scaled_job_annotation_overrides_the_generation() -> None:
    sj = scaled_job(metadata={"annotations": {GENERATION_ANNOTATION: "99"}})
    assert at(build_job(sj, "1"), "metadata", "annotations", GENERATION_ANNOTATION) == "99"


def test_a_version_that_is_no_label_value_is_made_one() -> None:
    labels = at(build_job(scaled_job(), "0.0.0+source"), "metadata", "labels")
    assert labels["app.kubernetes.io/version"] == "0.0.0-source"


def test_the_selector_of_a_scaled_jobs_jobs() -> None:
    assert job_selector(scaled_job()) == "scaledjob.keda.sh/name=thumbnailer"


def job(
    name: str,
    finished: str | None = None,
    completed: str | None = None,
    *,
    generation: str | None = "3",
    owner: str = "thumbnailer",
    namespace: str = "media",
) -> Job:
    annotations = {} if generation is None else {GENERATION_ANNOTATION: generation}
    status: dict[str, Any] = {}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
    if completed:
        status["completionTime"] = f"2020-07-29T15:{completed}:00Z"
    return Job.parse(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {JOB_LABEL: owner},
                "annotations": annotations,
            },
            "status": status,
        }
    )


def names(jobs: list[Job]) -> list[str]:
    return [j.name for j in jobs]


@pytest.mark.parametrize(
    ("limits", "jobs", "deleted"),
    [
        # KEDA's TestCleanUpNormalCase.
        pytest.param(
            (2, 2),
            [
                job("name1", "Complete", "37"),
                job("name2", "Complete", "36"),
                job("name3", "Complete", "38"),
            ],
            ["name2"],
            id="keda-normal",
        ),
        # KEDA's TestCleanUpMixedCaseWithSortByTime.
        pytest.param(
            (1, 2),
            [
                job("success1", "Complete", "37"),
                job("success2", "Complete", "36"),
                job("success3", "Complete", "35"),
                job("fail1", "Failed", "37"),
                job("fail2", "Failed", "36"),
                job("fail3", "Failed", "38"),
            ],
            ["success3", "success2", "fail2"],
            id="keda-mixed",
        ),
        pytest.param(
            (0, 0),
            [job("c", "Complete", "30"), job("f", "Failed"), job("running")],
            ["c", "f"],
            id="limit-0-removes-all-finished",
        ),
        pytest.param(
            (5, 5),
            [job("c", "Complete", "30"), job("f", "Failed")],
            [],
            id="under-the-limits",
        ),
        pytest.param(
            (100, 1),
            [job("f3", "Failed"), job("f1", "Failed"), job("f2", "Failed")],
            ["f3", "f1"],
            id="no-completion-time-list-order",
        ),
        pytest.param(
            (1, 100),
            [
                job("late", "Complete", "50"),
                job("unknown", "Complete"),
                job("early", "Complete", "10"),
            ],
            ["unknown", "early"],
            id="no-completion-time-counts-oldest",
        ),
        pytest.param(
            (0, 0),
            [
                job("other-sj", "Complete", "30", owner="resizer"),
                job("other-ns", "Complete", "30", namespace="default"),
            ],
            [],
            id="only-its-own",
        ),
    ],
)
def test_history_cleanup(limits: tuple[int, int], jobs: list[Job], deleted: list[str]) -> None:
    successful, failed = limits
    sj = scaled_job(successfulJobsHistoryLimit=successful, failedJobsHistoryLimit=failed)
    assert names(history_to_delete(sj, jobs)) == deleted


def test_history_limits_default_to_100() -> None:
    # KEDA's TestCleanUpDefaultValue: 101 of each, the oldest of each goes.
    jobs = [job("success0", "Complete", "35"), job("fail101", "Failed", "35")]
    jobs += [job(f"success{i}", "Complete", "40") for i in range(1, 101)]
    jobs += [job(f"fail{i}", "Failed", "40") for i in range(102, 202)]
    assert names(history_to_delete(scaled_job(), jobs)) == ["success0", "fail101"]


ROLLOUT_JOBS = [
    job("current"),
    job("old", generation="2"),
    job("finished-old", "Complete", "30", generation="1"),
    job("unannotated", generation=None),
    job("foreign", generation="1", owner="resizer"),
]


@pytest.mark.parametrize(
    ("spec", "deleted", "how"),
    [
        pytest.param({}, ["old", "finished-old", "unannotated"], "Background", id="default"),
        pytest.param(
            {"rollout": {"strategy": "immediate", "propagationPolicy": "foreground"}},
            ["old", "finished-old", "unannotated"],
            "Foreground",
            id="immediate-foreground",
        ),
        pytest.param({"rollout": {"strategy": "gradual"}}, [], "Background", id="gradual"),
        pytest.param({"rolloutStrategy": "gradual"}, [], "Background", id="legacy-gradual"),
    ],
)
def test_rollout_deletes_other_generations_unless_gradual(
    spec: dict[str, Any], deleted: list[str], how: str
) -> None:
    sj = scaled_job(**spec)
    assert names(rollout_to_delete(sj, ROLLOUT_JOBS)) == deleted
    assert propagation(sj) == how
