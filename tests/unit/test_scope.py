"""Where the adapter lists and watches (--watch-namespace, --restrict-secret-access): the
scope's answers, one watch per namespace merged into one stream, the flags, and the webhook
on a namespace it does not watch. Watches here are stand-ins; tests/e2e/test_least_privilege.py
runs the adapter with only the RBAC these modes render."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest

from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.binding.cluster import ClusterObjects
from metrics_adapter.cli import settings_from
from metrics_adapter.kube import watch as watch_module
from metrics_adapter.kube.client import (
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    CONFIG_MAPS,
    SCALED_OBJECTS,
    SECRETS,
    KubeClient,
    Resource,
)
from metrics_adapter.kube.scope import EVERYWHERE, Scope
from metrics_adapter.kube.watch import WatchEvent, watch_scoped
from metrics_adapter.metrics.telemetry import Telemetry
from tests.support.admission import decide, scaled_object

NAMESPACED = Scope(("apps", "jobs", "apps"), "keda")
RESTRICTED = Scope((), "keda", restrict_secrets=True)


def test_the_default_scope_watches_everything_everywhere() -> None:
    scope = Scope(own_namespace="keda")
    for resource in (SCALED_OBJECTS, SECRETS, CLUSTER_TRIGGER_AUTHENTICATIONS):
        assert scope.watched(resource) == EVERYWHERE
        assert scope.unread(resource, "anywhere") is None


def test_a_namespaced_scope_watches_each_namespace_once_and_nothing_cluster_wide() -> None:
    assert NAMESPACED.watched(SCALED_OBJECTS) == ("apps", "jobs")
    assert NAMESPACED.watched(SECRETS) == ("apps", "jobs")
    assert NAMESPACED.watched(CLUSTER_TRIGGER_AUTHENTICATIONS) == ()
    assert NAMESPACED.unread(SCALED_OBJECTS, "apps") is None
    assert NAMESPACED.unread(SCALED_OBJECTS, "web") == (
        "--watch-namespace: web is not watched (apps, jobs, apps)"
    )
    assert NAMESPACED.unread(CLUSTER_TRIGGER_AUTHENTICATIONS) == (
        "--watch-namespace: ClusterTriggerAuthentications are cluster-wide, and not watched"
    )


def test_restricted_secrets_are_read_only_in_the_own_namespace() -> None:
    assert RESTRICTED.watched(SECRETS) == ("keda",)
    assert RESTRICTED.watched(CONFIG_MAPS) == EVERYWHERE
    assert RESTRICTED.unread(SECRETS, "keda") is None
    assert RESTRICTED.unread(SECRETS, "apps") == (
        "--restrict-secret-access: Secrets are read only in keda, the adapter's own namespace"
    )
    both = Scope(("apps",), "keda", restrict_secrets=True)
    assert both.watched(SECRETS) == ("keda",)


def event(kind: str, name: str = "") -> WatchEvent:
    meta = {"name": name, "resourceVersion": "1"} if name else {"resourceVersion": "1"}
    return WatchEvent(kind, {"metadata": meta})  # type: ignore[arg-type]


async def collect(scope: Scope, resource: Resource, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    stream = watch_scoped(cast(KubeClient, None), resource, scope)
    async with contextlib.aclosing(stream) as events:
        async for found in events:
            seen.append((found.type, found.object["metadata"].get("name", "")))
            if len(seen) == count:
                break
    return seen


async def test_one_watch_per_namespace_merges_and_syncs_once_all_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str | None] = []
    closed: list[str | None] = []
    apps_listed = asyncio.Event()

    async def fake(
        client: Any, resource: Resource, namespace: str | None = None, **_: Any
    ) -> AsyncGenerator[WatchEvent, None]:
        started.append(namespace)
        try:
            if namespace == "apps":
                yield event("ADDED", "a1")
                yield event("SYNCED")
                apps_listed.set()
                yield event("MODIFIED", "a1")
            else:
                await apps_listed.wait()  # jobs is listed last
                yield event("ADDED", "j1")
                yield event("SYNCED")
                yield event("SYNCED")  # a re-list later: passed on
            await asyncio.Event().wait()
        finally:
            closed.append(namespace)

    monkeypatch.setattr(watch_module, "watch", fake)
    seen = await collect(NAMESPACED, SCALED_OBJECTS, 5)
    assert started == ["apps", "jobs"]
    assert seen == [
        ("ADDED", "a1"),
        ("MODIFIED", "a1"),  # apps' SYNCED is held back: jobs is not listed yet
        ("ADDED", "j1"),
        ("SYNCED", ""),  # once both are
        ("SYNCED", ""),
    ]
    assert sorted(closed, key=str) == ["apps", "jobs"]  # closing the stream closes each


async def test_nowhere_is_synced_at_once_and_then_quiet() -> None:
    seen: list[str] = []

    async def follow() -> None:
        stream = watch_scoped(cast(KubeClient, None), CLUSTER_TRIGGER_AUTHENTICATIONS, NAMESPACED)
        async with contextlib.aclosing(stream) as events:
            async for found in events:
                seen.append(found.type)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen == ["SYNCED"]


def test_watch_namespace_is_repeatable_and_comma_separated() -> None:
    settings = settings_from(
        ["serve", "--in-cluster", "--watch-namespace", "apps", "--watch-namespace=jobs, web"]
    )
    assert settings.watch_namespace == ("apps", "jobs", "web")
    assert settings_from(["serve", "--in-cluster"]).watch_namespace == ()
    assert settings_from(
        ["serve", "--in-cluster", "--restrict-secret-access"]
    ).restrict_secret_access


async def test_the_webhook_checks_an_object_of_an_unwatched_namespace_on_its_own() -> None:
    objects = ClusterObjects("keda", scope=Scope(("jobs",), "keda"))  # the object's is apps
    objects.synced.set()
    webhook = AdmissionWebhook(Telemetry(), objects=objects)
    answer = await decide(webhook, scaled_object())
    assert answer["allowed"] is True
    assert any(
        "not checked against the cluster, nor scaled by this adapter" in w
        for w in answer["warnings"]
    )
    assert any("--watch-namespace" in w for w in answer["warnings"])
    # Still refused for what the object alone shows.
    refused = await decide(webhook, scaled_object(minReplicaCount=5, maxReplicaCount=2))
    assert refused["allowed"] is False


def test_watch_backoff_doubles_to_its_ceiling_and_a_refused_connect_to_a_lower_one() -> None:
    backoff = watch_module._Backoff()
    delays = [backoff.next() for _ in range(10)]
    assert delays[0] == 0.0  # the first retry at once
    assert 0.4 <= delays[1] <= 0.6
    assert all(d <= watch_module.MAX_BACKOFF * 1.2 for d in delays)
    assert delays[-1] >= watch_module.MAX_BACKOFF * 0.8
    refused = [backoff.next(watch_module.SOON) for _ in range(5)]
    assert all(d <= watch_module.SOON * 1.2 for d in refused)
    backoff.reset()
    assert backoff.next() == 0.0
