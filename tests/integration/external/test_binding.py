"""An external trigger bound as the service binds it: its metric name and HPA target come
from the scaler's GetMetricSpec, asked once per bind (settle); a scaler that cannot answer
leaves the object not ready, naming the trigger, until a later bind succeeds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind_all, settle_binding
from metrics_adapter.config.settings import Settings
from metrics_adapter.control.hpa import build_hpa
from metrics_adapter.model.keda import ObjectRef, parse_scaled_object
from metrics_adapter.server import build_standalone, rebind_standalone
from scalers.clients import Clients
from scalers.errors import SourceUnreachable
from tests.support.external_scaler import ExternalScalerServer
from tests.support.triggers import scaled_object
from tests.support.wake import WITHIN

pytestmark = pytest.mark.integration


def _so(scaler: ExternalScalerServer, **spec: Any) -> dict[str, Any]:
    trigger = {"type": "external", "name": "ext", "metadata": {"scalerAddress": scaler.address}}
    return scaled_object("orders", "shop", trigger, **spec)


async def test_the_hpa_gets_the_scalers_metric_and_target(scaler: ExternalScalerServer) -> None:
    scaler.answer.metric_name, scaler.answer.target_size_float = "backlog", 2.5
    so = parse_scaled_object(_so(scaler))
    clients = Clients(timeout=5.0)
    try:
        binding = await settle_binding(bind_all(so, Inventory()), clients)
    finally:
        await clients.aclose()
    [bound] = binding.triggers
    assert bound.metric_name == "s0-backlog"
    hpa: Any = build_hpa(so, binding.triggers, binding.resources, uid="u").to_json()
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "s0-backlog"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "2500m"}


async def test_a_formula_reads_the_settled_metric(scaler: ExternalScalerServer) -> None:
    modifiers = {"scalingModifiers": {"formula": "ext * 2", "target": "4"}}
    so = parse_scaled_object(_so(scaler, advanced=modifiers))
    clients = Clients(timeout=5.0)
    try:
        binding = await settle_binding(bind_all(so, Inventory()), clients)
    finally:
        await clients.aclose()
    assert binding.composite is not None
    assert dict(binding.composite.variables) == {"ext": "s0-queue"}


async def test_a_scaler_down_at_bind_time_names_the_trigger(
    scaler: ExternalScalerServer,
) -> None:
    await scaler.stop()
    so = parse_scaled_object(_so(scaler))
    clients = Clients(timeout=5.0)
    try:
        with pytest.raises(SourceUnreachable, match=r"^triggers\[0\]: GetMetricSpec for shop/"):
            await settle_binding(bind_all(so, Inventory()), clients)
    finally:
        await clients.aclose()


async def test_standalone_binds_again_once_the_scaler_answers(
    scaler: ExternalScalerServer, tmp_path: Path
) -> None:
    (tmp_path / "so.yaml").write_text(yaml.safe_dump(_so(scaler, pollingInterval=5)))
    await scaler.stop()
    adapter = await build_standalone(Settings(scaledobjects=tmp_path))
    ref = ObjectRef("shop", "orders")
    try:
        assert "GetMetricSpec" in (adapter.store.broken_reason(ref) or "")
        assert list(adapter.unsettled) == [ref]
        assert adapter.poller.triggers(ref) == ()

        await scaler.start()
        async with asyncio.timeout(WITHIN):
            while adapter.unsettled:  # the channel reconnects within its backoff (<= 5 s)
                await rebind_standalone(adapter, adapter.unsettled[ref])  # resettle's step
                await asyncio.sleep(0.1)
        assert [b.metric_name for b in adapter.poller.triggers(ref)] == ["s0-queue"]
        assert adapter.store.broken_reason(ref) is None
    finally:
        await adapter.poller.clients.aclose()
