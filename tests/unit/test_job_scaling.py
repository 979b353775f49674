"""How many Jobs a ScaledJob's poll creates: KEDA's worked examples and unit tests
(reference §1.2), each strategy at its edges, every multipleScalersCalculation, and the
pending count with and without pendingPodConditions."""

from __future__ import annotations

import math
from typing import Any

import pytest

from metrics_adapter.control.job_scaling import (
    JobCounts,
    TriggerMetric,
    count_jobs,
    effective_max_scale,
    plan,
)
from metrics_adapter.kube.batch import Job, Pod
from metrics_adapter.model.scaled_job import ScaledJob, parse_scaled_job


def scaled_job(**spec: Any) -> ScaledJob:
    """A ScaledJob ``media/thumbnailer`` with ``spec`` over a minimal valid one."""
    return parse_scaled_job(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledJob",
            "metadata": {"name": "thumbnailer", "namespace": "media"},
            "spec": {
                "jobTargetRef": {
                    "template": {"spec": {"containers": [{"name": "w", "image": "busybox"}]}}
                },
                "triggers": [{"type": "cron", "metadata": {}}],
                **spec,
            },
        }
    )


def queue(q: float, target: float = 1, *, active: bool = True, name: str = "q") -> TriggerMetric:
    return TriggerMetric(name=name, queue=q, target=target, active=active)


def strategy(name: str, **extra: Any) -> dict[str, Any]:
    return {"scalingStrategy": {"strategy": name, **extra}}


CUSTOM = strategy(
    "custom", customScalingQueueLengthDeduction=1, customScalingRunningJobPercentage="0.5"
)


# The keda-docs table (m = 0, strategy default).
@pytest.mark.parametrize(
    ("q", "max_replicas", "target", "running", "created"),
    [
        pytest.param(10, 3, 1, 0, 3, id="q10-max3-t1"),
        pytest.param(10, 3, 2, 0, 3, id="q10-max3-t2"),
        pytest.param(10, 3, 1, 1, 2, id="q10-max3-t1-running1"),
        pytest.param(10, 100, 1, 0, 10, id="q10-max100-t1"),
        pytest.param(4, 3, 5, 0, 1, id="q4-max3-t5"),
    ],
)
def test_the_docs_table(q: int, max_replicas: int, target: int, running: int, created: int) -> None:
    sj = scaled_job(maxReplicaCount=max_replicas)
    assert plan(sj, [queue(q, target)], JobCounts(running=running)).jobs_to_create == created


