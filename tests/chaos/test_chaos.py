"""Faults on a running install: etcd and kube-apiserver killed, the adapter killed mid-scale,
one event source partitioned. The adapter runs in cluster mode as its ServiceAccount,
registered as the APIService, with the real HPA controller reading it.

Two ScaledObjects run through every scenario, each at 3 replicas (value 30, target 10):
``steady`` on a source reached directly, ``partitioned`` on one behind a fault proxy. A
sampler reads both Deployments' replicas all along: no fault may scale either below 3 (an
error reading a source, or the control plane gone, is never a zero). After each fault: one
HPA per ScaledObject, every ScaledObject still there with its status, and the time to recover
(``tests/chaos/conftest.py`` prints it): until a new value is served through the aggregator,
and until a ScaledObject created after the fault gets its HPA (the watches resumed).

And the adapter restarted on a clock five minutes ahead and behind (libfaketime, Debian's
``faketime``, installed by .ci/bootstrap): a cooldown read from the status the previous
process wrote must not look over, and lastActiveTime is written on kube-apiserver's time.
A full /tmp is tests/api/test_full_scratch.py; ``tc netem`` is not here (this kernel has no
``sch_netem``: the fault proxy makes the same loss and delay in user space).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.conftest import RECOVERED
from tests.e2e.conftest import MetricsSource
from tests.support import controlplane, triggers
from tests.support.controlplane import Adapter, ControlPlane, condition
from tests.support.controlplane.cluster_mode import cluster_mode
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.chaos

NS = "chaos"
KEDA = "keda.sh/v1alpha1"
HPAS = "autoscaling/v2", "HorizontalPodAutoscaler"
INTERVAL = 1
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default
REPLICAS = 3  # ceil(30 / 10)
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SLACK = 60.0
"""Recovery of a restarted component on a loaded 2-core machine: kube-apiserver takes
seconds to be ready again and the aggregator to see the APIService available."""


@dataclass
class Install:
    cp: ControlPlane
    adapter: Adapter
    steady: MetricsSource
    partitioned: MetricsSource
    proxy: FaultProxy
    lowest: dict[str, int] = field(default_factory=dict)
    """The fewest replicas the sampler saw per Deployment since :meth:`watch_replicas`."""
    sampling: bool = False

    def metric(self, name: str) -> str:
        doc = self.cp.get(KEDA, "ScaledObject", name, NS) or {}
        metric = doc["status"]["externalMetricNames"][0]
        return (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/{metric}"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{name}"
        )

    def served(self, name: str) -> float | None:
        try:
            answer = self.cp.client.get(self.metric(name))
        except Exception:  # the control plane is what is down
            return None
        if answer.status_code != 200:
            return None
        return float(answer.json()["items"][0]["value"])


def scaled(name: str, url: str, minimum: int = 0, cooldown: int = 300) -> dict[str, Any]:
    trigger = {
        "type": "metrics-api",
        "metadata": {"url": url, "valueLocation": "value", "targetValue": "10"},
    }
    return triggers.scaled_object(
        name,
        NS,
        trigger,
        minReplicaCount=minimum,
        maxReplicaCount=10,
        pollingInterval=INTERVAL,
        cooldownPeriod=cooldown,  # no fault lasts this long: no scale to zero is legitimate
    )


def wait_for(what: str, probe: Callable[[], Any], within: float = SLACK) -> Any:
    """The harness's wait (a read while the control plane is down counts as not yet), with
    this module's bound."""
    return controlplane.wait_for(what, probe, within)


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    steady, partitioned = MetricsSource(), MetricsSource()
    proxy = FaultProxy(int(partitioned.url.split(":")[2].split("/")[0])).start()
    try:
        with cluster_mode(NS) as (cp, adapter):
            setup = Install(cp, adapter, steady, partitioned, proxy)
            for source in (steady, partitioned):
                source.value = 30
            cp.apply(controlplane.deployment("steady", NS, 0))
            cp.apply(controlplane.deployment("partitioned", NS, 0))
            cp.apply(scaled("steady", steady.url))
            cp.apply(scaled("partitioned", f"{proxy.url_base}/value"))
            for name in ("steady", "partitioned"):
                wait_for(f"{name} at {REPLICAS}", _at(cp, name, REPLICAS))
            sampler = threading.Thread(target=_sample, args=(setup,), daemon=True)
            setup.sampling = True
            sampler.start()
            try:
                yield setup
            finally:
                setup.sampling = False
                sampler.join(timeout=10)
    finally:
        proxy.close()
        steady.close()
        partitioned.close()


