"""The ScaledJob model: KEDA's defaults and effective bounds, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.kube.objects import ObjectRef
from metrics_adapter.model.scaled_job import ScaledJobRef, parse_scaled_job, read_scaled_job
from scalers.errors import ConfigError
from tests.unit.test_seeds import seed_documents

TEMPLATE = {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
TRIGGER = {"type": "redis", "metadata": {"address": "r:6379", "listName": "l"}}


def doc(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "batch"},
        "spec": {"jobTargetRef": TEMPLATE, "triggers": [TRIGGER], **spec},
    }


def test_the_seed_parses_with_keda_defaults_and_a_warning_for_its_misplaced_field() -> None:
    [(_, seed)] = seed_documents("ScaledJob")
    sj = parse_scaled_job(seed)
    assert (sj.min_jobs, sj.max_jobs, sj.polling_interval) == (0, 50, 30)
    assert (sj.successful_jobs_history_limit, sj.failed_jobs_history_limit) == (5, 5)
    assert sj.scaling_strategy.strategy == "default"
    assert sj.rollout_strategy == "immediate"
    assert [c["name"] for c in sj.containers] == ["processor"]
    assert sj.warnings == (
        "jobTargetRef.template.backoffLimit: not a field of a pod template, dropped by the "
        "API server; it belongs in jobTargetRef, beside template",
    )


def test_defaults() -> None:
    sj = parse_scaled_job(doc())
    assert sj.polling_interval == 30
    assert sj.successful_jobs_history_limit == sj.failed_jobs_history_limit == 100
    assert sj.max_replica_count is None
    assert sj.scaling_strategy.multiple_scalers_calculation == "max"
    assert sj.rollout_propagation == "background"
    assert sj.warnings == ()


@pytest.mark.parametrize(
    ("bounds", "min_jobs", "max_jobs"),
    [
        ({}, 0, 100),
        ({"minReplicaCount": 5}, 5, 100),  # max unset: 100, not 100 - min
        ({"minReplicaCount": 5, "maxReplicaCount": 20}, 5, 15),
        ({"minReplicaCount": 30, "maxReplicaCount": 20}, 20, 20),  # min > max: clamped
    ],
    ids=["defaults", "min-only", "min-and-max", "min-above-max"],
)
def test_effective_bounds_as_keda_computes_them(
    bounds: dict[str, int], min_jobs: int, max_jobs: int
) -> None:
    sj = parse_scaled_job(doc(**bounds))
    assert (sj.min_jobs, sj.max_jobs) == (min_jobs, max_jobs)


def test_an_unknown_strategy_or_a_custom_one_without_a_number_is_default_with_a_warning() -> None:
    unknown = parse_scaled_job(doc(scalingStrategy={"strategy": "fastest"}))
    assert unknown.scaling_strategy.strategy == "default"
    assert "scalingStrategy.strategy: 'fastest' is not a strategy" in unknown.warnings[0]
    custom = parse_scaled_job(
        doc(scalingStrategy={"strategy": "custom", "customScalingRunningJobPercentage": "half"})
    )
    assert custom.scaling_strategy.strategy == "default"
    assert "'half' is not a number" in custom.warnings[0]
    ok = parse_scaled_job(
        doc(
            scalingStrategy={
                "strategy": "custom",
                "customScalingQueueLengthDeduction": 1,
                "customScalingRunningJobPercentage": "0.5",
            }
        )
    )
    assert ok.scaling_strategy.strategy == "custom"
    assert ok.scaling_strategy.queue_length_deduction == 1
    assert ok.scaling_strategy.running_job_percentage == 0.5


def test_the_deprecated_rollout_strategy_wins_over_rollout() -> None:
    sj = parse_scaled_job(doc(rolloutStrategy="gradual", rollout={"strategy": "immediate"}))
    assert sj.rollout_strategy == "gradual"
    assert any("deprecated" in w for w in sj.warnings)


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    document = read_scaled_job(
        {
            "metadata": {"name": "p", "namespace": "batch"},
            "spec": {
                "jobTargetRef": {"backoffLimit": 3},
                "pollingInterval": 0,
                "maxReplicaCount": 0,
                "scalingStrategy": {"multipleScalersCalculation": "median"},
                "triggers": [{**TRIGGER, "metricType": "Value"}],
            },
        }
    )
    assert document.scaled_job is None and document.error is not None
    assert document.meta.name == "p"  # still known: the status can say what is wrong
    text = str(document.error)
    for expected in (
        "ScaledJob batch/p:",
        "jobTargetRef.template: is required",
        "pollingInterval: 0 must be at least 1",
        "maxReplicaCount: 0 must be at least 1",
        'scalingStrategy.multipleScalersCalculation: "median" is not one of',
        "triggers[0].metricType: cannot be set in a ScaledJob's triggers",
    ):
        assert expected in text
    with pytest.raises(ConfigError):
        document.parsed()


def test_an_empty_trigger_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="triggers: at least one trigger is required"):
        parse_scaled_job(doc(triggers=[]))


def test_a_scaled_job_ref_never_equals_a_scaled_object_ref_of_the_same_name() -> None:
    job, obj = ScaledJobRef("batch", "p"), ObjectRef("batch", "p")
    assert job != obj
    assert {job: "job", obj: "object"} == {obj: "object", job: "job"}
    assert len({job, obj}) == 2
    assert str(job) == "ScaledJob batch/p"
