"""deploy/grafana/metrics-adapter.json against a real Prometheus scraping a real adapter.

The adapter runs standalone with three ScaledObjects: ``clock`` (cron, always active),
``source`` (a prometheus trigger reading ``vector(4)`` from the same Prometheus) and
``failing`` (a prometheus trigger against a port nothing listens on); and one ScaledJob,
``batch``, reading ``vector(4)`` too. The test reads metrics
through the API (200s, a 503 for ``failing``, discovery), has the admission webhook admit one
ScaledObject and refuse another, and then evaluates every panel's
query, with the template variables set to those objects, as an instant query: each returns
data. The kube-state-metrics queries (HPA replicas and targets) are the exception, listed in
:data:`KUBE_STATE_METRICS`: nothing here exports them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_standalone import Adapter
from tests.support.admission import review
from tests.support.prometheus import NEEDS, PrometheusServer, binary
from tests.support.servers import free_ports, require_in_ci

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO / "deploy" / "grafana" / "metrics-adapter.json"
PROMETHEUS_BINARY = binary()
require_in_ci(PROMETHEUS_BINARY is not None, NEEDS)

NAMESPACE = "dashboard"
VARIABLES = {
    # What Grafana puts in the query: a single value, and for multi-value a regex group.
    "__rate_interval": "1m",
    "job": "app",
    "namespace": NAMESPACE,
    "scaledObject": "(clock|source|failing)",
}
KUBE_STATE_METRICS = {
    ("Metric value vs target", "B"),
    ("Replicas (kube-state-metrics)", "A"),
    ("Replicas (kube-state-metrics)", "B"),
    ("Replicas (kube-state-metrics)", "C"),
}
"""(panel, refId) of the queries on kube_* series: only kube-state-metrics exports them."""

OBJECT = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {name}
  namespace: dashboard
spec:
  scaleTargetRef:
    name: {name}
  pollingInterval: 1
  triggers:
  - type: {type}
    metadata: {metadata}
"""


JOB = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata:
  name: batch
  namespace: dashboard
spec:
  jobTargetRef:
    template:
      spec:
        containers: [{{name: batch, image: batch}}]
  pollingInterval: 1
  triggers:
  - type: prometheus
    metadata: {metadata}
