"""Upstream load of the real ``serve --scaledobjects`` process, counted by nats-server itself:
triggers that share one query cost one request per polling interval, however many they are,
and whether a ScaledObject or a ScaledJob holds them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.adapter import Bench, metric_url, scaled_object
from bench.upstream import jsz_probe, sample
from tests.support import jetstream, triggers
from tests.support.controlplane import wait_for
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

INTERVAL = 1  # the objects' pollingInterval
SCALER_TIMEOUT = 3.0  # serve's --scaler-timeout default: a poll ends within it


def test_a_hundred_triggers_on_one_query_cost_one_jsz_request_per_interval(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    consumers = [f"c{i}" for i in range(10)]
    asyncio.run(jetstream.prepare(nats_server.url, "JOBS", "jobs", consumers, publish=5))

    def trigger(i: int) -> dict[str, object]:
        metadata = {
            "natsServerMonitoringEndpoint": nats_server.monitoring_endpoint,
            "account": "$G",
            "stream": "JOBS",
            "consumer": consumers[i % 10],
        }
        return {"type": "nats-jetstream", "metadata": metadata}

    # 100 ScaledObjects and 20 ScaledJobs on 10 consumers of one account at one endpoint:
    # one distinct query.
    docs = [
        scaled_object(f"so-{i}", "load", trigger(i), polling_interval=INTERVAL) for i in range(100)
    ] + [
        triggers.scaled_job(f"sj-{i}", "load", trigger(i), pollingInterval=INTERVAL)
        for i in range(20)
    ]
    bench = Bench(tmp_path)
    with bench.adapter("adapter", docs, flags=("--log-level=info",)) as adapter:
        for so in ("so-0", "so-99"):
            url = metric_url(adapter.url, "load", "s0-nats-jetstream-JOBS", so)
            bench.wait_value(url, timeout=30)
            assert '"value":"5"' in bench.get(url).text
        # The first poll is done; the second lands at a random phase of the interval after it,
        # and the period is steady from there.
        served = nats_server.requests_served
        wait_for("the second poll", lambda: served("/jsz") >= 2, INTERVAL + SCALER_TIMEOUT, 0.05)
        jsz = sample({"jsz": jsz_probe(nats_server)}, 4.0)["jsz"]
        log = adapter.tail(10**6)
    # The ScaledJobs were evaluated on the shared readings: lag 5, lagThreshold 10 -> 1 Job.
    assert "would create 1 Job for load/sj-19: queue 5, target 10" in log
    # Every window one interval long holds one request (the median forgives a window that
    # ends just as a poll lands); one per trigger would be 100.
    assert jsz.per_interval(1.0) == 1
    assert 3 <= jsz.values[-1] - jsz.values[0] <= 5
