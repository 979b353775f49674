"""With shards, every replica watches every ScaledObject but polls only its share: of the
others it keeps the metadata alone (a quarter of the memory), and reads one whole from
kube-apiserver when it gains it."""

from __future__ import annotations

import asyncio
from typing import Any

from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.control.controller import REREAD_SECONDS, Controller
from metrics_adapter.control.ownership import Everything
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.client import SCALED_OBJECTS, status_error
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef, read_scaled_object
from scalers.clients import Clients
from tests.support import triggers
from tests.support.kube_fakes import FakeKube

NS, NAME = "shop", "orders"
REF = ObjectRef(NS, NAME)
PATH = SCALED_OBJECTS.path(NS, NAME)


class Share(Everything):
    """A shard's ownership, set by the test: this replica polls and writes for ``mine``."""

    def __init__(self) -> None:
        super().__init__()
        self.mine: set[ObjectRef] = set()

    def polls(self, ref: ObjectRef) -> bool:
        return ref in self.mine

    def writes(self, ref: ObjectRef) -> bool:
        return ref in self.mine


def raw() -> dict[str, Any]:
    doc = triggers.scaled_object(NAME, NS, triggers.always_cron(2))
    doc["spec"]["scaleTargetRef"]["apiVersion"] = "apps/v1"
    doc["status"] = {"lastActiveTime": "2030-01-02T03:04:05Z"}
    return doc


def replica(answer: dict[str, Any] | KubeError) -> tuple[Controller, Poller, Share, FakeKube]:
    store, telemetry, share = MetricStore(), Telemetry(), Share()
    poller = Poller(store, Clients(), telemetry)
    kube = FakeKube({PATH: answer})
    return Controller(kube, ClusterObjects(), poller, store, telemetry, share), poller, share, kube


async def test_an_object_polled_elsewhere_is_kept_as_its_metadata_alone() -> None:
    controller, poller, _, kube = replica(raw())
    await controller.reconcile(read_scaled_object(raw()))
    document = controller._tracked[REF].document
    assert not document.whole
    assert document.scaled_object is None and document.status.last_active_time is None
    assert controller.watches(REF) and not poller.triggers(REF)
    # A status update of its owner's is kept as metadata too.
    await controller.reconcile(read_scaled_object(raw()))
    assert not controller._tracked[REF].document.whole
    assert kube.asked == []


async def test_a_gained_object_is_read_whole_from_kube_apiserver_and_polled() -> None:
    controller, poller, share, kube = replica(raw())
    await controller.reconcile(read_scaled_object(raw()))
    share.mine.add(REF)
    await controller.reconcile(controller._tracked[REF].document, force=True, bind_only=True)
    assert kube.asked == [PATH]
    tracked = controller._tracked[REF]
    assert tracked.document.whole and tracked.so is not None
    assert tracked.last_active is not None and tracked.last_active.year == 2030
    assert [b.trigger.type for b in poller.triggers(REF)] == ["cron"]


async def test_a_gained_object_that_cannot_be_read_is_read_again_later() -> None:
    down = status_error("so", {"code": 503, "reason": "ServiceUnavailable", "message": "etcd"})
    controller, poller, share, kube = replica(down)
    await controller.reconcile(read_scaled_object(raw()))
    share.mine.add(REF)
    try:
        await controller.reconcile(controller._tracked[REF].document, force=True, bind_only=True)
        assert kube.asked == [PATH]
        assert not poller.triggers(REF)  # nothing to poll it from: never a made-up value
        due = controller._retries[REF].when() - asyncio.get_running_loop().time()
        assert REREAD_SECONDS - 1 < due <= REREAD_SECONDS
    finally:
        for timer in controller._retries.values():
            timer.cancel()