# KEDA's scale_jobs_test.go, as it calls GetEffectiveMaxScale(maxScale, R', P, M', scaleTo 1).
@pytest.mark.parametrize(
    ("spec", "args", "expected"),
    [
        pytest.param({}, (3, 2, 0, 5), 1, id="default-3-2-5"),
        pytest.param({}, (2, 0, 0, 5), 2, id="default-2-0-5"),
        pytest.param(CUSTOM, (3, 2, 0, 5), 1, id="custom-3-2-5"),
        pytest.param(CUSTOM, (10, 0, 0, 10), 9, id="custom-10-0-10"),
        # Neither parameter set: no percentage, so KEDA falls back to the default strategy.
        pytest.param(strategy("custom"), (3, 2, 0, 5), 1, id="custom-unset-3-2-5"),
        pytest.param(strategy("custom"), (2, 0, 0, 5), 2, id="custom-unset-2-0-5"),
        pytest.param(
            strategy(
                "custom",
                customScalingQueueLengthDeduction=2,
                customScalingRunningJobPercentage="0",
            ),
            (3, 2, 0, 5),
            1,
            id="custom-deduction2-pct0",
        ),
        pytest.param(
            strategy(
                "custom",
                customScalingQueueLengthDeduction=-2,
                customScalingRunningJobPercentage="0",
            ),
            (3, 2, 0, 4),
            4,
            id="custom-negative-deduction-capped-at-max",
        ),
        pytest.param(strategy("accurate"), (3, 2, 0, 5), 3, id="accurate-3-2-0-5"),
        pytest.param(strategy("accurate"), (5, 2, 0, 5), 3, id="accurate-5-2-0-5"),
        pytest.param(strategy("accurate"), (3, 4, 2, 10), 1, id="accurate-3-4-2-10"),
        pytest.param(strategy("accurate"), (5, 4, 2, 5), 1, id="accurate-5-4-2-5"),
        pytest.param(strategy("accurate"), (20, 15, 10, 20), 5, id="accurate-20-15-10-20"),
        pytest.param(strategy("accurate"), (3, 3, 3, 5), 0, id="accurate-3-3-3-5"),
        pytest.param(strategy("eager"), (4, 3, 0, 10), 4, id="eager-4-3-0-10"),
        pytest.param(strategy("eager"), (4, 0, 3, 10), 4, id="eager-4-0-3-10"),
        pytest.param(strategy("eager"), (4, 7, 0, 10), 3, id="eager-4-7-0-10"),
        pytest.param(strategy("eager"), (4, 1, 6, 10), 3, id="eager-4-1-6-10"),
        pytest.param(strategy("eager"), (15, 0, 0, 10), 10, id="eager-15-0-0-10"),
    ],
)
def test_kedas_strategy_unit_tests(
    spec: dict[str, Any], args: tuple[int, int, int, int], expected: int
) -> None:
    s = scaled_job(**spec).scaling_strategy
    effective, scale_to = effective_max_scale(s, *args, scale_to=1)
    assert effective == expected
    # Only eager replaces scaleTo, by M'.
    assert scale_to == (args[3] if s.strategy == "eager" else 1)


def test_an_empty_percentage_makes_custom_the_default_strategy() -> None:
    sj = scaled_job(**strategy("custom", customScalingRunningJobPercentage=""))
    assert sj.scaling_strategy.strategy == "default"


# The same cases through a whole poll: Q / T gives maxScale, counts give R and P.
@pytest.mark.parametrize(
    ("spec", "metric", "counts", "created"),
    [
        pytest.param({"maxReplicaCount": 5}, queue(3), JobCounts(2), 1, id="default-3-2-5"),
        pytest.param(
            {"maxReplicaCount": 10, **CUSTOM}, queue(10), JobCounts(), 9, id="custom-10-0-10"
        ),
        pytest.param(
            {"maxReplicaCount": 20, **strategy("accurate")},
            queue(20),
            JobCounts(15, 10),
            5,
            id="accurate-20-15-10-20",
        ),
        pytest.param(
            {"maxReplicaCount": 5, **strategy("accurate")},
            queue(3),
            JobCounts(3, 3),
            0,
            id="accurate-3-3-3-5",
        ),
        # R' = 7 - 6 = 1 with M' = 16 - 6 = 10, and P = 6 ≤ R as in a real cluster.
        pytest.param(
            {"minReplicaCount": 6, "maxReplicaCount": 16, **strategy("eager")},
            queue(4),
            JobCounts(7, 6),
            3,
            id="eager-4-1-6-10",
        ),
    ],
)
def test_kedas_unit_tests_through_a_poll(
    spec: dict[str, Any], metric: TriggerMetric, counts: JobCounts, created: int
) -> None:
    assert plan(scaled_job(**spec), [metric], counts).jobs_to_create == created


@pytest.mark.parametrize(
    ("spec", "metrics", "counts", "created", "scale_to"),
    [
        pytest.param({}, [queue(0, active=False)], JobCounts(0), 2, 2, id="min2-running0"),
        pytest.param({}, [queue(0, active=False)], JobCounts(1), 1, 1, id="min2-running1"),
        pytest.param({}, [queue(50)], JobCounts(1, 1), 1, 1, id="queue-ignored-below-min"),
    ],
)
def test_below_the_minimum_it_tops_up_and_ignores_the_queue(
    spec: dict[str, Any],
    metrics: list[TriggerMetric],
    counts: JobCounts,
    created: int,
    scale_to: int,
) -> None:
    result = plan(scaled_job(minReplicaCount=2, **spec), metrics, counts)
    assert result.active  # min > 0 forces it
    assert (result.jobs_to_create, result.scale_to, result.effective_max) == (
        created,
        scale_to,
        scale_to,
    )