def _at(cp: ControlPlane, name: str, replicas: int) -> Callable[[], bool]:
    return lambda: cp.replicas(name, NS) == replicas


def _sample(setup: Install) -> None:
    while setup.sampling:
        for name in ("steady", "partitioned"):
            try:
                seen = setup.cp.replicas(name, NS)
            except Exception:  # the control plane is what is down
                continue
            setup.lowest[name] = min(setup.lowest.get(name, seen), seen)
        time.sleep(0.25)


def recover(setup: Install, scenario: str, fault_ended: float) -> None:
    """Wait for the adapter to serve a new value, and a new object to get its HPA; record
    both times since ``fault_ended``; then check that nothing was lost or scaled down."""
    cp = setup.cp
    setup.steady.value = 29 if setup.steady.value == 30 else 30  # 3 replicas either way
    wait_for(
        f"{scenario}: a fresh value served", lambda: setup.served("steady") == setup.steady.value
    )
    served = time.monotonic() - fault_ended
    after = f"after-{scenario}"
    wait_for(f"{scenario}: apply {after}", lambda: cp.apply(controlplane.deployment(after, NS, 1)))
    wait_for(f"{scenario}: apply its object", lambda: cp.apply(scaled(after, setup.steady.url, 1)))
    wait_for(f"{scenario}: the HPA of {after}", lambda: cp.get(*HPAS, f"keda-hpa-{after}", NS))
    RECOVERED[scenario] = {"served": served, "reconciled": time.monotonic() - fault_ended}
    assert_nothing_lost(setup)


def ready(cp: ControlPlane, name: str) -> bool:
    found = condition(cp.get(KEDA, "ScaledObject", name, NS), "Ready") or {}
    return found.get("status") == "True"


def assert_nothing_lost(setup: Install) -> None:
    cp = setup.cp
    try:
        wait_for("every object Ready again", lambda: all(ready(cp, n) for n in _names(cp)))
    except TimeoutError:
        conditions = {
            n: condition(cp.get(KEDA, "ScaledObject", n, NS), "Ready") for n in _names(cp)
        }
        raise AssertionError(f"not every object is Ready again: {conditions}") from None
    assert setup.lowest == {"steady": REPLICAS, "partitioned": REPLICAS}, setup.lowest
    objects = cp.client.get(f"/apis/{KEDA}/namespaces/{NS}/scaledobjects").json()["items"]
    hpas = cp.client.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers")
    names = sorted(h["metadata"]["name"] for h in hpas.json()["items"])
    assert names == sorted(f"keda-hpa-{o['metadata']['name']}" for o in objects)
    for so in objects:
        assert (condition(so, "Ready") or {}).get("status") == "True", so["status"]
        assert "originalReplicaCount" in so["status"], so["status"]


def _names(cp: ControlPlane) -> list[str]:
    listed = cp.client.get(f"/apis/{KEDA}/namespaces/{NS}/scaledobjects").json()["items"]
    return [o["metadata"]["name"] for o in listed]


def test_kube_apiserver_killed_and_restarted(install: Install) -> None:
    install.cp.kill("kube-apiserver")
    time.sleep(2 * INTERVAL)  # polls and watches fail meanwhile
    install.cp.revive("kube-apiserver")
    recover(install, "kube-apiserver-restart", time.monotonic())


def test_etcd_killed_for_seconds_then_restarted(install: Install) -> None:
    install.cp.kill("etcd")
    time.sleep(5)
    install.cp.revive("etcd")
    recover(install, "etcd-restart", time.monotonic())


