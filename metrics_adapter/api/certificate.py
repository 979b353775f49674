"""The serving certificate chosen by the settings: given files (re-read when they change),
self-managed in a Secret, or a self-signed pair in ``--cert-dir``."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from metrics_adapter.api.tls import ServingTLS, self_signed_pair
from metrics_adapter.certs.files import WatchedFiles
from metrics_adapter.certs.issue import Pair
from metrics_adapter.certs.self_managed import SelfManaged
from metrics_adapter.config.settings import Settings
from metrics_adapter.kube.client import KubeClient

log = logging.getLogger(__name__)

Task = Callable[[], Coroutine[Any, Any, None]]
"""A loop run beside the server until cancelled."""


async def serving_tls(
    settings: Settings, kube: KubeClient | None, namespace: str
) -> tuple[ServingTLS, list[Task]]:
    """The TLS context to serve with, and what keeps its certificate current."""
    tls = ServingTLS(settings.cert_dir / "live")
    if settings.tls_cert_file and settings.tls_private_key_file:
        origin = f"{settings.tls_cert_file} and {settings.tls_private_key_file}"

        def load(contents: list[bytes]) -> None:
            tls.set_pair(Pair(contents[0], contents[1]), origin)

        files = WatchedFiles(
            [settings.tls_cert_file, settings.tls_private_key_file],
            load,
            settings.cert_reload_interval,
        )
        files.load()
        return tls, [files.run]
    if settings.cert_secret:
        if kube is None:
            raise ValueError(
                "--cert-secret needs a cluster: --kubeconfig, --in-cluster or "
                "--authentication-kubeconfig"
            )
        manager = SelfManaged(
            kube,
            namespace,
            settings.cert_secret,
            settings.service,
            settings.apiservice or None,
            lambda pair: tls.set_pair(pair, manager.origin),
            webhook_configuration=settings.webhook_configuration or None,
            serving_validity=dt.timedelta(seconds=settings.serving_cert_validity),
            ca_validity=dt.timedelta(seconds=settings.ca_cert_validity),
        )
        await manager.ensure()
        return tls, [manager.run]
    _self_signed(settings.cert_dir, tls)
    return tls, []


def _self_signed(cert_dir: Path, tls: ServingTLS) -> None:
    cert, key = self_signed_pair(cert_dir)
    tls.set_pair(Pair(cert.read_bytes(), key.read_bytes()), str(cert))
