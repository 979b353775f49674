"""Triggers bound as the service binds them and polled by the real poller: one channel per
scaler address and identity, one GetMetrics (and IsActive) per distinct ScaledObjectRef and
metric per interval, and GetMetricSpec asked once per bind, never per poll: all counted by
the scaler itself."""

from __future__ import annotations

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind_all, settle_binding
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import Clients
from tests.support.external_scaler import ExternalScalerServer
from tests.support.triggers import new_poller, run_until_polled, scaled_object

pytestmark = pytest.mark.integration

POLLS = 3


async def _bound(
    clients: Clients, name: str, metadata: dict[str, str], copies: int = 1
) -> list[BoundTrigger]:
    triggers = [{"type": "external", "metadata": metadata} for _ in range(copies)]
    doc = scaled_object(name, "shop", triggers[0], pollingInterval=1, triggers=triggers)
    binding = bind_all(parse_scaled_object(doc), Inventory())
    return list((await settle_binding(binding, clients)).triggers)


async def test_one_channel_and_one_request_per_ref_and_interval(
    scaler: ExternalScalerServer,
) -> None:
    poller = new_poller(timeout=5.0)
    try:
        bound: list[BoundTrigger] = []
        for i in range(4):  # four ScaledObjects, each with three identical triggers
            mine = await _bound(poller.clients, f"so-{i}", {"scalerAddress": scaler.address}, 3)
            poller.set_triggers(mine[0].so, mine)
            bound += mine
        assert [b.metric_name for b in bound[:3]] == ["s0-queue", "s1-queue", "s2-queue"]
        assert scaler.calls["GetMetricSpec"] == len(bound)  # once per trigger, when bound
        spec_calls = scaler.calls["GetMetricSpec"]

        polled = await run_until_polled(poller, bound, POLLS)
    finally:
        await poller.clients.aclose()

    assert len(polled) == 4  # distinct queries: one per ScaledObjectRef
    asked = sum(polled.values())
    # A poll may be in flight as the poller stops: the server may count it, we may not.
    assert asked <= scaler.calls["GetMetrics"] <= asked + len(polled)
    assert 0 <= scaler.calls["GetMetrics"] - scaler.calls["IsActive"] <= len(polled)
    assert scaler.calls["GetMetricSpec"] == spec_calls  # never asked by a poll
    assert len(scaler.peers) == 1, scaler.peers  # one channel, one connection
