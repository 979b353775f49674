"""The cluster-mode client layer against the real kube-apiserver: watches with resume and
re-list after 410, /scale, ScaledObject status, Events, HPA apply, and ClusterObjects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrics_adapter.binding.cluster import ClusterObjects, ObjectKey
from metrics_adapter.binding.triggers import bind
from metrics_adapter.errors import KubeError, KubeNotFound, KubeUnreachable
from metrics_adapter.kube.autoscaling import (
    ExternalMetric,
    HorizontalPodAutoscaler,
    MetricTarget,
    ScaleTargetRef,
)
from metrics_adapter.kube.client import (
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    EVENTS,
    SCALED_OBJECTS,
    SECRETS,
    TRIGGER_AUTHENTICATIONS,
    KubeClient,
)
from metrics_adapter.kube.objects import Event, ObjectMeta, ObjectReference
from metrics_adapter.kube.watch import WatchEvent, watch
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import JsonGet
from tests.support import controlplane
from tests.support.controlplane import (
    ADAPTER_USER,
    DEPLOY,
    ControlPlane,
    adapter_kubeconfig,
    load_manifests,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

NS = "kube-client"
CLUSTER_NS = "kube-client-keda"  # not "keda": its Namespace belongs to deploy/rbac.yaml
WAIT = 30.0


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with deploy/ (RBAC, CRDs) installed and the test namespaces."""
    cp = control_plane
    for doc in load_manifests(DEPLOY / "rbac.yaml"):
        cp.apply(doc)
    for crd in load_manifests(DEPLOY / "crds"):
        cp.apply(crd)
    for crd in load_manifests(DEPLOY / "crds"):
        name = crd["metadata"]["name"]
        cp.wait_condition(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", name, "Established"
        )
    cp.ensure_namespace(NS)
    cp.ensure_namespace(CLUSTER_NS)
    return cp


@pytest.fixture
async def client(cluster: ControlPlane) -> AsyncIterator[KubeClient]:
    """The client under test, as the adapter's ServiceAccount: every call gets only what
    deploy/rbac.yaml grants."""
    async with await KubeClient.connect(adapter_kubeconfig(cluster), timeout=10.0) as kube:
        yield kube


@pytest.fixture
async def admin(cluster: ControlPlane) -> AsyncIterator[KubeClient]:
    """The same client as cluster admin, to set the scene."""
    async with await KubeClient.connect(cluster.kubeconfig, timeout=10.0) as kube:
        yield kube


def scaled_object(name: str, target: str = "worker", **spec: Any) -> dict[str, Any]:
    cron = {"timezone": "UTC", "start": "0 8 * * *", "end": "0 20 * * *", "desiredReplicas": "2"}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": target},
            "triggers": [{"type": "cron", "metadata": cron}],
            **spec,
        },
    }