"""


WEBHOOK = "/validate-keda-sh-v1alpha1-scaledobject"
CRON = '{timezone: UTC, start: "0 0 1 1 *", end: "* * * * *", desiredReplicas: "3"}'
ADMITTED = yaml.safe_load(OBJECT.format(name="clock", type="cron", metadata=CRON))
REFUSED = yaml.safe_load(OBJECT.format(name="too-many", type="cron", metadata="{}"))
REFUSED["spec"] |= {"minReplicaCount": 5, "maxReplicaCount": 2}
"""Refused by the webhook: replica bounds (``incorrect-replicas``) and a cron trigger without
its parameters (``invalid-spec``)."""


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_PATH.read_text()))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


def expand(expr: str) -> str:
    """``expr`` as Grafana sends it, with :data:`VARIABLES` for ``$name`` and ``${name}``."""

    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        assert name in VARIABLES, f"no test value for ${name} in {expr!r}"
        return VARIABLES[name]

    return re.sub(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))", value, expr)


def test_the_dashboard_is_structurally_sound() -> None:
    dashboard = load()
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "namespace", "scaledObject"} <= set(variables)
    assert variables["scaledObject"]["multi"] and variables["scaledObject"]["includeAll"]
    source = {"type": "prometheus", "uid": "${datasource}"}
    for panel in all_panels(dashboard):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, (panel["title"], target["refId"])
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == source, variable["name"]
    kube = {(title, t["refId"]) for title, t in targets(dashboard) if "kube_" in t["expr"]}
    assert kube == KUBE_STATE_METRICS
    assert "kube-state-metrics" in dashboard["description"]


@dataclass
class Scraped:
    prometheus: PrometheusServer
    adapter: Adapter


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    if PROMETHEUS_BINARY is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    root = tmp_path_factory.mktemp("dashboard")
    objects = root / "objects"
    objects.mkdir()
    prometheus_port, dead_port = free_ports(2)
    query = '{serverAddress: "http://127.0.0.1:%d", query: "vector(4)", threshold: "2"}'
    for name, kind, metadata in (
        ("clock", "cron", CRON),
        ("source", "prometheus", query % prometheus_port),
        ("failing", "prometheus", query % dead_port),
    ):
        (objects / f"{name}.yaml").write_text(
            OBJECT.format(name=name, type=kind, metadata=metadata)
        )
    (objects / "batch.yaml").write_text(JOB.format(metadata=query % prometheus_port))
    adapter = Adapter(objects, root / "adapter.log")
    server = PrometheusServer(
        PROMETHEUS_BINARY, target=f"127.0.0.1:{adapter.metrics_port}", port=prometheus_port
    )
    try:
        server.start()
        running = Scraped(server, adapter)
        read_metrics(running)
        yield running
    finally:
        server.cleanup()
        if adapter.process.poll() is None:
            adapter.stop()


def read_metrics(scraped: Scraped) -> None:
    """Serve values, one 503 and discovery, as the HPA and the aggregator would, and one
    admitted and one refused admission review, as kube-apiserver would, across two scrapes so
    that every rate() has two samples."""
    client, prometheus = scraped.adapter.client, scraped.prometheus
    prometheus.wait_for(
        f'keda_scaler_metrics_value{{namespace="{NAMESPACE}", scaledObject="source"}} == 4',
        lambda result: len(result) == 1,
    )
    # The metric names the adapter serves, as its own series label them.
    served = prometheus.wait_for(
        f'keda_scaler_active{{namespace="{NAMESPACE}", type="scaledobject"}}',
        lambda result: len(result) == 3,
    )
    paths = {
        s["metric"]["scaledObject"]: (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{s['metric']['metric']}"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{s['metric']['scaledObject']}"
        )
        for s in served
    }
    for _ in range(2):
        assert client.get(paths["clock"]).status_code == 200
        assert client.get(paths["source"]).status_code == 200
        assert client.get(paths["failing"]).status_code == 503
        assert client.get("/apis/external.metrics.k8s.io/v1beta1").status_code == 200
        for obj, allowed in ((ADMITTED, True), (REFUSED, False)):
            answer = client.post(WEBHOOK, json=review(obj))
            assert answer.json()["response"]["allowed"] is allowed, answer.text
        samples = 'count_over_time(apiserver_request_total{job="app"}[1m])'
        before: list[Any] = prometheus.query(samples)["data"]["result"]
        prometheus.wait_for(samples, lambda result: result != before)  # noqa: B023 - used at once
    prometheus.wait_for(
        'count_over_time(apiserver_request_total{job="app", code="503"}[1m]) >= 2',
        lambda result: len(result) == 1,
    )
    prometheus.wait_for(
        "count_over_time(keda_webhook_scaled_object_validation_errors_total"
        f'{{namespace="{NAMESPACE}"}}[1m]) >= 2',
        lambda result: len(result) == 2,  # incorrect-replicas and invalid-spec
    )


QUERIES = [
    (f"{title}#{t['refId']}", t["expr"])
    for title, t in targets(load())
    if (title, t["refId"]) not in KUBE_STATE_METRICS
]


@pytest.mark.parametrize(("query", "expr"), QUERIES, ids=[q for q, _ in QUERIES])
def test_every_panel_query_returns_data(scraped: Scraped, query: str, expr: str) -> None:
    promql = expand(expr)
    response = scraped.prometheus.query(promql)
    assert response["status"] == "success", response
    assert response["data"]["result"], f"{query}: no data for {promql}"


VARIABLE_QUERY = re.compile(r"^label_values\((?P<selector>.+), (?P<label>\w+)\)$")


def test_every_variable_lists_the_running_objects(scraped: Scraped) -> None:
    # A ScaledJob's series carry its name in scaledObject, as KEDA's do: it is listed too.
    scaled = {"clock", "source", "batch"}
    expected = {"job": {"app"}, "namespace": {NAMESPACE}, "scaledObject": scaled}
    for variable in load()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = VARIABLE_QUERY.match(variable["query"]["query"])
        assert match, variable["query"]
        label = match["label"]
        result = scraped.prometheus.query(f"count by ({label}) ({expand(match['selector'])})")
        values = {series["metric"][label] for series in result["data"]["result"]}
        assert expected[variable["name"]] <= values, (variable["name"], values)
