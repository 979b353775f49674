"""One real control plane per session, with the adapter registered as the external metrics API.

The adapter runs standalone (``--scaledobjects``) on a free loopback port; the aggregator
reaches it through the ExternalName Service ``keda/metrics-adapter`` -> ``localhost`` and
the APIService's real caBundle. Its ScaledObjects live in namespace ``e2e``:

- ``worker``: a cron trigger that is always active (start once a year, end every minute),
  desiredReplicas 7, so its value is a known constant;
- ``queue``: a metrics-api trigger against :class:`MetricsSource`, whose value tests set.

In CI (``CI`` set) missing control-plane binaries are built, never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import parse_scaled_object
from tests.support import triggers
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    BIN_DIR,
    Adapter,
    ControlPlane,
    ControlPlaneError,
    adapter_kubeconfig,
    install_manifests,
    missing_binaries,
    route_apiservice,
    serving_pair,
    wait_for,
)

NAMESPACE = "e2e"
STARTUP: dict[str, float] = {}
NODE_REPORT: dict[str, str] = {}
"""test_node.py's figures, with their units: its start-up phases, the pods, the reads."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs against a real kube-apiserver, kube-controller-manager and etcd"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STARTUP:
        phases = ", ".join(f"{k} {v}s" for k, v in STARTUP.items())
        terminalreporter.write_line(f"e2e control plane start-up: {phases}")
    if NODE_REPORT:
        figures = ", ".join(f"{k} {v}" for k, v in NODE_REPORT.items())
        terminalreporter.write_line(f"e2e node: {figures}")


def scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return triggers.scaled_object(
        name, NAMESPACE, trigger, minReplicaCount=1, maxReplicaCount=10, pollingInterval=1
    )


def cron_object(name: str, desired: int) -> dict[str, Any]:
    """Always active (:func:`triggers.always_cron`)."""
    return scaled_object(name, triggers.always_cron(desired))


def metric_name(doc: dict[str, Any]) -> str:
    """The External metric name the adapter serves for the first trigger of ``doc``."""
    return bind(parse_scaled_object(doc), Inventory())[0].metric_name


class MetricsSource:
    """A loopback HTTP endpoint answering ``{"value": <value>}`` for metrics-api triggers."""

    def __init__(self) -> None:
        self.value: float = 0
        self.hits: Counter[str] = Counter()
        """Requests answered, by path (any path answers)."""
        counting = threading.Lock()
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with counting:
                    source.hits[self.path] += 1
                body = json.dumps({"value": source.value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/value"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Registered:
    """The adapter as the cluster sees it, and the objects it serves."""

    cp: ControlPlane
    adapter: Adapter
    source: MetricsSource
    worker: dict[str, Any]
    queue: dict[str, Any]

    def write(self, doc: dict[str, Any]) -> None:
        self.adapter.objects.mkdir(parents=True, exist_ok=True)
        path = self.adapter.objects / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def restart(self) -> None:
        """Restart the adapter, which re-reads its objects, and wait until it serves again."""
        self.adapter.restart()
        for doc in (self.worker, self.queue):
            self.wait_served(doc, timeout=60)

    def wait_served(self, doc: dict[str, Any], timeout: float = 30) -> None:
        """Wait until the aggregator returns a value for ``doc`` (its first poll is done)."""
        path = self.metric_path(doc)
        wait_for(f"a value of {path}", lambda: self.cp.client.get(path).status_code == 200, timeout)

    def metric_path(self, doc: dict[str, Any]) -> str:
        name = doc["metadata"]["name"]
        return (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{metric_name(doc)}"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{name}"
        )


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    if missing := missing_binaries():
        # In CI a missing binary is built (and a failed build fails the tests), never skipped.
        if not os.environ.get("CI") and shutil.which("go") is None:
            pytest.skip(f"{missing} not in {BIN_DIR} and no Go to build them")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"building {missing} into {BIN_DIR}: minutes when cold")
    cp = ControlPlane()
    try:
        cp.start()
    except Exception as exc:
        logs = cp.logs()
        cp.cleanup()
        pytest.fail(f"the control plane did not start: {exc}\n{logs}")
    STARTUP.update(cp.timings)
    try:
        yield cp
    finally:
        cp.cleanup()


@pytest.fixture(scope="session")
def registered(control_plane: ControlPlane) -> Iterator[Registered]:
    cp = control_plane
    source = MetricsSource()
    worker = cron_object("worker", 7)
    queue = scaled_object(
        "queue",
        {
            "type": "metrics-api",
            "metadata": {"url": source.url, "valueLocation": "value", "targetValue": "10"},
        },
    )
    adapter = Adapter(
        objects=cp.state / "objects",
        state=cp.state,
        pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),
        ca_pem=cp.ca.pem,
    )
    registration = Registered(cp, adapter, source, worker, queue)
    install_manifests(cp)  # the RBAC the adapter's identity reviews callers with, first
    adapter.auth_kubeconfig = adapter_kubeconfig(cp)
    for doc in (worker, queue):
        registration.write(doc)
    try:
        began = time.monotonic()
        try:
            adapter.start()
            cp.ensure_namespace(NAMESPACE)
            route_apiservice(cp, adapter)
            for doc in (worker, queue):
                registration.wait_served(doc)
        except (TimeoutError, ControlPlaneError) as exc:
            logs = f"{cp.logs()}\n--- adapter\n{adapter.tail()}"
            pytest.fail(f"the adapter was not registered: {exc}\n{logs}")
        STARTUP["adapter registered"] = round(time.monotonic() - began, 2)
        yield registration
    finally:
        adapter.stop()
        source.close()
