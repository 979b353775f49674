"""When the ScaledJob controller evaluates: once every trigger has a new reading, as KEDA's
loop reads every trigger and then decides once per pollingInterval."""

from __future__ import annotations

import time
from typing import cast

from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.control.scaled_jobs import ScaledJobController, _Tracked
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore, Reading
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.scaled_job import read_scaled_job
from scalers.clients import Clients

REDIS = {"address": "127.0.0.1:6379", "listLength": "5"}


def controller_with_two_triggers() -> tuple[ScaledJobController, Poller, list[BoundTrigger]]:
    document = read_scaled_job(
        {
            "metadata": {"name": "p", "namespace": "batch"},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c"}]}}},
                "pollingInterval": 30,
                "triggers": [
                    {"type": "redis", "metadata": {**REDIS, "listName": name}}
                    for name in ("a", "b")
                ],
            },
        }
    )
    store, telemetry = MetricStore(), Telemetry()
    poller = Poller(store, Clients(), telemetry)
    kube = cast(KubeClient, None)  # never called: only the queueing is under test
    controller = ScaledJobController(kube, ClusterObjects(), poller, store, telemetry)
    sj = document.parsed()
    bound = bind(sj, Inventory())
    poller.set_triggers(sj.ref, bound)
    controller._tracked[sj.ref] = _Tracked(document, sj=sj)
    return controller, poller, list(bound)


def queued(controller: ScaledJobController) -> bool:
    return bool(controller._work._pending)


def test_one_evaluation_once_every_trigger_has_been_read() -> None:
    controller, poller, (a, b) = controller_with_two_triggers()
    [listener] = poller.listeners
    next(iter(controller._tracked.values())).evaluated = time.monotonic()  # just evaluated
    listener(a, Reading("m", value=3.0))
    assert not queued(controller)
    listener(a, Reading("m", value=4.0))
    assert not queued(controller)
    listener(b, Reading("m", error="refused"))  # a failed read is a reading too
    assert queued(controller)


def test_a_late_trigger_does_not_hold_the_others_back_past_an_interval() -> None:
    controller, poller, (a, _) = controller_with_two_triggers()
    [listener] = poller.listeners
    tracked = next(iter(controller._tracked.values()))
    tracked.evaluated = 0.0  # long ago: an interval has passed
    listener(a, Reading("m", value=3.0))
    assert queued(controller)
