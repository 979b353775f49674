"""What a real external scaler answers, read as KEDA reads it: the spec names the metric and
sets the target, the values are summed, IsActive alone decides the activity, and the scaler
gets the ScaledObjectRef KEDA sends."""

from __future__ import annotations

import contextlib

import pytest

from scalers.clients import Clients
from tests.integration.external.helpers import NAME, NAMESPACE, make
from tests.support.external_scaler import ExternalScalerServer
from tests.support.triggers import poll

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("size", "size_float", "target"),
    [(5, 0.0, 5.0), (5, 2.5, 2.5), (0, 0.25, 0.25), (7, -1.0, 7.0)],
)
async def test_the_spec_names_the_metric_and_sets_the_target(
    scaler: ExternalScalerServer, size: int, size_float: float, target: float
) -> None:
    scaler.answer.metric_name, scaler.answer.target_size = "orders-backlog", size
    scaler.answer.target_size_float = size_float
    built = make({"scalerAddress": scaler.address})
    async with _clients() as clients:
        settled = await built.settle(clients)
    assert settled.metric_name == "orders-backlog"  # as the scaler says: no normalising
    assert settled.target == target
    assert settled.query.metric_name == "orders-backlog"


@pytest.mark.parametrize(
    ("values", "active", "expected"),
    [
        ([(7, 0.0)], True, (7.0, True)),
        ([(7, 0.0)], False, (7.0, False)),  # IsActive decides, not the value
        ([(0, 0.0)], True, (0.0, True)),
        ([(3, 1.5)], True, (1.5, True)),  # the float wins when above zero
        ([(3, -2.0)], True, (3.0, True)),
        ([(2, 0.0), (0, 0.5), (4, 0.0)], False, (6.5, False)),  # summed, as the HPA sums
    ],
)
async def test_values_and_activity(
    scaler: ExternalScalerServer,
    values: list[tuple[int, float]],
    active: bool,
    expected: tuple[float, bool],
) -> None:
    scaler.answer.values, scaler.answer.active = values, active
    async with _clients() as clients:
        settled = await make({"scalerAddress": scaler.address}).settle(clients)
        polled = await poll(settled, clients)
    assert (polled.value, polled.active) == expected
    assert scaler.metric_names == ["queue"]  # the spec's name, without KEDA's s<i>- prefix


async def test_the_scaler_gets_the_ref_keda_sends(scaler: ExternalScalerServer) -> None:
    """Every trigger metadata key, scalerAddress included; a FromEnv key with the variable's
    value, or left out when it is unset; nothing of the authentication."""
    metadata = {
        "scalerAddress": scaler.address,
        "queue": "orders",
        "tokenFromEnv": "TOKEN",
        "unsetFromEnv": "NOT_THERE",
        "emptyFromEnv": "EMPTY",
    }
    env = {"TOKEN": "t0k3n", "EMPTY": ""}
    built = make(metadata, {"caCertX": "ignored"}, env)
    async with _clients() as clients:
        settled = await built.settle(clients)
        await poll(settled, clients)
    assert scaler.calls == {"GetMetricSpec": 1, "GetMetrics": 1, "IsActive": 1}
    for ref in scaler.refs:
        assert (ref.name, ref.namespace) == (NAME, NAMESPACE)
        assert dict(ref.scalerMetadata) == {
            "scalerAddress": scaler.address,
            "queue": "orders",
            "tokenFromEnv": "t0k3n",
        }


async def test_an_unsettled_trigger_asks_the_spec_first(scaler: ExternalScalerServer) -> None:
    """Before it is settled (its build's GetMetricSpec), a poll asks the spec as KEDA does
    before each poll, and GetMetrics for the name it gives."""
    scaler.answer.metric_name, scaler.answer.values = "jobs", [(4, 0.0)]
    async with _clients() as clients:
        polled = await poll(make({"scalerAddress": scaler.address}), clients)
    assert polled.value == 4.0
    assert scaler.calls == {"GetMetricSpec": 1, "GetMetrics": 1, "IsActive": 1}
    assert scaler.metric_names == ["jobs"]


async def test_only_the_first_metric_spec_is_used(scaler: ExternalScalerServer) -> None:
    scaler.answer.specs = 3
    async with _clients() as clients:
        settled = await make({"scalerAddress": scaler.address}).settle(clients)
        await poll(settled, clients)
    assert settled.metric_name == "queue"
    assert scaler.metric_names == ["queue"]


def _clients() -> contextlib.aclosing[Clients]:
    return contextlib.aclosing(Clients(timeout=5.0))
