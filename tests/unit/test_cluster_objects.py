"""ClusterObjects fed watch events by hand: the ObjectSource of cluster mode, its change
notifications, and the same env resolution as standalone."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from metrics_adapter.binding.auth_sources.base import ReadContext
from metrics_adapter.binding.auth_sources.bound_token import BoundTokenRead
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.cluster import ClusterObjects, ObjectKey
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.kube.client import SECRETS, BoundToken
from metrics_adapter.kube.watch import relist_events
from metrics_adapter.model.keda import ObjectRef, ScaledObject, parse_scaled_object
from scalers.clients import Clients, JsonGet
from scalers.errors import ConfigError

NS = "apps"
CRON = {"timezone": "UTC", "start": "0 8 * * *", "end": "0 20 * * *", "desiredReplicas": "2"}


def so(*auth_refs: tuple[str, str], target: str = "worker") -> ScaledObject:
    triggers = [
        {
            "type": "metrics-api",
            "metadata": {
                "url": "http://api/",
                "valueLocation": "v",
                "targetValue": "1",
                "authMode": "bearer",
            },
            "authenticationRef": {"name": name, "kind": kind},
        }
        for name, kind in auth_refs
    ] or [{"type": "cron", "metadata": CRON}]
    return parse_scaled_object(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "echo", "namespace": NS},
            "spec": {"scaleTargetRef": {"name": target}, "triggers": triggers},
        }
    )


def meta(name: str, namespace: str | None = NS) -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {}), "uid": name}


def auth(name: str, kind: str = "TriggerAuthentication", **spec: Any) -> dict[str, Any]:
    namespace = None if kind == "ClusterTriggerAuthentication" else NS
    head = {"apiVersion": "keda.sh/v1alpha1", "kind": kind, "metadata": meta(name, namespace)}
    return head | {"spec": spec}


def secret(name: str, namespace: str = NS, **values: str | bytes) -> dict[str, Any]:
    data = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in values.items()
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, namespace), "data": data}


def config_map(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name), "data": values}


def deployment(*containers: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("worker"),
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": list(containers)}},
        },
        "status": {"replicas": replicas},
    }


APP = {
    "name": "app",
    "image": "registry.invalid/app",
    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
    "env": [
        {"name": "PLAIN", "value": "p"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "token"}}},
    ],
}


class Recorder:
    def __init__(self) -> None:
        self.keys: list[ObjectKey] = []

    def __call__(self, key: ObjectKey) -> None:
        self.keys.append(key)

    def take(self) -> list[ObjectKey]:
        keys, self.keys = self.keys, []
        return keys


def fed(*objs: dict[str, Any], on_change: Recorder | None = None) -> ClusterObjects:
    objects = ClusterObjects(cluster_object_namespace="keda", on_change=on_change)
    for obj in objs:
        objects.handle(obj["kind"], "ADDED", obj)
    return objects


def authorization(bound: BoundTrigger) -> str | None:
    query = bound.scaler.query
    assert isinstance(query, JsonGet)
    return dict(query.headers).get("Authorization")


def test_a_trigger_authentication_resolves_from_its_secret_and_the_target_env() -> None:
    objects = fed(
        auth(
            "a",
            env=[{"parameter": "token", "name": "TOKEN"}],
            secretTargetRef=[{"parameter": "token", "name": "creds", "key": "token"}],
        ),
        auth("b", env=[{"parameter": "token", "name": "TOKEN", "containerName": "app"}]),
        secret("creds", token="FROM-SECRET"),
        secret("env-secret", token="FROM-ENV"),
        deployment({"name": "sidecar"}, APP),
    )
    first, second = bind(
        so(("a", "TriggerAuthentication"), ("b", "TriggerAuthentication")), objects
    )
    assert authorization(first) == "Bearer FROM-SECRET"  # secret wins over env (KEDA's order)
    assert authorization(second) == "Bearer FROM-ENV"


def test_a_cluster_trigger_authentication_reads_the_cluster_object_namespace() -> None:
    ref = [{"parameter": "token", "name": "shared", "key": "token"}]
    objects = fed(
        auth("global", "ClusterTriggerAuthentication", secretTargetRef=ref),
        secret("shared", namespace="keda", token="CLUSTER"),
        secret("shared", namespace=NS, token="NOT-THIS-ONE"),
    )
    [bound] = bind(so(("global", "ClusterTriggerAuthentication")), objects)
    assert authorization(bound) == "Bearer CLUSTER"
    assert objects.cluster_trigger_authentication("global") is not None
    assert objects.trigger_authentication(ObjectRef(NS, "global")) is None


def test_container_env_is_the_same_as_standalone() -> None:
    docs = [
        config_map("settings", LEVEL="debug", MODE="fast"),
        secret("env-secret", token="T"),
        deployment({"name": "sidecar", "env": [{"name": "X", "value": "1"}]}, APP),
    ]
    objects = fed(*docs)
    inventory = Inventory()
    for doc in docs:
        inventory.add(doc, "test")
    scaled = so()
    for container in (None, "app", "sidecar", "absent"):
        cluster_env = objects.container_env(scaled, container)
        assert cluster_env == inventory.container_env(scaled, container)
    assert objects.container_env(scaled, "app") == {
        "CFG_LEVEL": "debug",
        "CFG_MODE": "fast",
        "PLAIN": "p",
        "TOKEN": "T",
    }


def test_a_secret_change_is_seen_and_names_the_scaled_objects_that_read_it() -> None:
    changes = Recorder()
    ref = [{"parameter": "token", "name": "creds", "key": "token"}]
    objects = fed(
        auth("a", secretTargetRef=ref),
        secret("creds", token="OLD"),
        secret("unrelated", token="X"),
        secret("env-secret", token="E"),
        deployment(APP),
        on_change=changes,
    )
    scaled = so(("a", "TriggerAuthentication"))
    other = so(target="elsewhere")
    changes.take()

    objects.handle("Secret", "MODIFIED", secret("creds", token="NEW"))
    [key] = changes.take()
    assert key == ObjectKey("Secret", NS, "creds")
    assert str(key) == "Secret apps/creds"
    assert objects.referencing(key, [scaled, other]) == [scaled]
    assert authorization(bind(scaled, objects)[0]) == "Bearer NEW"

    # The workload's env reads env-secret and settings; the target is the Deployment itself.
    assert objects.dependencies(scaled) == {
        ObjectKey("TriggerAuthentication", NS, "a"),
        ObjectKey("Secret", NS, "creds"),
        ObjectKey("Deployment", NS, "worker"),
        ObjectKey("Secret", NS, "env-secret"),
        ObjectKey("ConfigMap", NS, "settings"),
    }
    objects.handle("Secret", "MODIFIED", secret("unrelated", token="Y"))
    assert objects.referencing(changes.take()[0], [scaled, other]) == []


def test_only_changes_of_what_is_kept_are_notified() -> None:
    changes = Recorder()
    objects = fed(deployment(APP), secret("s", token="T"), on_change=changes)
    assert changes.take() == [ObjectKey("Deployment", NS, "worker"), ObjectKey("Secret", NS, "s")]

    scaled_up = deployment(APP, replicas=5)  # a status and replicas update: env is the same
    scaled_up["metadata"]["resourceVersion"] = "42"
    objects.handle("Deployment", "MODIFIED", scaled_up)
    objects.handle("Secret", "MODIFIED", secret("s", token="T"))
    assert changes.take() == []

    objects.handle("Deployment", "MODIFIED", deployment({**APP, "env": []}))
    objects.handle("Secret", "DELETED", {"kind": "Secret", "metadata": meta("s")})
    objects.handle("Secret", "DELETED", {"kind": "Secret", "metadata": meta("s")})
    assert changes.take() == [ObjectKey("Deployment", NS, "worker"), ObjectKey("Secret", NS, "s")]
    assert objects.secret_value(NS, "s", "token") is None


def test_a_deleted_authentication_makes_bind_report_it_missing() -> None:
    ref = [{"parameter": "token", "name": "creds", "key": "token"}]
    objects = fed(auth("a", secretTargetRef=ref), secret("creds", token="T"))
    scaled = so(("a", "TriggerAuthentication"))
    assert bind(scaled, objects)
    # A re-list reports deletions with the object cut to its name.
    objects.handle("TriggerAuthentication", "DELETED", {"metadata": {"name": "a", "namespace": NS}})
    with pytest.raises(ConfigError, match='TriggerAuthentication "a" not found in namespace apps'):
        bind(scaled, objects)


def test_binary_secret_keys_are_skipped_and_the_others_kept() -> None:
    objects = fed(secret("tls", password="pw", keystore=b"\xfe\xed\xfe\xed\x00"))
    assert objects.secret_value(NS, "tls", "password") == "pw"
    assert objects.secret_value(NS, "tls", "keystore") is None
    assert objects.binary_secret_keys(NS, "tls") == frozenset({"keystore"})


async def test_outside_sources_are_read_at_settle_and_their_change_rebinds() -> None:
    """A bound token read through a fake TokenRequest: settle reads it before the bind, its
    key is among the ScaledObject's dependencies, and a new token is a change of that key."""

    class Tokens:
        def __init__(self) -> None:
            self.issued = 0

        async def create_token(self, namespace: str, name: str, seconds: int) -> BoundToken:
            self.issued += 1
            return BoundToken(f"token-{self.issued}", None)

    changes: list[ObjectKey] = []
    replaced = asyncio.Event()

    def changed(key: ObjectKey) -> None:
        if key.kind == "AuthenticationSource":
            changes.append(key)
        if len(changes) >= 2:  # the first token, then its replacement
            replaced.set()

    kube = Tokens()
    sources = SourceCache(ReadContext(Clients(), kube, bound_token_expiry=0), min_refresh=0.05)  # type: ignore[arg-type]
    objects = ClusterObjects("keda", on_change=changed, sources=sources)
    spec = [{"parameter": "token", "serviceAccountName": "reader"}]
    objects.handle("TriggerAuthentication", "ADDED", auth("a", boundServiceAccountToken=spec))
    scaled = so(("a", "TriggerAuthentication"))
    try:
        await objects.settle(scaled)
        [bound] = bind(scaled, objects)
        assert authorization(bound) == "Bearer token-1"
        key = ObjectKey(
            "AuthenticationSource", "", "boundServiceAccountToken of ServiceAccount apps/reader"
        )
        assert key in objects.dependencies(scaled)
        async with asyncio.timeout(10):
            await replaced.wait()
        assert set(changes) == {key}
        assert objects.referencing(key, [scaled]) == [scaled]
        objects.release(scaled.ref)
        assert sources.get(bound_read("apps", "reader")) is None
    finally:
        await sources.aclose()


