"""Process settings, one frozen object built by the CLI."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CERT_DIR = Path(tempfile.gettempdir()) / f"metrics-adapter-{os.getuid()}" / "certs"


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
    """Where a self-signed pair is kept when no certificate is given; scratch space always."""
    cert_secret: str | None = None
    """Self-managed certificates: a CA and serving pair kept in this Secret of our namespace."""
    service: str = "metrics-adapter"
    """The Service in front of us: the serving certificate is for <service>.<namespace>.svc."""
    apiservice: str = "v1beta1.external.metrics.k8s.io"
    """Self-managed certificates: the APIService whose caBundle gets our CA; empty: none."""
    cert_reload_interval: float = 10.0
    """Seconds between checks of given certificate and CA files for changes."""
    client_ca_file: Path | None = None
    """Client certificates signed by these CAs authenticate as their CN (groups: O)."""
    requestheader_client_ca_file: Path | None = None
    """The front proxy's CA: only its client certificates may assert X-Remote-User."""
    requestheader_allowed_names: tuple[str, ...] = ()
    """Common names the front proxy's certificate may have; empty: any."""
    authentication_kubeconfig: Path | None = None
    """Standalone: the cluster to ask TokenReview, SubjectAccessReview and the
    extension-apiserver-authentication ConfigMap (cluster mode uses its own connection)."""
    authorization_allow_ttl: float = 300.0
    """Seconds an allowing SubjectAccessReview is remembered (the HPA asks every 15 s)."""
    authorization_deny_ttl: float = 30.0
    """Seconds a denying SubjectAccessReview is remembered."""
    token_cache_ttl: float = 60.0
    """Seconds an accepted bearer token's TokenReview is remembered."""
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