def test_at_the_minimum_the_strategy_runs_with_running_less_min() -> None:
    # KEDA's TestRunningJobCountGreaterOrEqualMinReplicaCountExecutesScalingStrategy.
    result = plan(scaled_job(minReplicaCount=1), [queue(2)], JobCounts(1))
    assert (result.effective_max, result.scale_to, result.jobs_to_create) == (2, 2, 2)


@pytest.mark.parametrize(
    ("spec", "counts", "effective"),
    [
        pytest.param({}, JobCounts(5), 0, id="default"),
        pytest.param(CUSTOM, JobCounts(6), 0, id="custom"),
        pytest.param(strategy("accurate"), JobCounts(5), 0, id="accurate"),
        pytest.param(strategy("eager"), JobCounts(3, 3), 0, id="eager"),
    ],
)
def test_a_negative_bound_creates_nothing(
    spec: dict[str, Any], counts: JobCounts, effective: int
) -> None:
    result = plan(scaled_job(maxReplicaCount=3, **spec), [queue(3)], counts)
    assert (result.effective_max, result.jobs_to_create) == (effective, 0)
    assert "max(0, " in result.formula


def test_an_unset_max_is_100_not_100_less_min() -> None:
    result = plan(scaled_job(minReplicaCount=5), [queue(1000)], JobCounts(5))
    assert (result.max_jobs, result.jobs_to_create) == (100, 100)


def test_a_min_above_the_max_is_clamped_to_it_and_the_max_is_not_reduced() -> None:
    sj = scaled_job(minReplicaCount=10, maxReplicaCount=4)
    assert (sj.min_jobs, sj.max_jobs) == (4, 4)
    assert plan(sj, [queue(10)], JobCounts(0)).jobs_to_create == 4  # top-up
    # At the minimum, R' = 0 and M' = 4: KEDA creates 4 more, 8 Jobs with max 4.
    assert plan(sj, [queue(10)], JobCounts(4)).jobs_to_create == 4


def test_with_targets_below_one_the_raw_queue_length_binds() -> None:
    result = plan(scaled_job(), [queue(3, 0.5)], JobCounts())
    assert (result.max_scale, result.scale_to, result.jobs_to_create) == (6, 3, 3)


def test_eager_creates_up_to_the_max_not_the_queue() -> None:
    result = plan(scaled_job(maxReplicaCount=10, **strategy("eager")), [queue(3, 0.5)], JobCounts())
    assert (result.scale_to, result.jobs_to_create) == (10, 6)


def test_an_inactive_scaled_job_creates_nothing() -> None:
    result = plan(scaled_job(), [queue(10, active=False)], JobCounts())
    assert (result.active, result.max_scale, result.jobs_to_create) == (False, 0, 0)
    assert result.used == ()


def test_max_never_picks_an_active_trigger_with_an_empty_queue() -> None:
    result = plan(scaled_job(), [queue(0), queue(5, active=False, name="idle")], JobCounts())
    assert (result.active, result.jobs_to_create) == (False, 0)


def test_a_target_of_zero_makes_max_value_zero() -> None:
    result = plan(scaled_job(), [queue(10, 0)], JobCounts())
    assert (result.active, result.max_scale, result.jobs_to_create) == (True, 0, 0)


def triggers() -> list[TriggerMetric]:
    return [
        queue(10, 2, name="a"),  # maxValue 5
        queue(30, 3, name="b"),  # maxValue 10
        queue(100, 1, active=False, name="c"),  # never counted
    ]