def bound_read(namespace: str, name: str) -> BoundTokenRead:
    return BoundTokenRead(namespace, name)


def test_pod_identity_depends_on_the_workload_service_account() -> None:
    workload = deployment({"name": "app"})
    workload["spec"]["template"]["spec"]["serviceAccountName"] = "web-sa"
    account = {
        "kind": "ServiceAccount",
        "metadata": {
            "name": "web-sa",
            "namespace": NS,
            "annotations": {"eks.amazonaws.com/role-arn": "arn:r", "other": "x" * 1000},
        },
    }
    identity = {"provider": "aws", "identityOwner": "workload"}
    objects = fed(workload, account, auth("a", podIdentity=identity))
    scaled = so(("a", "TriggerAuthentication"))
    assert ObjectKey("ServiceAccount", NS, "web-sa") in objects.dependencies(scaled)
    assert objects.workload_service_account(scaled) == "web-sa"
    assert objects.service_account_annotations(NS, "web-sa") == {
        "eks.amazonaws.com/role-arn": "arn:r"
    }


def test_a_broken_authentication_is_logged_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    broken = auth("bad", secretTargetRef=[{"parameter": "token", "name": "creds"}])
    objects = fed(broken)
    assert objects.trigger_authentication(ObjectRef(NS, "bad")) is None
    assert "TriggerAuthentication apps/bad: secretTargetRef[0].key" in caplog.text


