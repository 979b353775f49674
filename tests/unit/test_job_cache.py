"""The Jobs and Pods of ScaledJobs, as the two watches deliver them."""

from __future__ import annotations

from typing import Any

from metrics_adapter.control.job_cache import JobCache
from metrics_adapter.control.job_manifest import JOB_LABEL
from metrics_adapter.kube.batch import Job
from metrics_adapter.model.scaled_job import ScaledJobRef

OWNER = ScaledJobRef("batch", "processor")


def job(name: str, owner: str = "processor", namespace: str = "batch") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": {JOB_LABEL: owner}}}


def pod(name: str, job_name: str, phase: str = "Pending") -> dict[str, Any]:
    labels = {JOB_LABEL: "processor", "job-name": job_name}
    return {
        "metadata": {"name": name, "namespace": "batch", "labels": labels},
        "status": {"phase": phase},
    }


def synced(cache: JobCache) -> JobCache:
    cache.handle("Job", "SYNCED", {})
    cache.handle("Pod", "SYNCED", {})
    return cache


def test_synced_only_once_both_kinds_are_listed() -> None:
    cache = JobCache()
    cache.handle("Job", "SYNCED", {})
    assert not cache.synced.is_set()
    cache.handle("Pod", "SYNCED", {})
    assert cache.synced.is_set()


def test_jobs_and_pods_are_kept_per_scaled_job() -> None:
    cache = synced(JobCache())
    cache.handle("Job", "ADDED", job("processor-a"))
    cache.handle("Job", "ADDED", job("other-a", owner="other"))
    cache.handle("Job", "ADDED", job("processor-b", namespace="elsewhere"))
    cache.handle("Pod", "ADDED", pod("processor-a-x", "processor-a"))
    cache.handle("Pod", "MODIFIED", pod("processor-a-x", "processor-a", "Running"))
    assert [j.name for j in cache.jobs(OWNER)] == ["processor-a"]
    assert [j.name for j in cache.jobs(ScaledJobRef("batch", "other"))] == ["other-a"]
    assert [j.name for j in cache.jobs(ScaledJobRef("elsewhere", "processor"))] == ["processor-b"]
    assert [(p.name, p.phase) for p in cache.pods(OWNER)] == [("processor-a-x", "Running")]


def test_a_deletion_after_a_relist_has_no_labels_and_still_removes() -> None:
    cache = synced(JobCache())
    cache.handle("Job", "ADDED", job("processor-a"))
    cache.handle("Pod", "ADDED", pod("processor-a-x", "processor-a"))
    cache.handle("Job", "DELETED", {"metadata": {"name": "processor-a", "namespace": "batch"}})
    cache.handle("Pod", "DELETED", {"metadata": {"name": "processor-a-x", "namespace": "batch"}})
    assert cache.jobs(OWNER) == []
    assert cache.pods(OWNER) == []


def test_a_created_job_counts_before_its_watch_event_and_once_after() -> None:
    cache = synced(JobCache())
    created = Job.parse(job("processor-new"))
    cache.created(OWNER, created)
    assert cache.jobs(OWNER) == [created]
    cache.handle("Job", "ADDED", job("processor-new"))
    assert [j.name for j in cache.jobs(OWNER)] == ["processor-new"]
    cache.deleted(OWNER, created)
    assert cache.jobs(OWNER) == []


def test_objects_without_the_label_are_ignored() -> None:
    cache = synced(JobCache())
    cache.handle("Job", "ADDED", {"metadata": {"name": "x", "namespace": "batch"}})
    cache.handle("Job", "ADDED", {"metadata": {"name": "y", "namespace": "batch", "labels": 3}})
    assert cache.jobs(ScaledJobRef("batch", "")) == []
