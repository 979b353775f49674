"""Process settings, one frozen object built by the CLI."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CERT_DIR = Path(tempfile.gettempdir()) / "metrics-adapter" / "certs"


@dataclass(frozen=True, slots=True)
class Settings:
    scaledobjects: Path | None = None
    """Standalone mode: read ScaledObjects and their references from YAML files here."""
    kubeconfig: Path | None = None
    in_cluster: bool = False
    bind_address: str | None = None
    """Where to listen; standalone defaults to loopback, a cluster deployment to 0.0.0.0."""
    secure_port: int = 6443
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = field(default_factory=lambda: DEFAULT_CERT_DIR)
    """Where a self-signed pair is kept when no certificate files are given."""
    metrics_port: int = 8080
    """Plain-HTTP port of ``/metrics``; 0 turns it off."""
    log_level: str = "info"
    log_format: str = "text"
    scaler_timeout: float = 3.0
    """Seconds every upstream request may take (KEDA_HTTP_DEFAULT_TIMEOUT)."""
    leader_elect: bool = True
    """Cluster mode: only the holder of the Lease writes; every replica serves."""
    cluster_object_namespace: str = "keda"
    """Where ClusterTriggerAuthentication refs resolve (KEDA_CLUSTER_OBJECT_NAMESPACE)."""

    @property
    def standalone(self) -> bool:
        return self.scaledobjects is not None

    @property
    def listen_address(self) -> str:
        if self.bind_address:
            return self.bind_address
        return "127.0.0.1" if self.standalone else "0.0.0.0"