def test_synced_once_every_kind_is_listed() -> None:
    objects = ClusterObjects()
    kinds = ["TriggerAuthentication", "ClusterTriggerAuthentication", "Secret", "ConfigMap"]
    for kind in kinds:
        objects.handle(kind, "SYNCED", {"metadata": {"resourceVersion": "7"}})
    assert not objects.synced.is_set()
    for kind in ("Deployment", "StatefulSet", "ServiceAccount"):
        objects.handle(kind, "SYNCED", {"metadata": {"resourceVersion": "7"}})
    assert objects.synced.is_set()


def test_targets_that_are_not_deployments_or_statefulsets_have_no_env() -> None:
    rollout = parse_scaled_object(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "r", "namespace": NS},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": "worker",
                },
                "triggers": [{"type": "cron", "metadata": CRON}],
            },
        }
    )
    objects = fed(deployment(APP))
    assert objects.container_env(rollout, None) == {}
    assert objects.dependencies(rollout) == frozenset()


def test_a_relist_reports_what_changed_while_no_watch_ran() -> None:
    """After a 410 the watch lists again and yields the difference: the caches then hold
    exactly what the list holds."""
    known: dict[tuple[str, str], str] = {}
    first = [secret("kept", token="A"), secret("changed", token="A"), secret("gone", token="A")]
    for i, obj in enumerate(first):
        obj["metadata"]["resourceVersion"] = str(i)
    objects, changes = ClusterObjects(), Recorder()
    objects.on_change = changes
    for event in relist_events(SECRETS, known, first):
        objects.handle("Secret", event.type, event.object)
    assert len(changes.take()) == 3

    changed = secret("changed", token="B")
    changed["metadata"]["resourceVersion"] = "7"
    new = secret("new", token="N")
    new["metadata"]["resourceVersion"] = "8"
    events = list(relist_events(SECRETS, known, [first[0], changed, new]))
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "changed"),
        ("ADDED", "new"),
        ("DELETED", "gone"),
    ]
    assert events[-1].object == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gone", "namespace": NS, "resourceVersion": "2"},
    }
    for event in events:
        objects.handle("Secret", event.type, event.object)
    assert changes.take() == [
        ObjectKey("Secret", NS, "changed"),
        ObjectKey("Secret", NS, "new"),
        ObjectKey("Secret", NS, "gone"),
    ]
    assert objects.secret_value(NS, "gone", "token") is None
    assert objects.secret_value(NS, "changed", "token") == "B"
    assert known == {(NS, "kept"): "0", (NS, "changed"): "7", (NS, "new"): "8"}