def deployment(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    return controlplane.deployment(name, NS, containers=list(containers) or None)


def secret(name: str, namespace: str = NS, **values: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": values}


@contextlib.asynccontextmanager
async def watching(
    events: AsyncGenerator[WatchEvent, None],
) -> AsyncIterator[asyncio.Queue[WatchEvent]]:
    """Run a watch into a queue for the duration of the block, then cancel it."""
    queue: asyncio.Queue[WatchEvent] = asyncio.Queue()

    async def pump() -> None:
        async with contextlib.aclosing(events):
            async for event in events:
                queue.put_nowait(event)

    task = asyncio.create_task(pump())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_event(queue: asyncio.Queue[WatchEvent], name: str | None = None) -> WatchEvent:
    """The next event about object ``name`` (or the next SYNCED when ``None``)."""
    async with asyncio.timeout(WAIT):
        while True:
            event = await queue.get()
            found = event.object.get("metadata", {}).get("name")
            if (name is None and event.type == "SYNCED") or (name and found == name):
                return event


async def logged(caplog: pytest.LogCaptureFixture, text: str, times: int, within: float) -> None:
    """Until ``times`` captured messages contain ``text``, checked every 20 ms."""
    deadline = time.monotonic() + within
    while sum(text in r.message for r in caplog.records) < times:
        assert time.monotonic() < deadline, f"{times} x {text!r}: not logged within {within:g}s"
        await asyncio.sleep(0.02)


async def test_the_client_under_test_has_only_the_adapters_rights(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await client.apply(SECRETS, secret("not-ours"))
    assert (info.value.code, info.value.reason) == (403, "Forbidden")
    assert str(info.value).startswith(
        f'Secret kube-client/not-ours (apply): 403 Forbidden: secrets "not-ours" is forbidden: '
        f'User "{ADAPTER_USER}" cannot patch resource "secrets"'
    )


async def test_a_watch_sees_a_scaled_object_added_modified_and_deleted(
    client: KubeClient,
    admin: KubeClient,
) -> None:
    async with watching(watch(client, SCALED_OBJECTS, NS)) as events:
        await next_event(events)
        await admin.apply(SCALED_OBJECTS, scaled_object("seen"))
        added = await next_event(events, "seen")
        await admin.apply(SCALED_OBJECTS, scaled_object("seen", maxReplicaCount=7))
        modified = await next_event(events, "seen")
        assert await admin.delete(SCALED_OBJECTS, "seen", NS)
        deleted = await next_event(events, "seen")
    assert [added.type, modified.type, deleted.type] == ["ADDED", "MODIFIED", "DELETED"]
    assert modified.object["spec"]["maxReplicaCount"] == 7
    assert parse_scaled_object(added.object).ref.name == "seen"


async def test_a_watch_from_an_expired_resource_version_relists(
    client: KubeClient, admin: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """kube-apiserver answers 200 and one ERROR event, 410 Expired, "too old resource
    version: 1 (N)": the watch lists again and goes on from the list's version."""
    caplog.set_level(logging.DEBUG, logger="metrics_adapter.kube.watch")
    telemetry = client.observer = Telemetry()
    await admin.apply(SCALED_OBJECTS, scaled_object("old"))
    try:
        stream = watch(client, SCALED_OBJECTS, NS, resource_version="1")
        async with watching(stream) as events:
            relisted = await next_event(events, "old")
            synced = await next_event(events)
            await admin.apply(SCALED_OBJECTS, scaled_object("old", maxReplicaCount=9))
            modified = await next_event(events, "old")
    finally:
        await admin.delete(SCALED_OBJECTS, "old", NS)
    assert relisted.type == "ADDED"
    assert int(synced.object["metadata"]["resourceVersion"]) > 1
    assert modified.type == "MODIFIED"
    assert modified.object["spec"]["maxReplicaCount"] == 9
    [expired] = [r for r in caplog.records if "too old resource version: 1 (" in r.message]
    assert expired.levelno == logging.INFO
    assert "ScaledObjects in kube-client" in expired.message
    assert expired.message.endswith("re-listing; reconnecting in 0.0s")
    series = telemetry.registry.get_sample_value
    assert series("metrics_adapter_watch_restarts_total", {**SO_WATCH, "reason": "expired"}) == 1
    # The first watch, answered 200 before its 410 event; the one after the list; the list.
    assert series("rest_client_requests_total", {"method": "WATCH", "code": "200"}) == 2
    assert series("rest_client_requests_total", {"method": "GET", "code": "200"}) == 1


SO_WATCH = {"resource": "scaledobjects"}


async def test_an_answer_code_is_counted_by_method(client: KubeClient) -> None:
    telemetry = client.observer = Telemetry()
    assert await client.get_hpa(NS, "nobody") is None  # answered 404
    series = telemetry.registry.get_sample_value
    assert series("rest_client_requests_total", {"method": "GET", "code": "404"}) == 1


async def test_a_dropped_watch_resumes_where_it_was(
    client: KubeClient, admin: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Watches the server ends (here after ~1 s) resume from the last version: nothing lost,
    nothing listed again."""
    caplog.set_level(logging.DEBUG, logger="metrics_adapter.kube.watch")
    short = KubeClient(client.api, timeout=10.0, watch_timeout=1.0)
    ended = "ConfigMaps in kube-client: the server ended the watch"
    async with watching(watch(short, CONFIG_MAPS, NS)) as events:
        await next_event(events)
        # At least one end: a watch asks the server to end it within one to two
        # watch_timeouts, and its request is answered within the client's timeout.
        within = short.timeout + 2 * short.watch_timeout
        await logged(caplog, ended, 1, within)
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later", "namespace": NS},
        }
        await admin.apply(CONFIG_MAPS, cm)
        added = await next_event(events, "later")
        await admin.delete(CONFIG_MAPS, "later", NS)
        deleted = await next_event(events, "later")
        assert events.empty()
    assert (added.type, deleted.type) == ("ADDED", "DELETED")
    messages = [r.message for r in caplog.records]
    assert any(ended in m for m in messages)
    assert not any("re-listing" in m for m in messages)


async def test_scale_of_a_real_deployment(client: KubeClient, admin: KubeClient) -> None:
    await admin.apply(DEPLOYMENTS, deployment("scaled"))
    try:
        scale = await client.get_scale("apps/v1", "Deployment", NS, "scaled")
        assert (scale.replicas, scale.selector) == (1, "app=scaled")
        patched = await client.patch_scale("apps/v1", "Deployment", NS, "scaled", 3)
        assert patched.replicas == 3
        stored = await admin.get(DEPLOYMENTS, "scaled", NS)
        assert stored["spec"]["replicas"] == 3
        # Through discovery, as for any kind with /scale; the Deployment's own ReplicaSet.
        replica_sets = await client.resource_for("apps/v1", "ReplicaSet")
        assert (replica_sets.plural, replica_sets.namespaced) == ("replicasets", True)
    finally:
        await admin.delete(DEPLOYMENTS, "scaled", NS)

    with pytest.raises(KubeNotFound) as missing:
        await client.get_scale("apps/v1", "Deployment", NS, "scaled")
    assert str(missing.value) == (
        'Deployment kube-client/scaled (get scale): 404 NotFound: deployments.apps "scaled" '
        "not found"
    )
    with pytest.raises(KubeNotFound, match="ConfigMap in v1: 404 NotFound: no /scale"):
        await client.get_scale("v1", "ConfigMap", NS, "anything")


async def test_status_patch_of_a_real_scaled_object(client: KubeClient, admin: KubeClient) -> None:
    await admin.apply(SCALED_OBJECTS, scaled_object("status"))
    try:
        ready = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": ""}
        status = {"conditions": [ready], "hpaName": "keda-hpa-status", "originalReplicaCount": 2}
        patched = await client.patch_scaled_object_status(NS, "status", status)
        assert patched["status"]["hpaName"] == "keda-hpa-status"
        # A second merge patch keeps what it does not name.
        await client.patch_scaled_object_status(NS, "status", {"lastActiveTime": None})
        stored = await admin.get(SCALED_OBJECTS, "status", NS)
        assert stored["status"]["conditions"] == [ready]
        assert stored["status"]["originalReplicaCount"] == 2
        assert stored["spec"]["scaleTargetRef"] == {"name": "worker"}
    finally:
        await admin.delete(SCALED_OBJECTS, "status", NS)
    with pytest.raises(KubeNotFound, match=r"ScaledObject kube-client/status \(patch status\)"):
        await client.patch_scaled_object_status(NS, "status", {"hpaName": "x"})


async def test_an_event_about_a_scaled_object(client: KubeClient, admin: KubeClient) -> None:
    so = await admin.apply(SCALED_OBJECTS, scaled_object("eventful"))
    try:
        message = "Scaled apps/v1.Deployment kube-client/worker from 0 to 1"
        regarding = ObjectReference(
            SCALED_OBJECTS.api_version, "ScaledObject", NS, "eventful", so["metadata"]["uid"]
        )
        for _ in range(2):  # the second is counted on the first, as client-go's recorder
            await client.create_event(
                Event(regarding, "KEDAScaleTargetActivated", message, type="Normal")
            )
        items, _ = await admin.list_objects(
            EVENTS, NS, field_selector="involvedObject.name=eventful"
        )
    finally:
        await admin.delete(SCALED_OBJECTS, "eventful", NS)
    [event] = items
    assert (event["reason"], event["message"], event["type"], event["count"]) == (
        "KEDAScaleTargetActivated",
        message,
        "Normal",
        2,
    )
    assert event["involvedObject"]["uid"] == so["metadata"]["uid"]
    assert event["source"] == {"component": "keda-operator"}


async def test_hpa_server_side_apply_get_and_delete(client: KubeClient) -> None:
    def hpa(max_replicas: int) -> HorizontalPodAutoscaler:
        target = MetricTarget("AverageValue", average_value="1")
        return HorizontalPodAutoscaler(
            meta=ObjectMeta("keda-hpa-applied", NS),
            scale_target_ref=ScaleTargetRef("apps/v1", "Deployment", "x"),
            min_replicas=1,
            max_replicas=max_replicas,
            metrics=(ExternalMetric("s0-cron-UTC-08xxx-020xxx", {"a": "b"}, target),),
        )

    created = await client.apply_hpa(hpa(5))
    updated = await client.apply_hpa(hpa(8))
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    found = await client.get_hpa(NS, "keda-hpa-applied")
    assert found is not None
    assert found["spec"]["maxReplicas"] == 8
    managers = {m["manager"] for m in found["metadata"]["managedFields"]}
    assert "metrics-adapter" in managers
    assert await client.delete_hpa(NS, "keda-hpa-applied") is True
    assert await client.get_hpa(NS, "keda-hpa-applied") is None
    assert await client.delete_hpa(NS, "keda-hpa-applied") is False


def authorization(so: dict[str, Any], objects: ClusterObjects) -> list[str | None]:
    values = []
    for bound in bind(parse_scaled_object(so), objects):
        query = bound.scaler.query
        assert isinstance(query, JsonGet)
        values.append(dict(query.headers).get("Authorization"))
    return values


async def test_cluster_objects_resolve_authentications_and_follow_a_secret(
    client: KubeClient,
    admin: KubeClient,
) -> None:
    bearer = {"url": "http://api/", "valueLocation": "v", "targetValue": "1", "authMode": "bearer"}

    def trigger(name: str, kind: str) -> dict[str, Any]:
        ref = {"name": name, "kind": kind}
        return {"type": "metrics-api", "metadata": bearer, "authenticationRef": ref}

    app = {
        "name": "app",
        "image": "registry.invalid/app:e2e",
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-env", "key": "t"}}}],
    }
    local = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "local", "namespace": NS},
        "spec": {
            "env": [{"parameter": "token", "name": "TOKEN", "containerName": "app"}],
            "secretTargetRef": [{"parameter": "token", "name": "creds", "key": "token"}],
        },
    }
    from_env = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "from-env", "namespace": NS},
        "spec": {"env": [{"parameter": "token", "name": "TOKEN", "containerName": "app"}]},
    }
    shared = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ClusterTriggerAuthentication",
        "metadata": {"name": "shared"},
        "spec": {"secretTargetRef": [{"parameter": "token", "name": "shared", "key": "token"}]},
    }
    created = [
        (SECRETS, secret("creds", token="LOCAL")),
        (SECRETS, secret("app-env", t="FROM-ENV")),
        (SECRETS, secret("shared", namespace=CLUSTER_NS, token="CLUSTER")),
        (DEPLOYMENTS, deployment("auth-target", {"name": "sidecar", "image": "x"}, app)),
        (TRIGGER_AUTHENTICATIONS, local),
        (TRIGGER_AUTHENTICATIONS, from_env),
        (CLUSTER_TRIGGER_AUTHENTICATIONS, shared),
    ]
    for resource, obj in created:
        await admin.apply(resource, obj)
    so = scaled_object("auth", target="auth-target")
    so["spec"]["triggers"] = [
        trigger("local", "TriggerAuthentication"),
        trigger("from-env", "TriggerAuthentication"),
        trigger("shared", "ClusterTriggerAuthentication"),
    ]

    key = ObjectKey("Secret", NS, "creds")
    rotated = asyncio.Event()

    def on_change(changed: ObjectKey) -> None:
        if changed == key and objects.synced.is_set():
            rotated.set()

    objects = ClusterObjects(cluster_object_namespace=CLUSTER_NS, on_change=on_change)
    task = asyncio.create_task(objects.run(client))
    try:
        async with asyncio.timeout(WAIT):
            await objects.synced.wait()
        assert authorization(so, objects) == ["Bearer LOCAL", "Bearer FROM-ENV", "Bearer CLUSTER"]

        assert objects.referencing(key, [parse_scaled_object(so)])
        await admin.apply(SECRETS, secret("creds", token="ROTATED"))
        async with asyncio.timeout(WAIT):
            await rotated.wait()
        assert authorization(so, objects)[0] == "Bearer ROTATED"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for resource, obj in reversed(created):
            meta = obj["metadata"]
            await admin.delete(resource, meta["name"], meta.get("namespace"))


def kubeconfig_for(cp: ControlPlane, server: str, directory: Path) -> Path:
    """The admin kubeconfig, pointed at ``server``."""
    config = yaml.safe_load(cp.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_no_server_and_a_silent_server_are_kube_errors_naming_the_object(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    refused = kubeconfig_for(cluster, f"https://127.0.0.1:{free_port()}", tmp_path)
    async with await KubeClient.connect(refused, timeout=2.0) as client:
        with pytest.raises(KubeUnreachable) as info:
            await client.get(DEPLOYMENTS, "web", NS)
    assert str(info.value).startswith("Deployment kube-client/web (get): Unreachable: Cannot con")
    assert info.value.code == 0

    async with silent_server() as port:
        silent = kubeconfig_for(cluster, f"https://127.0.0.1:{port}", tmp_path)
        async with await KubeClient.connect(silent, timeout=0.5) as client:
            began = time.monotonic()
            with pytest.raises(KubeUnreachable) as info:
                await client.patch_scale("apps/v1", "Deployment", NS, "web", 1)
            assert time.monotonic() - began < 2
    assert str(info.value) == (
        "Deployment kube-client/web (patch scale): Timeout: no answer within 0.5s"
    )


async def test_a_watch_backs_off_while_the_server_is_down(
    cluster: ControlPlane, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metrics_adapter.kube.watch")
    refused = kubeconfig_for(cluster, f"https://127.0.0.1:{free_port()}", tmp_path)
    async with (
        await KubeClient.connect(refused, timeout=2.0) as client,
        watching(watch(client, SCALED_OBJECTS, NS)),
    ):
        # Three attempts: each fails within the client's timeout (refused: at once), after the
        # first two delays of the backoff, 0 and 0.5 s, jittered by up to 20 %.
        within = 3 * 2.0 + (0 + 0.5) * 1.2
        await logged(caplog, "watch ScaledObjects in kube-client: ", 3, within)
    lines = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert lines
    assert lines[0].startswith("watch ScaledObjects in kube-client: list ScaledObjects in kube")
    delays = [float(m.group(1)) for line in lines if (m := re.search(r"in ([\d.]+)s$", line))]
    # Right away, then about 0.5 s, 1 s, 2 s: a handful of attempts, never a hot loop.
    assert 3 <= len(delays) <= 5
    assert delays[0] == 0.0
    assert 0.4 <= delays[1] <= 0.6
    assert 0.8 <= delays[2] <= 1.2
