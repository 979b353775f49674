"""Standalone mode's wiring of outside sources: a ClusterTriggerAuthentication's filePath (a
real file) is read before the first bind, and a change of it binds the object again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import yaml

from metrics_adapter.binding.auth_sources import file_path
from metrics_adapter.config.settings import Settings
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.server import build_standalone, rebind_on_source_change

NS = "apps"


def write_objects(directory: Path) -> None:
    docs = [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": "from-file"},
            "spec": {"filePath": "creds.json"},
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "api", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"name": "web"},
                "triggers": [
                    {
                        "type": "metrics-api",
                        "metadata": {
                            "url": "http://127.0.0.1:1/v",
                            "valueLocation": "v",
                            "targetValue": "1",
                            "authMode": "bearer",
                        },
                        "authenticationRef": {
                            "name": "from-file",
                            "kind": "ClusterTriggerAuthentication",
                        },
                    }
                ],
            },
        },
    ]
    (directory / "objects.yaml").write_text(yaml.safe_dump_all(docs))


async def test_file_path_is_read_before_the_first_bind_and_a_change_rebinds(
    tmp_path: Path,
) -> None:
    objects, root = tmp_path / "objects", tmp_path / "root"
    objects.mkdir()
    root.mkdir()
    write_objects(objects)
    creds = root / "creds.json"
    creds.write_text(json.dumps({"nothing": "useful"}))
    settings = Settings(scaledobjects=objects, filepath_auth_root_path=root)
    adapter = await build_standalone(settings)
    ref = ObjectRef(NS, "api")
    rebinding = asyncio.create_task(rebind_on_source_change(adapter))
    try:
        reason = adapter.store.broken_reason(ref)
        assert reason is not None
        # The file was read (no filePath problem): it has no token.
        assert "filePath" not in reason
        assert "oken: is required" in reason
        creds.write_text(json.dumps({"token": "s3cret-token"}))
        async with asyncio.timeout(file_path.FILE_REFRESH * 2 + 30):  # a read, then slack
            while True:
                if adapter.store.broken_reason(ref) is None:
                    break
                await asyncio.sleep(0.1)
        [bound] = adapter.poller.triggers(ref)
        assert "s3cret-token" not in repr(bound)
    finally:
        rebinding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rebinding
        assert adapter.sources is not None
        await adapter.sources.aclose()
        await adapter.poller.clients.aclose()
