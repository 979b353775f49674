"""A Vault secret reaching triggers through binding, as ``serve`` reads it: two ScaledObjects
whose metrics-api triggers authenticate with a bearer token kept in Vault share one read
(Vault's audit log counts it), and a failing read is a problem naming Vault, never a missing
parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from metrics_adapter.binding.auth_sources.base import ReadContext
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.keda import parse_scaled_object
from scalers.errors import ConfigError
from tests.support.servers import serving
from tests.support.triggers import poll, scaled_object
from tests.support.vault import VaultServer

pytestmark = pytest.mark.integration

BEARER = "bearer-from-vault"


async def guarded(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {BEARER}":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"queue": {"depth": 42}})


@pytest.fixture
async def source_url() -> AsyncIterator[str]:
    async with serving(Starlette(routes=[Route("/depth", guarded)])) as url:
        yield f"{url}/depth"


def documents(vault: VaultServer, token: str, url: str, path: str) -> list[dict[str, Any]]:
    auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "from-vault", "namespace": "default"},
        "spec": {
            "hashiCorpVault": {
                "address": vault.address,
                "authentication": "token",
                "credential": {"token": token},
                "secrets": [{"parameter": "token", "path": path, "key": "bearer"}],
            }
        },
    }
    trigger = {
        "type": "metrics-api",
        "metadata": {
            "url": url,
            "valueLocation": "queue.depth",
            "targetValue": "10",
            "authMode": "bearer",
        },
        "authenticationRef": {"name": "from-vault"},
    }
    return [auth, *(scaled_object(name, "default", trigger) for name in ("first", "second"))]


async def test_two_scaled_objects_share_one_vault_read(
    vault_server: VaultServer, context: ReadContext, source_url: str
) -> None:
    vault_server.put_kv2("bearer", {"bearer": BEARER})
    path = "secret/data/bearer"
    docs = documents(vault_server, vault_server.token(), source_url, path)
    inventory = Inventory()
    for doc in docs:
        inventory.add(doc, "test")
    inventory.sources = SourceCache(context)
    before = vault_server.requests_to(path, "read")
    try:
        values = []
        for doc in docs[1:]:
            so = parse_scaled_object(doc)
            await inventory.settle(so, within=10)
            (trigger,) = bind(so, inventory)
            values.append((await poll(trigger.scaler, context.clients)).value)
    finally:
        await inventory.sources.aclose()
    assert values == [42, 42]
    assert vault_server.requests_to(path, "read") == before + 1


async def test_a_refused_read_is_a_problem_naming_vault(
    vault_server: VaultServer, context: ReadContext, source_url: str
) -> None:
    vault_server.put_kv2("bearer", {"bearer": BEARER})
    docs = documents(vault_server, "hvs.wrong", source_url, "secret/data/bearer")
    inventory = Inventory()
    for doc in docs:
        inventory.add(doc, "test")
    inventory.sources = SourceCache(context)
    so = parse_scaled_object(docs[1])
    try:
        await inventory.settle(so, within=10)
        with pytest.raises(ConfigError) as caught:
            bind(so, inventory)
    finally:
        await inventory.sources.aclose()
    message = str(caught.value)
    assert f"Vault {vault_server.address} secret/data/bearer" in message
    assert "permission denied" in message and "hvs.wrong" not in message
    assert "is required" not in message
