"""scalingModifiers in the real ``metrics-adapter serve --scaledobjects`` process: a metrics-api
source and a real redis-server on loopback, combined by a formula, read as ``composite-metric``
over verified TLS; activation on ``activationTarget`` decided by the dry run; KEDA's series;
a failing source refused, never a garbage number; and ``explain`` with every input."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from metrics_adapter.explain.local import as_dicts, explain, render
from tests.support.controlplane import Adapter
from tests.support.pki import CertificateAuthority, client_context
from tests.support.redis_server import NEEDS, RedisServer, binary
from tests.support.servers import free_port, require_in_ci, serving

pytestmark = pytest.mark.integration

REDIS_BINARY = binary()
require_in_ci(REDIS_BINARY is not None, NEEDS)

MIXER = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: mixer
  namespace: apps
spec:
  scaleTargetRef:
    name: mixer
  minReplicaCount: 0
  maxReplicaCount: 10
  pollingInterval: 1
  triggers:
  - type: metrics-api
    name: queue
    metadata:
      url: "{url}/stats"
      valueLocation: depth
  - type: redis
    name: backlog
    metadata:
      address: "{address}"
      listName: jobs
  advanced:
    scalingModifiers:
      formula: "queue + backlog * 2"
      target: "10"
      activationTarget: "5"
"""
NAMESPACE = "/apis/external.metrics.k8s.io/v1beta1/namespaces/apps"
SELECTOR = "?labelSelector=scaledobject.keda.sh%2Fname%3Dmixer"
COMPOSITE = f"{NAMESPACE}/composite-metric{SELECTOR}"
QUEUE = f"{NAMESPACE}/s0-metric-api-depth{SELECTOR}"
INTERVAL, SCALER_TIMEOUT = 1, 3.0  # MIXER's pollingInterval; serve's --scaler-timeout default
FOLLOWED_WITHIN = 4 * (INTERVAL + SCALER_TIMEOUT)
"""A change at a source is composed after its next poll; four polls' worth for a loaded machine."""


@dataclass
class Stats:
    """The metrics-api source: ``{"depth": …}``, or a 500 while ``failing``."""

    depth: float = 0
    failing: bool = False
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        async def stats(request: Request) -> Response:
            if self.failing:
                return JSONResponse({"error": "down"}, status_code=500)
            return JSONResponse({"depth": self.depth})

        self.app = Starlette(routes=[Route("/stats", stats)])


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if REDIS_BINARY is None:
        pytest.skip(f"no {NEEDS} (CI fails instead)")
    server = RedisServer(REDIS_BINARY).start()
    try:
        yield server
    finally:
        server.cleanup()


@dataclass
class Running:
    adapter: Adapter
    client: httpx.AsyncClient
    stats: Stats
    backlog: redis.Redis
    metrics_port: int
    objects: Path

    async def value(self, path: str) -> float | None:
        response = await self.client.get(path)
        if response.status_code != 200:
            return None
        return float(response.json()["items"][0]["value"])

    def log(self) -> str:
        return self.adapter.tail(10**6)


@pytest.fixture
async def running(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Running]:
    stats = Stats(depth=3)
    backlog = redis.Redis(host="127.0.0.1", port=redis_server.port)
    backlog.lpush("jobs", "j0")
    ca = CertificateAuthority("serving-ca")
    pair = ca.issue("metrics-adapter", hosts=["127.0.0.1"], usage="server")
    async with serving(stats.app) as url:
        objects = tmp_path / "objects"
        objects.mkdir()
        (objects / "mixer.yaml").write_text(MIXER.format(url=url, address=redis_server.address))
        metrics_port = free_port()
        adapter = Adapter(
            objects, tmp_path / "state", pair, ca.pem, args=[f"--metrics-port={metrics_port}"]
        )
        await asyncio.to_thread(adapter.start)  # the source keeps answering meanwhile
        client = httpx.AsyncClient(base_url=adapter.url, verify=client_context(ca.pem))
        try:
            yield Running(adapter, client, stats, backlog, metrics_port, objects)
        finally:
            await client.aclose()
            await asyncio.to_thread(adapter.stop)
            backlog.close()


async def until(what: str, probe: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        await asyncio.sleep(0.1)


async def test_two_sources_combined_and_served_as_composite_metric(running: Running) -> None:
    async def composite_is(value: float) -> bool:
        return await running.value(COMPOSITE) == value

    await until("3 + 1 * 2", lambda: composite_is(5), FOLLOWED_WITHIN)
    assert await running.value(QUEUE) == 3  # each trigger's own metric is served too
    body = (await running.client.get(COMPOSITE)).json()
    assert body["items"][0]["metricName"] == "composite-metric"
    # 5 is not above activationTarget 5: the dry run keeps the target at 0.
    assert "would scale apps/mixer" not in running.log()

    running.backlog.lpush("jobs", *[f"j{i}" for i in range(1, 11)])  # backlog 11
    await until("3 + 11 * 2", lambda: composite_is(25), FOLLOWED_WITHIN)

    async def activated() -> bool:
        return "would scale apps/mixer from 0 to 3: composite-metric 25 > 5" in running.log()

    await until("activated", activated, FOLLOWED_WITHIN)
    assert "composite-metric: ceil(25 / 10) = 3" in running.log()  # the HPA on the composite

    async with httpx.AsyncClient() as plain:
        series = (await plain.get(f"http://127.0.0.1:{running.metrics_port}/metrics")).text
    labels = (
        'metric="composite-metric",namespace="apps",scaledObject="mixer",'
        'scaler="composite-metric",triggerIndex="0",type="scaledobject"'
    )
    assert f"keda_scaler_metrics_value{{{labels}}} 25.0" in series
    assert f"keda_scaler_active{{{labels}}} 1.0" in series
    assert 'keda_scaler_active{metric="s0-metric-api-depth"' not in series


async def test_a_failing_source_is_an_error_never_a_number(running: Running) -> None:
    await until("served", lambda: _served(running), FOLLOWED_WITHIN)
    running.stats.failing = True

    async def refused() -> bool:
        return (await running.client.get(COMPOSITE)).status_code == 503

    await until("503", refused, FOLLOWED_WITHIN)
    status = (await running.client.get(COMPOSITE)).json()
    assert status["kind"] == "Status"
    assert status["message"].startswith("metric:composite-metric encountered error: ")
    assert "s0-metric-api-depth failing" in status["message"]
    running.stats.failing = False
    await until("served again", lambda: _served(running), FOLLOWED_WITHIN)


async def _served(running: Running) -> bool:
    return await running.value(COMPOSITE) is not None


async def test_explain_shows_the_formula_with_every_input(running: Running) -> None:
    running.backlog.lpush("jobs", "j1", "j2", "j3", "j4")  # backlog 5: 3 + 5 * 2 = 13
    reports = await explain(running.objects)
    text = render(reports)
    assert "  composite-metric = queue + backlog * 2  (target 10, AverageValue)" in text
    assert "    queue = 3  (s0-metric-api-depth)" in text
    assert "    backlog = 5  (s1-redis-jobs)" in text
    assert "    = 13: activation 13 > 5; HPA ceil(13 / 10) = 2" in text
    (report,) = json.loads(json.dumps(as_dicts(reports)))
    composite = report["composite"]
    assert (composite["result"], composite["served"], composite["active"]) == (13, 13, True)
    assert [(i["name"], i["value"]) for i in composite["inputs"]] == [("backlog", 5), ("queue", 3)]
