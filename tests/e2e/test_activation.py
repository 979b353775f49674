"""Activation straight to the HPA's first step, on a real control plane: the seed's burst
(50 messages, lagThreshold 10) makes the adapter's first ``/scale`` write 5, where KEDA
writes 1 and waits for the HPA. A ScaledObject's own ``behavior.scaleUp`` bounds that step
as it bounds the HPA's; ``metrics-adapter.io/activation: one-replica`` keeps KEDA's 1.

Which values the Deployment's ``spec.replicas`` took is read back from kube-apiserver: a
watch from the Deployment's creation replays every write in order, so a value that the HPA
overwrote within its 1 s sync is still seen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import controlplane, jetstream, triggers
from tests.support.controlplane import ControlPlane
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.nats import NatsServer, binaries

pytestmark = pytest.mark.e2e
NS = "activation"
MESSAGES, LAG_THRESHOLD = 50, 10
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default
INTERVAL = 1  # the objects' pollingInterval
HPA_SYNC = 1.0  # the harness's --horizontal-pod-autoscaler-sync-period
SLACK = 30.0
"""What a loaded 2-core machine adds to a wait for something that must happen."""
ACTIVATED_WITHIN = INTERVAL + SCALER_TIMEOUT + SLACK
"""The first poll reads the burst (within the start-up spread of an interval, ending
within the timeout)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, NatsServer]]:
    nats = NatsServer(binaries().get("pypi") or next(iter(binaries().values())))
    try:
        nats.start()
        with cluster_mode(NS) as (cp, adapter), adapter.healthy():
            yield cp, nats
    finally:
        nats.cleanup()


def burst_target(
    cp: ControlPlane,
    nats: NatsServer,
    name: str,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> str:
    """The seed's echo-worker on its own stream, polled every second, scaling a Deployment
    at 0; returns the Deployment's creation resourceVersion. The burst is in the stream
    before the ScaledObject exists, so that its first reading holds all of it: a poll while a
    burst is still arriving reads part of it, and the HPA completes the step from there."""
    stream = name.upper()
    asyncio.run(jetstream.prepare(nats.url, stream, name, [name], publish=MESSAGES, workqueue=True))
    # Every trigger of the account shares one /jsz poll (the objects before this one keep it
    # going, every second), and a trigger joining it is read from its last answer, up to an
    # interval old: that answer must come after the burst, not from the middle of it.
    time.sleep(2 * INTERVAL)
    created = cp.apply(controlplane.deployment(name, NS, 0))
    doc = triggers.echo_worker(
        nats.monitoring_endpoint,
        NS,
        name,
        stream=stream,
        consumer=name,
        pollingInterval=INTERVAL,
        cooldownPeriod=600,
        **spec,
    )
    if annotations:
        doc["metadata"]["annotations"] = annotations
    cp.apply(doc)
    return str(created["metadata"]["resourceVersion"])


def wait(what: str, probe: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.2)


def replica_history(cp: ControlPlane, name: str, since: str) -> list[int]:
    """Every value the Deployment's ``spec.replicas`` took after ``since``, in order: a
    watch from that resourceVersion replays each change (kube-apiserver's watch cache
    keeps far more than these seconds)."""
    params = {
        "watch": "1",
        "resourceVersion": since,
        "fieldSelector": f"metadata.name={name}",
        "timeoutSeconds": "2",
    }
    seen: list[int] = []
    path = f"/apis/apps/v1/namespaces/{NS}/deployments"
    with cp.client.stream("GET", path, params=params) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            event: dict[str, Any] = json.loads(line)
            replicas = int(event["object"]["spec"].get("replicas") or 0)
            if not seen or seen[-1] != replicas:
                seen.append(replicas)
    return seen


def activation_messages(cp: ControlPlane, name: str) -> list[str]:
    events = cp.client.get(f"/api/v1/namespaces/{NS}/events").json().get("items") or []
    return [
        str(e.get("message"))
        for e in events
        if e.get("reason") == "KEDAScaleTargetActivated"
        and (e.get("involvedObject") or {}).get("name") == name
    ]


def test_the_burst_activates_straight_to_five(cluster: tuple[ControlPlane, NatsServer]) -> None:
    cp, nats = cluster
    since = burst_target(cp, nats, "straight")
    wait("5 replicas", lambda: cp.replicas("straight", NS) == 5, ACTIVATED_WITHIN)
    assert replica_history(cp, "straight", since) == [0, 5]
    wait("the Event", lambda: bool(activation_messages(cp, "straight")), SLACK)
    (message,) = activation_messages(cp, "straight")
    assert message == (
        f"Scaled Deployment {NS}/straight from 0 to 5: s0-nats-jetstream-STRAIGHT lag 50 > 0; "
        "the HPA's first step: s0-nats-jetstream-STRAIGHT: ceil(50 / 10) = 5"
    )


def test_scale_up_policies_bound_the_step(cluster: tuple[ControlPlane, NatsServer]) -> None:
    cp, nats = cluster
    one_more: dict[str, Any] = {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    advanced = {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": one_more}}}
    since = burst_target(cp, nats, "bounded", advanced=advanced)
    wait("2 replicas", lambda: cp.replicas("bounded", NS) >= 2, ACTIVATED_WITHIN)
    assert replica_history(cp, "bounded", since)[:2] == [0, 2]
    wait("the Event", lambda: bool(activation_messages(cp, "bounded")), SLACK)
    (message,) = activation_messages(cp, "bounded")
    assert message.startswith(f"Scaled Deployment {NS}/bounded from 0 to 2: ")
    assert message.endswith("ceil(50 / 10) = 5, scaleUp policies allow 2 from 1")


def test_the_annotation_keeps_kedas_one_replica(
    cluster: tuple[ControlPlane, NatsServer],
) -> None:
    cp, nats = cluster
    one = {"metrics-adapter.io/activation": "one-replica"}
    since = burst_target(cp, nats, "stepwise", one)
    # Then the HPA, a sync apart: 1 -> 4 -> 5. With no behavior, the controller's legacy
    # limit, max(2 x current, 4), holds its first step to 4.
    within = ACTIVATED_WITHIN + 2 * HPA_SYNC
    wait("5 replicas", lambda: cp.replicas("stepwise", NS) == 5, within)
    assert replica_history(cp, "stepwise", since) == [0, 1, 4, 5]
    wait("the Event", lambda: bool(activation_messages(cp, "stepwise")), SLACK)
    (message,) = activation_messages(cp, "stepwise")
    lag = "s0-nats-jetstream-STEPWISE lag 50 > 0"
    assert message == f"Scaled Deployment {NS}/stepwise from 0 to 1: {lag}"