def test_the_adapter_killed_mid_scale_scales_once_and_keeps_the_original_count(
    install: Install,
) -> None:
    cp, adapter = install.cp, install.adapter
    source = MetricsSource()
    try:
        cp.apply(controlplane.deployment("wake", NS, 0))
        cp.apply(scaled("wake", source.url))
        wait_for("wake Ready", lambda: ready(cp, "wake"))
        source.value = 20  # 0 -> 2
        wait_for("activation began", lambda: cp.replicas("wake", NS) > 0, poll_within())
        adapter.process.kill()  # type: ignore[union-attr]
        adapter.process = None
        began = time.monotonic()
        adapter.start()
        highest = 0
        deadline = time.monotonic() + SLACK
        while time.monotonic() < deadline:
            highest = max(highest, cp.replicas("wake", NS))
            status = (cp.get(KEDA, "ScaledObject", "wake", NS) or {}).get("status") or {}
            if cp.replicas("wake", NS) == 2 and cp.get(*HPAS, "keda-hpa-wake", NS):
                break
            time.sleep(0.2)
        assert cp.replicas("wake", NS) == 2
        assert highest <= 2  # one scale, not one per adapter life
        assert status.get("originalReplicaCount") == 0  # as it was before the first activation
        recover(install, "adapter-sigkill-mid-scale", began)
    finally:
        cp.delete(KEDA, "ScaledObject", "wake", NS)  # its source goes with this test
        wait_for("wake deleted", lambda: cp.get(KEDA, "ScaledObject", "wake", NS) is None)
        source.close()


def _serves(install: Install, name: str, value: float) -> Callable[[], bool]:
    return lambda: install.served(name) == value


def poll_within() -> float:
    """An activation follows a value change within an interval and a poll's timeout."""
    return INTERVAL + SCALER_TIMEOUT + SLACK


def test_a_partitioned_source_scales_nothing_down_while_others_stay_fresh(
    install: Install,
) -> None:
    """Loss (a blackhole), then a 2 s delay each way (netem's ``delay 2s``: a 4 s round trip,
    past the 3 s scaler timeout), each for longer than a few timeouts: every poll of the
    partitioned source fails, its replicas hold, and the other source's values keep coming;
    healed, the partitioned one is served again."""
    proxy, slowest = install.proxy, 0.0
    install.partitioned.value = 29  # what it will serve once healed
    try:
        for mode, values in (("blackhole", (28, 27)), ("delayed", (26, 25))):
            proxy.mode = mode  # type: ignore[assignment]
            began = time.monotonic()
            for value in values:
                install.steady.value = value
                asked = time.monotonic()
                wait_for(f"steady serves {value}", _serves(install, "steady", value), poll_within())
                slowest = max(slowest, time.monotonic() - asked)
            time.sleep(max(0.0, 3 * SCALER_TIMEOUT - (time.monotonic() - began)))
            # An error, never a value: the HPA holds its replicas (the sampler checks).
            answer = install.cp.client.get(install.metric("partitioned"))
            assert answer.status_code != 200, answer.text
            assert "encountered error" in answer.text
    finally:
        proxy.mode = "passing"
    healed = time.monotonic()
    wait_for("partitioned serves 29 healed", _serves(install, "partitioned", 29), poll_within())
    recover(install, "source-partition", healed)
    RECOVERED["source-partition"]["partitioned_served"] = time.monotonic() - healed
    RECOVERED["source-partition"]["others_fresh_within"] = slowest


