"""The side-by-side bench's accounting (``make bench-keda``): what each source says, what the
HPA must then want, how a served value and an HPA's status are read, and the cross-check
that lists every object a system gets wrong. Its table and summary lines rest on these."""

from __future__ import annotations

import time

import httpx

from bench.keda.run import disagreements, ratio
from bench.keda.scenarios import (
    Results,
    current_value,
    expected_replicas,
    quantity,
    value_of,
)
from tests.support.value_server import ValueServer


def test_each_object_s_value_comes_from_its_index_and_asks_for_one_to_four_replicas() -> None:
    assert value_of(b"/value/live-3") == 22  # 3 * 7 % 40 + 1
    assert value_of(b"/value/cached-0") == 1
    assert value_of(b"/value/shared") == 1
    replicas = {expected_replicas(value_of(f"/value/live-{i}".encode())) for i in range(40)}
    assert replicas == {1, 2, 3, 4}
    assert expected_replicas(20) == 2  # exactly on the target: no extra replica
    assert expected_replicas(0.5) == 1  # minReplicaCount 1
    # The HPA's 10% tolerance around one replica's target: 9 to 11 keep the one replica.
    assert [expected_replicas(v) for v in (9, 11, 11.5, 12)] == [1, 1, 2, 2]
    assert expected_replicas(33, current=3) == 3


def test_values_are_read_as_kubernetes_writes_quantities() -> None:
    assert quantity("23") == 23
    assert quantity("1500m") == 1.5
    assert quantity("2k") == 2000


def test_an_hpa_s_current_value_is_its_external_metric_s_and_none_before_it_read() -> None:
    read = {"status": {"currentMetrics": [{"external": {"current": {"averageValue": "22"}}}]}}
    assert current_value(read) == "22"
    assert current_value({"status": {"currentMetrics": None}}) is None
    assert current_value(None) is None


def test_the_cross_check_names_each_object_a_system_gets_wrong_and_passes_the_rest() -> None:
    right, wrong = Results(), Results()
    for results in (right, wrong):
        results.values.update({"live-3": 22.0, "shared-1": 1.0})
        results.desired.update({"live-3": 3, "shared-1": 1})
    wrong.desired["live-3"] = 1  # a system that scaled down, say
    assert disagreements({"KEDA": right, "metrics-adapter": right}) == []
    [(system, kind, line)] = disagreements({"KEDA": right, "metrics-adapter": wrong})
    assert (system, kind) == ("metrics-adapter", "replicas")
    assert line.startswith("live-3: metrics-adapter serves 22.0 and its HPA wants 1;")
    wrong.values["shared-1"] = None  # an error, never a value
    wrong.values["live-3"], wrong.desired["live-3"] = 22.0, 0  # an HPA that has not computed
    kinds = {kind for _, kind, _ in disagreements({"metrics-adapter": wrong})}
    assert kinds == {"no value", "HPA not computed"}


def test_the_ratio_is_theirs_over_ours_and_absent_without_both() -> None:
    assert ratio(50.0, 5.0) == 10
    assert ratio(None, 5.0) is None
    assert ratio(5.0, 0.0) is None


def test_the_value_server_answers_each_path_its_value_after_its_delay() -> None:
    with ValueServer(delay=0.05, values=value_of) as source, httpx.Client() as client:
        began = time.monotonic()
        assert client.get(f"{source.url}/value/live-3").json() == {"value": 22}
        assert time.monotonic() - began >= 0.05
        assert client.get(f"{source.url}/value/shared").json() == {"value": 1}
        source.failing = True
        assert client.get(f"{source.url}/value/live-3").status_code == 503
    assert source.requests == 3