@pytest.mark.parametrize(
    ("calculation", "queue_length", "max_scale", "used"),
    [
        pytest.param("max", 30, 10, ("b",), id="max"),
        pytest.param("min", 10, 5, ("a",), id="min"),
        pytest.param("avg", 20, 8, ("a", "b"), id="avg"),  # maxValue 7.5
        pytest.param("sum", 40, 15, ("a", "b"), id="sum"),
    ],
)
def test_multiple_scalers_calculation_over_active_triggers(
    calculation: str, queue_length: float, max_scale: int, used: tuple[str, ...]
) -> None:
    sj = scaled_job(scalingStrategy={"multipleScalersCalculation": calculation})
    result = plan(sj, triggers(), JobCounts())
    assert (result.queue_length, result.max_scale, result.used) == (queue_length, max_scale, used)
    assert result.jobs_to_create == max_scale


def test_sum_is_capped_at_the_max() -> None:
    sj = scaled_job(maxReplicaCount=12, scalingStrategy={"multipleScalersCalculation": "sum"})
    assert plan(sj, triggers(), JobCounts()).max_scale == 12


@pytest.mark.parametrize(
    ("order", "queue_length", "active"),
    [
        # min's running minimum starts at 0 and is replaced while it is 0.
        pytest.param([0, 5], 5, True, id="empty-first-replaced"),
        pytest.param([5, 0], 0, True, id="empty-last-picked"),
    ],
)
def test_min_picks_by_keda_s_rule(order: list[int], queue_length: int, active: bool) -> None:
    sj = scaled_job(scalingStrategy={"multipleScalersCalculation": "min"})
    metrics = [queue(q, name=f"t{i}") for i, q in enumerate(order)]
    result = plan(sj, metrics, JobCounts())
    assert (result.queue_length, result.active) == (queue_length, active)


@pytest.mark.parametrize(
    ("metrics", "calculation", "created", "note"),
    [
        pytest.param([queue(math.nan)], "max", 0, "queue nan taken as 0", id="nan-queue"),
        pytest.param([queue(-4)], "min", 0, "queue -4 taken as 0", id="negative-queue"),
        pytest.param([queue(math.inf)], "max", 10, "queue inf taken as max 10", id="inf-queue"),
        pytest.param([queue(math.inf, math.inf)], "max", 0, "taken as 0", id="inf-over-inf-target"),
        pytest.param([queue(5, math.nan)], "max", 0, "", id="nan-target"),
        pytest.param([queue(5, -1)], "max", 0, "target -1 taken as 0", id="negative-target"),
        pytest.param(
            [queue(1e308, name="a"), queue(1e308, name="b")],
            "sum",
            10,
            "queue inf taken as max 10",
            id="sum-overflows",
        ),
    ],
)
def test_values_go_would_garble_are_taken_as_the_nearest_sensible_one(
    metrics: list[TriggerMetric], calculation: str, created: int, note: str
) -> None:
    sj = scaled_job(maxReplicaCount=10, scalingStrategy={"multipleScalersCalculation": calculation})
    result = plan(sj, metrics, JobCounts())
    assert result.jobs_to_create == created
    assert note in result.formula


def test_a_huge_custom_percentage_saturates_instead_of_wrapping() -> None:
    sj = scaled_job(
        **strategy(
            "custom", customScalingQueueLengthDeduction=0, customScalingRunningJobPercentage="1e308"
        )
    )
    assert plan(sj, [queue(50)], JobCounts(3)).jobs_to_create == 0