def test_an_adapter_restarted_five_minutes_ahead_keeps_the_cooldown(install: Install) -> None:
    """lastActiveTime was written by a process on the right clock; the next runs five minutes
    ahead. Compared with its own clock, a 240 s cooldown would be over at once and the
    workload scaled to zero the moment its source goes quiet; compared with kube-apiserver's,
    the cooldown starts when the source went quiet."""
    cp, adapter = install.cp, install.adapter
    source = MetricsSource()
    source.value = 20
    try:
        cp.apply(controlplane.deployment("late", NS, 0))
        cp.apply(scaled("late", source.url, cooldown=240))
        wait_for("late at 2", _at(cp, "late", 2), poll_within())
        wait_for("late's lastActiveTime", lambda: _status(cp, "late").get("lastActiveTime"))
        adapter.stop()
        adapter.launcher = skewed("+5m")
        adapter.start()
        source.value = 0  # quiet from now on: 240 s of cooldown to go
        quiet = time.monotonic()
        lowest = 2
        while time.monotonic() - quiet < 4 * (INTERVAL + SCALER_TIMEOUT):
            lowest = min(lowest, cp.replicas("late", NS))
            time.sleep(0.25)
        assert lowest > 0, "scaled to zero at once: the cooldown was read on the skewed clock"
        written = datetime.fromisoformat(_status(cp, "late")["lastActiveTime"])
        assert abs(written - server_now(cp)) < timedelta(seconds=30), written
    finally:
        back_on_time(install, "late", source)


def test_an_adapter_restarted_five_minutes_behind_keeps_the_activity_current(
    install: Install,
) -> None:
    """The mirror: a clock five minutes behind would write lastActiveTime five minutes in the
    past (a replica taking over would end the cooldown that much early), or not at all, as
    it moved backwards. On kube-apiserver's clock it follows the activity, and the cooldown
    ends when it should, not five minutes late."""
    cp, adapter = install.cp, install.adapter
    source = MetricsSource()
    source.value = 20
    cooldown = 20
    try:
        cp.apply(controlplane.deployment("behind", NS, 0))
        cp.apply(scaled("behind", source.url, cooldown=cooldown))
        wait_for("behind at 2", _at(cp, "behind", 2), poll_within())
        adapter.stop()
        adapter.launcher = skewed("-5m")
        adapter.start()
        restarted = server_now(cp)
        # Written again once it moved a tenth of the cooldown: within a few polls.
        wait_for(
            "lastActiveTime from the late process", lambda: _last_active(cp, "behind") > restarted
        )
        assert abs(_last_active(cp, "behind") - server_now(cp)) < timedelta(seconds=30)
        source.value = 0
        quiet = time.monotonic()
        wait_for("behind at zero after its cooldown", _at(cp, "behind", 0), cooldown + SLACK)
        assert time.monotonic() - quiet > cooldown / 2, "the cooldown ended early"
    finally:
        back_on_time(install, "behind", source)


def back_on_time(install: Install, name: str, source: MetricsSource) -> None:
    """After a skewed run: the adapter on the machine's clock again, and ``name`` gone."""
    cp, adapter = install.cp, install.adapter
    adapter.stop()
    adapter.launcher = []
    adapter.start()
    cp.delete(KEDA, "ScaledObject", name, NS)
    wait_for(f"{name} deleted", lambda: cp.get(KEDA, "ScaledObject", name, NS) is None)
    source.close()


def skewed(offset: str) -> list[str]:
    """Run the adapter with its wall clock ``offset`` (``+5m``) from the machine's."""
    assert LIBFAKETIME.exists(), "libfaketime: .ci/bootstrap installs Debian's faketime"
    return [
        "env",
        f"FAKETIME={offset}",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",  # timers and the Lease run on the real one
        f"LD_PRELOAD={LIBFAKETIME}",
    ]


def _last_active(cp: ControlPlane, name: str) -> datetime:
    written = _status(cp, name).get("lastActiveTime")
    return datetime.fromisoformat(written) if written else datetime.min.replace(tzinfo=UTC)


def _status(cp: ControlPlane, name: str) -> dict[str, Any]:
    return dict((cp.get(KEDA, "ScaledObject", name, NS) or {}).get("status") or {})


def server_now(cp: ControlPlane) -> datetime:
    """kube-apiserver's clock, from the Date of an answer."""
    date = cp.client.get("/version").headers["date"]
    return parsedate_to_datetime(date).astimezone(UTC)
