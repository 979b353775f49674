"""kubernetes-workload: KEDA's pod count, its parameters, its metric, its query.

The pods come from a fake lister here (the rule is pure); tests/e2e/test_kubernetes_workload.py
counts real pods of a real apiserver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.kube.pods import pod_state
from metrics_adapter.model.keda import parse_scaled_object
from metrics_adapter.model.scaled_job import parse_scaled_job
from scalers import kubernetes_workload as kw
from scalers.base import is_active
from scalers.clients import Clients
from scalers.errors import ConfigError, ScalerError, SourceUnreachable
from scalers.kube_pods import PodState
from tests.support import triggers

TYPE = "kubernetes-workload"


def pods(*phases_and_nodes: tuple[str, str]) -> tuple[PodState, ...]:
    return tuple(PodState(phase, node) for phase, node in phases_and_nodes)


MIXED = pods(
    ("Pending", ""),  # not scheduled yet: counted, on no node
    ("Pending", "n1"),
    ("Running", "n1"),
    ("Running", "n2"),
    ("Unknown", "n3"),
    ("", ""),  # no status yet
    ("Succeeded", "n4"),
    ("Failed", "n5"),
)


@pytest.mark.parametrize(
    ("answer", "group_by_node", "expected"),
    [
        ((), False, 0),
        ((), True, 0),
        (MIXED, False, 6),  # every pod but the Succeeded and the Failed one
        (MIXED, True, 3),  # n1, n2, n3: n4 and n5 hold only finished pods
        (pods(("Succeeded", "n1"), ("Failed", "n1")), False, 0),
        (pods(("Running", "n1"), ("Running", "n1")), True, 1),
        (pods(("Pending", ""), ("Pending", "")), True, 0),
    ],
)
def test_count_is_keda_rule(
    answer: tuple[PodState, ...], group_by_node: bool, expected: int
) -> None:
    assert kw.count(answer, group_by_node) == expected


def so(namespace: str, metadata: dict[str, str], **spec: Any) -> dict[str, Any]:
    return triggers.scaled_object("w", namespace, {"type": TYPE, "metadata": metadata}, **spec)


def bound(doc: dict[str, Any]) -> Any:
    (found,) = bind(parse_scaled_object(doc), Inventory())
    return found


def test_the_trigger_reads_its_objects_namespace_and_names_its_metric_after_it() -> None:
    b = bound(so("team-a", {"podSelector": "app=worker", "value": "2.5"}))
    assert b.metric_name == "s0-workload-team-a"
    assert b.scaler.query == kw.PodsQuery("team-a", "app=worker")
    assert (b.scaler.target, b.scaler.activation_target) == (2.5, 0.0)
    job = parse_scaled_job(
        triggers.scaled_job(
            "j", "jobs", {"type": TYPE, "metadata": {"podSelector": "app=worker", "value": "1"}}
        )
    )
    (jb,) = bind(job, Inventory())
    assert jb.scaler.query == kw.PodsQuery("jobs", "app=worker")


def test_equal_selectors_in_one_namespace_are_one_query() -> None:
    plain = bound(so("ns", {"podSelector": "tier in (b,a), app = x", "value": "1"}))
    by_node = bound(
        so("ns", {"podSelector": "app=x,tier in (a,b)", "value": "3", "groupByNode": "true"})
    )
    elsewhere = bound(so("other", {"podSelector": "app=x,tier in (a,b)", "value": "1"}))
    assert plain.scaler.query == by_node.scaler.query  # groupByNode is read from the answer
    assert plain.scaler.query.selector == "app=x,tier in (a,b)"
    assert elsewhere.scaler.query != plain.scaler.query


def test_a_bad_selector_names_the_value_and_why() -> None:
    with pytest.raises(ConfigError) as error:
        bound(so("ns", {"podSelector": "app=x,tier in (a", "value": "1"}))
    assert str(error.value).endswith(
        'triggers[0].metadata.podSelector: "app=x,tier in (a" is not a label selector: '
        "found '', expected: ',' or ')'"
    )


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"podSelector": "app=x"}, "triggers[0].metadata.value: is required"),
        ({"podSelector": "app=x", "value": "0"}, 'value: "0" must be greater than 0'),
        ({"podSelector": "app=x", "value": "-1"}, 'value: "-1" must be greater than 0'),
        ({"podSelector": "app=x", "value": "two"}, 'value: "two" is not a number'),
        ({"value": "1"}, "triggers[0].metadata.podSelector: is required"),
        ({"podSelector": "app=x", "value": "1", "groupByNode": "yes"}, '"yes" is not a boolean'),
        ({"podSelector": "a", "value": "1", "activationValue": "x"}, '"x" is not a number'),
    ],
)
def test_parameters_are_checked_as_keda_does(metadata: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        bound(so("ns", metadata))


def test_value_may_be_unset_when_the_trigger_feeds_a_formula() -> None:
    doc = so("ns", {"podSelector": "app=x"})
    doc["spec"]["triggers"][0]["name"] = "pods"
    doc["spec"]["advanced"] = {"scalingModifiers": {"formula": "pods", "target": "5"}}
    assert bound(doc).scaler.target == 0.0


class FakePods:
    def __init__(self, answer: Sequence[PodState] | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def list_pods(self, namespace: str, selector: str) -> Sequence[PodState]:
        self.asked.append((namespace, selector))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_a_poll_counts_what_the_lister_lists() -> None:
    b = bound(so("ns", {"podSelector": "app=x", "value": "2", "activationValue": "5"}))
    lister = FakePods(MIXED)
    polled = await triggers.poll(b.scaler, Clients(pods=lister))
    assert lister.asked == [("ns", "app=x")]
    assert polled == triggers.Polled(6.0, True)
    assert not is_active(5.0, b.scaler.activation_target)  # strictly greater, as in KEDA


async def test_a_failed_list_is_an_error_not_a_zero() -> None:
    b = bound(so("ns", {"podSelector": "app=x", "value": "2"}))
    with pytest.raises(SourceUnreachable, match="refused"):
        await triggers.poll(b.scaler, Clients(pods=FakePods(SourceUnreachable("refused"))))


async def test_without_a_cluster_the_trigger_fails_saying_why() -> None:
    b = bound(so("ns", {"podSelector": "app=x", "value": "2"}))
    with pytest.raises(ScalerError) as error:
        await triggers.poll(b.scaler, Clients())
    assert str(error.value) == kw.NEEDS_CLUSTER
    assert "needs a cluster" in kw.NEEDS_CLUSTER


def test_a_listed_pod_keeps_only_its_phase_and_node() -> None:
    full = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": []},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }
    assert pod_state(full) == PodState("Running", "n1")
    assert pod_state({"metadata": {"name": "new"}}) == PodState("", "")
    assert pod_state({"spec": None, "status": "bad"}) == PodState("", "")