@pytest.mark.parametrize(
    ("spec", "metrics", "counts", "formula"),
    [
        pytest.param(
            {},
            [queue(45, 10, name="queue")],
            JobCounts(),
            "max picks queue: queue 45 / target 10 -> maxScale 5; "
            "default: min(scaleTo 45, maxScale 5 - running 0) = 5",
            id="default",
        ),
        pytest.param(
            {"maxReplicaCount": 10, **CUSTOM},
            [queue(10)],
            JobCounts(),
            "max picks q: queue 10 / target 1 -> maxScale 10; custom: min(scaleTo 10, "
            "min(maxScale 10 - deduction 1 - trunc(running 0 * 0.5), max 10)) = 9",
            id="custom",
        ),
        pytest.param(
            {"maxReplicaCount": 20, **strategy("accurate")},
            [queue(20)],
            JobCounts(15, 10),
            "max picks q: queue 20 / target 1 -> maxScale 20; accurate: min(scaleTo 20, "
            "max 20 - running 15 [as maxScale 20 + running 15 - pending 10 > max 20]) = 5",
            id="accurate",
        ),
        pytest.param(
            {"minReplicaCount": 6, "maxReplicaCount": 16, **strategy("eager")},
            [queue(4)],
            JobCounts(7, 6),
            "max picks q: queue 4 / target 1 -> maxScale 4; eager: min(scaleTo max 10, "
            "min(max 10 - (running 7 - min 6) - pending 6, maxScale 4)) = 3",
            id="eager-with-min",
        ),
        pytest.param(
            {"maxReplicaCount": 3},
            [queue(10, 2)],
            JobCounts(),
            "max picks q: queue 10 / target 2 capped at max 3 -> maxScale 3; "
            "default: min(scaleTo 10, maxScale 3 - running 0) = 3",
            id="capped",
        ),
        pytest.param(
            {"scalingStrategy": {"multipleScalersCalculation": "avg"}},
            [queue(10, 2, name="a"), queue(30, 3, name="b")],
            JobCounts(),
            "avg of a 10/2 + b 30/3: queue 20, maxValue 7.5 -> maxScale 8; "
            "default: min(scaleTo 20, maxScale 8 - running 0) = 8",
            id="avg",
        ),
        pytest.param(
            {"minReplicaCount": 2},
            [queue(0, active=False)],
            JobCounts(),
            "max: no active trigger with a queue; below min: min 2 - running 0 = 2",
            id="below-min",
        ),
        pytest.param(
            {},
            [queue(7, active=False)],
            JobCounts(),
            "max: no active trigger with a queue; default: inactive, so 0",
            id="inactive",
        ),
    ],
)
def test_the_formula_shows_every_number_that_entered(
    spec: dict[str, Any], metrics: list[TriggerMetric], counts: JobCounts, formula: str
) -> None:
    assert plan(scaled_job(**spec), metrics, counts).formula == formula


@pytest.mark.parametrize(
    ("spec", "metrics", "line"),
    [
        pytest.param(
            {},
            [queue(45, 10)],
            "would create 5 Jobs for media/thumbnailer: queue 45, target 10, running 0, "
            "pending 0, strategy default",
            id="one-trigger",
        ),
        pytest.param(
            {"scalingStrategy": {"multipleScalersCalculation": "sum", "strategy": "eager"}},
            [queue(1, 2, name="a"), queue(0.5, 0.5, name="b")],
            "would create 2 Jobs for media/thumbnailer: queue 1.5, targets 2, 0.5, running 0, "
            "pending 0, strategy eager",
            id="sum-lists-targets",
        ),
        pytest.param(
            {},
            [queue(1, 4)],
            "would create 1 Job for media/thumbnailer: queue 1, target 4, running 0, "
            "pending 0, strategy default",
            id="one-job",
        ),
        pytest.param(
            {},
            [queue(3, active=False)],
            "would create 0 Jobs for media/thumbnailer: queue 0, no active trigger, running 0, "
            "pending 0, strategy default",
            id="inactive",
        ),
    ],
)
def test_the_dry_run_line(spec: dict[str, Any], metrics: list[TriggerMetric], line: str) -> None:
    assert plan(scaled_job(**spec), metrics, JobCounts()).summary("media/thumbnailer") == line


# count_jobs: KEDA's TestGetPendingJobCount, one Job with the given Pods.
READY_AND_SCHEDULED = ("Ready", "PodScheduled")


def job(name: str, finished: str | None = None, status: str = "True") -> Job:
    conditions = [{"type": finished, "status": status}] if finished else []
    return Job.parse(
        {
            "metadata": {"name": name, "namespace": "media"},
            "status": {"conditions": conditions},
        }
    )


def pod(
    job_name: str,
    phase: str = "Pending",
    true: tuple[str, ...] = (),
    label: str = "job-name",
) -> Pod:
    conditions = [{"type": t, "status": "True"} for t in true]
    conditions.append({"type": "ContainersReady", "status": "False"})
    return Pod.parse(
        {
            "metadata": {"name": f"{job_name}-x", "labels": {label: job_name}},
            "status": {"phase": phase, "conditions": conditions},
        }
    )


@pytest.mark.parametrize(
    ("conditions", "pods", "pending"),
    [
        pytest.param((), [pod("j", "Succeeded")], 0, id="succeeded"),
        pytest.param((), [pod("j", "Running")], 0, id="running"),
        pytest.param((), [pod("j", "Failed")], 1, id="failed"),
        pytest.param((), [pod("j", "Pending")], 1, id="pending"),
        pytest.param((), [pod("j", "Unknown")], 1, id="unknown"),
        pytest.param((), [], 1, id="no-pods"),
        pytest.param((), [pod("j", "Failed"), pod("j", "Running")], 0, id="one-of-two-running"),
        pytest.param(READY_AND_SCHEDULED, [pod("j")], 1, id="cond-none"),
        pytest.param(READY_AND_SCHEDULED, [pod("j", true=("Ready",))], 1, id="cond-ready-only"),
        pytest.param(
            READY_AND_SCHEDULED, [pod("j", true=("PodScheduled",))], 1, id="cond-scheduled-only"
        ),
        pytest.param(READY_AND_SCHEDULED, [pod("j", true=READY_AND_SCHEDULED)], 0, id="cond-all"),
        pytest.param(READY_AND_SCHEDULED, [], 1, id="cond-no-pods"),
        pytest.param(
            READY_AND_SCHEDULED,
            [pod("j", true=READY_AND_SCHEDULED), pod("j", true=READY_AND_SCHEDULED)],
            0,
            id="cond-two-pods-both-all",
        ),
        pytest.param(
            READY_AND_SCHEDULED,
            [pod("j", true=READY_AND_SCHEDULED), pod("j", true=("Ready",))],
            0,
            id="cond-two-pods-one-all",
        ),
        pytest.param(
            READY_AND_SCHEDULED,
            [pod("j", true=("Ready",)), pod("j", true=("PodScheduled",))],
            1,
            id="cond-two-pods-split-is-pending",  # summed across pods before v2.18
        ),
        pytest.param(
            READY_AND_SCHEDULED,
            [pod("j"), pod("j", true=("Ready",)), pod("j", true=READY_AND_SCHEDULED)],
            0,
            id="cond-three-pods-one-all",
        ),
        pytest.param(
            READY_AND_SCHEDULED,
            [pod("j"), pod("j", true=("Ready",)), pod("j", true=("PodScheduled",))],
            1,
            id="cond-three-pods-none-all",
        ),
        pytest.param((), [pod("j", "Running", true=("Ready",))], 0, id="no-conditions-running-pod"),
        pytest.param(
            ("Ready", "Ready"), [pod("j", "Running", true=("Ready",))], 1, id="cond-listed-twice"
        ),
        pytest.param(
            (),
            [pod("j", "Running", label="batch.kubernetes.io/job-name")],
            0,
            id="new-job-name-label",
        ),
        pytest.param((), [pod("other", "Running")], 1, id="another-jobs-pod"),
    ],
)
def test_pending_jobs(conditions: tuple[str, ...], pods: list[Pod], pending: int) -> None:
    assert count_jobs([job("j")], pods, conditions) == JobCounts(running=1, pending=pending)


def test_running_counts_unfinished_jobs_pending_ones_included() -> None:
    jobs = [
        job("done", "Complete"),
        job("broken", "Failed"),
        job("not-yet", "Complete", status="False"),  # a condition not True does not finish it
        job("started"),
        job("waiting"),
    ]
    pods = [pod("started", "Running"), pod("done", "Succeeded"), pod("broken", "Failed")]
    assert count_jobs(jobs, pods, ()) == JobCounts(running=3, pending=2)
