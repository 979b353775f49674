"""Process settings, one frozen object built by the CLI.

Every field declares itself once: its type, its default, and in its :func:`flag` metadata its
help text and its group. ``serve``'s flags, their ``--help`` and the flag table of
docs/operations.md are made from these declarations (:mod:`metrics_adapter.config.flags`), so
a new setting is one field here. Each flag is the field's name with hyphens; the names are
kube-apiserver's where it has the same setting (``--secure-port``, ``--bind-address``,
``--tls-cert-file``, ``--cert-dir``, ``--client-ca-file``, ``--requestheader-*``,
``--authentication-kubeconfig``), and ``--leader-elect`` as in kube-controller-manager and
KEDA's operator. Where KEDA configures the same thing by an environment variable, the help
names it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import Field, dataclass, field
from pathlib import Path
from typing import Any, Literal

from scalers.clients import DEFAULT_TIMEOUT

STALE_INTERVALS = 3.0
"""Polling intervals a query may go unanswered, its polls behind, before its value is an error."""

DEFAULT_CERT_DIR = Path(tempfile.gettempdir()) / f"metrics-adapter-{os.getuid()}" / "certs"
DEFAULT_CLUSTER_OBJECT_NAMESPACE = "keda"
"""KEDA's own namespace: where ClusterTriggerAuthentication refs resolve unless told."""
LOOPBACK, ANY_ADDRESS = "127.0.0.1", "0.0.0.0"
DAY = 86400.0
SERVING_CERT_DAYS, CA_CERT_DAYS = 365, 3650
"""How long certificates the adapter makes are valid, unless told otherwise."""
SHORTEST_SHARD_LEASE = 3
"""2 s to renew in, 0.4 s between rounds."""
SHORTEST_VALIDITY = 600.0
"""Seconds: a certificate is renewed two thirds into a life that starts 5 minutes early (for
clock skew), so 10 minutes is served 5 minutes before its renewal."""

GUARD_LIMITS = (
    "max_connections",
    "max_connections_per_address",
    "tls_handshakes_per_second",
    "tls_handshake_timeout",
    "read_timeout",
    "max_requests_inflight",
)
"""The secure port's bounds: settings here, :class:`metrics_adapter.api.guard.Limits` there."""

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class Group:
    """Settings that belong together, as one section of ``--help`` and of the flag table."""

    title: str
    description: str
    one_of: bool = False
    """Exactly one of the group's flags must be given."""


OBJECTS = Group("objects", "where ScaledObjects come from (exactly one)", one_of=True)
SERVING = Group("serving", "the HTTPS API and /metrics")
CERTIFICATES = Group(
    "certificates",
    "the serving certificate: files given, self-managed in a Secret, or else self-signed",
)
AUTHENTICATION = Group(
    "authentication",
    "who may call (client certificates, the front proxy, bearer tokens) and what they may read",
)
CLUSTER = Group("cluster", "the Kubernetes objects the adapter reads and writes")
POLLING = Group("polling", "the event sources")
LOGGING = Group("logging", "what is logged to stderr, and how")
GROUPS = (OBJECTS, SERVING, CERTIFICATES, AUTHENTICATION, CLUSTER, POLLING, LOGGING)


@dataclass(frozen=True, slots=True)
class Setting:
    """What a field tells its flag, beyond its name, type and default."""

    help: str
    group: Group
    metavar: str | None = None
    """The value's placeholder in ``--help``; by default one for its type."""
    default_text: str | None = None
    """The default in words, where the value alone would mislead (computed, or per mode)."""


def flag(
    help: str, group: Group, *, metavar: str | None = None, default_text: str | None = None
) -> Mapping[str, Setting]:
    """A Settings field's metadata: what its flag says about it."""
    return {"setting": Setting(help, group, metavar, default_text)}


def described(f: Field[Any]) -> Setting:
    """The :class:`Setting` a field was declared with."""
    meta = f.metadata.get("setting")
    assert isinstance(meta, Setting), f"Settings.{f.name} has no flag() metadata"
    return meta


def option(name: str) -> str:
    """The flag of the field ``name``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the process runs with: built from ``serve``'s flags by the CLI, or directly by
    ``explain`` and the tests. A combination no flags could mean is refused here, whoever
    builds it."""

    scaledobjects: Path | None = field(
        default=None,
        metadata=flag(
            "standalone: ScaledObjects, ScaledJobs, authentications and Secrets from the YAML "
            "files of DIR, no cluster; the activator logs what it would do (and how many "
            "Jobs each ScaledJob would create)",
            OBJECTS,
            metavar="DIR",
        ),
    )
    kubeconfig: Path | None = field(
        default=None, metadata=flag("run against the cluster of this kubeconfig", OBJECTS)
    )
    in_cluster: bool = field(
        default=False, metadata=flag("run inside a pod, as its ServiceAccount", OBJECTS)
    )

    bind_address: str | None = field(
        default=None,
        metadata=flag(
            "the address both ports listen on",
            SERVING,
            metavar="ADDRESS",
            default_text=f"{LOOPBACK} standalone, else {ANY_ADDRESS}",
        ),
    )
    secure_port: int = field(
        default=6443,
        metadata=flag("the HTTPS port of external.metrics.k8s.io", SERVING, metavar="PORT"),
    )
    metrics_port: int = field(
        default=8080,
        metadata=flag("the plain-HTTP port of /metrics; 0 turns it off", SERVING, metavar="PORT"),
    )
    metrics_secure: bool = field(
        default=False,
        metadata=flag(
            "serve /metrics over TLS with the API's certificate, to callers authenticated as "
            "the API's (bearer tokens by TokenReview, client certificates) and allowed get on "
            "the non-resource URL /metrics by SubjectAccessReview, as controller-runtime's "
            "secure metrics; off: plain HTTP for any caller",
            SERVING,
        ),
    )
    max_connections: int = field(
        default=1024,
        metadata=flag(
            "connections the secure port holds at once; when full, a new one takes the place of "
            "the oldest idle connection of the address holding the most, if that is more than "
            "the newcomer's",
            SERVING,
        ),
    )
    max_connections_per_address: int = field(
        default=128,
        metadata=flag(
            "connections one client address may hold on the secure port (at most "
            "--max-connections); past it a new one is reset before TLS",
            SERVING,
        ),
    )
    tls_handshakes_per_second: float = field(
        default=32.0,
        metadata=flag(
            "new connections (each a TLS handshake) a second from one address, with a burst of "
            "twice as many; past it a new one is reset before TLS",
            SERVING,
            metavar="RATE",
        ),
    )
    tls_handshake_timeout: float = field(
        default=10.0,
        metadata=flag("seconds a client has to finish the TLS handshake", SERVING),
    )
    read_timeout: float = field(
        default=10.0,
        metadata=flag(
            "seconds a request has to arrive, head and body, from its first byte (a "
            "connection's first request: from the handshake); a slower client is disconnected",
            SERVING,
        ),
    )
    max_requests_inflight: int = field(
        default=400,
        metadata=flag(
            "requests answered at once (kube-apiserver's default); the rest get 429 with "
            "Retry-After, the health checks never",
            SERVING,
        ),
    )

    tls_cert_file: Path | None = field(
        default=None,
        metadata=flag(
            "the serving certificate (PEM, the chain after it), reloaded when it changes; "
            "with --tls-private-key-file",
            CERTIFICATES,
        ),
    )
    tls_private_key_file: Path | None = field(
        default=None, metadata=flag("the serving certificate's private key (PEM)", CERTIFICATES)
    )
    cert_dir: Path = field(
        default=DEFAULT_CERT_DIR,
        metadata=flag(
            "where a self-signed pair is kept when no certificate is given; scratch space always",
            CERTIFICATES,
            metavar="DIR",
            default_text="metrics-adapter-UID/certs in the system's temporary directory",
        ),
    )
    cert_secret: str | None = field(
        default=None,
        metadata=flag(
            "self-managed certificates: a CA and a serving pair kept in this Secret of the "
            "adapter's namespace, renewed before they expire",
            CERTIFICATES,
        ),
    )
    service: str = field(
        default="metrics-adapter",
        metadata=flag(
            "the Service in front of the adapter: a self-managed certificate is for "
            "SERVICE.NAMESPACE.svc",
            CERTIFICATES,
        ),
    )
    apiservice: str = field(
        default="v1beta1.external.metrics.k8s.io",
        metadata=flag(
            "with --cert-secret: the APIService whose caBundle gets the CA; '' for none",
            CERTIFICATES,
        ),
    )
    webhook_configuration: str = field(
        default="metrics-adapter",
        metadata=flag(
            "with --cert-secret: the ValidatingWebhookConfiguration whose webhooks' caBundle "
            "gets the CA; '' for none",
            CERTIFICATES,
        ),
    )
    serving_cert_validity: float = field(
        default=SERVING_CERT_DAYS * DAY,
        metadata=flag(
            "with --cert-secret: seconds a serving certificate is valid; renewed two thirds "
            "into its life",
            CERTIFICATES,
            default_text=f"{SERVING_CERT_DAYS * DAY:.0f} ({SERVING_CERT_DAYS} days)",
        ),
    )
    ca_cert_validity: float = field(
        default=CA_CERT_DAYS * DAY,
        metadata=flag(
            "with --cert-secret: seconds the CA is valid; renewed two thirds into its life, "
            "the old CA trusted until it expires",
            CERTIFICATES,
            default_text=f"{CA_CERT_DAYS * DAY:.0f} ({CA_CERT_DAYS} days)",
        ),
    )
    cert_reload_interval: float = field(
        default=10.0,
        metadata=flag(
            "seconds between checks of the certificate and CA files for changes", CERTIFICATES
        ),
    )

    client_ca_file: Path | None = field(
        default=None,
        metadata=flag(
            "client certificates signed by these CAs authenticate as their CN (groups: O)",
            AUTHENTICATION,
        ),
    )
    requestheader_client_ca_file: Path | None = field(
        default=None,
        metadata=flag(
            "the front proxy's CA: only its client certificates may assert X-Remote-User",
            AUTHENTICATION,
        ),
    )
    requestheader_allowed_names: tuple[str, ...] = field(
        default=(),
        metadata=flag(
            "common names the front proxy's certificate may have, comma-separated; empty: any",
            AUTHENTICATION,
            metavar="CN,...",
        ),
    )
    authentication_kubeconfig: Path | None = field(
        default=None,
        metadata=flag(
            "standalone: the cluster to ask TokenReview, SubjectAccessReview and the "
            "extension-apiserver-authentication ConfigMap (cluster mode uses its own connection)",
            AUTHENTICATION,
        ),
    )
    token_cache_ttl: float = field(
        default=60.0,
        metadata=flag(
            "seconds an accepted bearer token's TokenReview is remembered", AUTHENTICATION
        ),
    )
    authorization_allow_ttl: float = field(
        default=10.0,
        metadata=flag(
            "seconds an allowing SubjectAccessReview of a direct caller is remembered "
            "(k8s.io/apiserver's default): a revoked caller is refused within it",
            AUTHENTICATION,
        ),
    )
    authorization_proxied_allow_ttl: float = field(
        default=300.0,
        metadata=flag(
            "seconds an allowing SubjectAccessReview of a request the aggregator forwarded "
            "(and authorized itself) is remembered; the HPA asks every 15 s",
            AUTHENTICATION,
        ),
    )
    authorization_deny_ttl: float = field(
        default=10.0,
        metadata=flag(
            "seconds a denying SubjectAccessReview is remembered (k8s.io/apiserver's default)",
            AUTHENTICATION,
        ),
    )

    cluster_object_namespace: str = field(
        default=DEFAULT_CLUSTER_OBJECT_NAMESPACE,
        metadata=flag(
            "where ClusterTriggerAuthentication refs resolve, as KEDA_CLUSTER_OBJECT_NAMESPACE; "
            "standalone or outside a pod, also where the Lease and certificate Secret are",
            CLUSTER,
            metavar="NS",
        ),
    )
    watch_namespace: tuple[str, ...] = field(
        default=(),
        metadata=flag(
            "cluster mode: watch only these namespaces (repeat the flag, or comma-separate), as "
            "KEDA's WATCH_NAMESPACE: every list and watch is namespaced, so no cluster-wide "
            "list is needed, and ClusterTriggerAuthentications are not read; empty: every "
            "namespace",
            CLUSTER,
            metavar="NS,...",
        ),
    )
    restrict_secret_access: bool = field(
        default=False,
        metadata=flag(
            "cluster mode: read Secrets only in --cluster-object-namespace (for "
            "ClusterTriggerAuthentications), as KEDA_RESTRICT_SECRET_ACCESS: no Secret is "
            "watched elsewhere, and a trigger needing one there is not ready and says so",
            CLUSTER,
        ),
    )
    filepath_auth_root_path: Path | None = field(
        default=None,
        metadata=flag(
            "the directory a ClusterTriggerAuthentication's filePath must lie in, as KEDA's "
            "--filepath-auth-root-path; unset: filePath is refused",
            CLUSTER,
            metavar="DIR",
        ),
    )
    bound_service_account_token_expiry: float = field(
        default=3600.0,
        metadata=flag(
            "seconds a boundServiceAccountToken's token lives, 3600 to 21600, as KEDA's "
            "KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY; renewed before it expires",
            CLUSTER,
            metavar="SECONDS",
        ),
    )
    kube_api_qps: float = field(
        default=20.0,
        metadata=flag(
            "cluster mode: writes a second to the Kubernetes API, after a burst of "
            "--kube-api-burst, as KEDA's flag (client-go's token bucket); reads, the Lease and "
            "the TokenReviews and SubjectAccessReviews of the metrics API are not counted. "
            "Waiting writes go scale first, then statuses and HPAs, then Events; a 429 pauses "
            "them all for its Retry-After",
            CLUSTER,
            metavar="QPS",
        ),
    )
    kube_api_burst: int = field(
        default=30,
        metadata=flag(
            "cluster mode: writes sent at once before --kube-api-qps paces them, as KEDA's flag",
            CLUSTER,
            metavar="N",
        ),
    )
    leader_elect: bool = field(
        default=True,
        metadata=flag(
            "cluster mode: only the holder of the Lease writes; every replica serves", CLUSTER
        ),
    )
    shards: bool = field(
        default=False,
        metadata=flag(
            "cluster mode: split ScaledObjects and ScaledJobs across the replicas, each "
            "announced by a Lease of its own; only an object's owner polls and writes for "
            "it, any replica answers (forwarding to the owner). Replaces --leader-elect",
            CLUSTER,
        ),
    )
    shard_lease_duration: int = field(
        default=15,
        metadata=flag(
            "with --shards: seconds a replica's Lease lasts unrenewed before the others take "
            "its share; it renews every 2/15 of it and stops writing 2/3 of it after its last "
            "renewal (15: 2 s and 10 s, as Kubernetes' own leader elections)",
            CLUSTER,
            metavar="SECONDS",
        ),
    )
    shard_address: str = field(
        default="",
        metadata=flag(
            "with --shards: the URL other replicas reach this one's API on (default "
            "https://$POD_IP:<secure port>, loopback outside a Pod)",
            CLUSTER,
            metavar="URL",
        ),
    )

    scaler_timeout: float = field(
        default=DEFAULT_TIMEOUT,
        metadata=flag(
            "seconds every upstream request may take, as KEDA_HTTP_DEFAULT_TIMEOUT", POLLING
        ),
    )
    stale_intervals: float = field(
        default=STALE_INTERVALS,
        metadata=flag(
            "polling intervals a trigger's value is still served while its polls are behind "
            "(more due than the process gets through: its value ages, with the age in the "
            "log and /metrics); then it is served as an error until a poll answers. A source "
            "that answers with an error, or not within --scaler-timeout once asked, is an "
            "error at once",
            POLLING,
            metavar="N",
        ),
    )
    wake_hints: bool = field(
        default=True,
        metadata=flag(
            "while a target is idle, watch its source (NATS subjects, Redis keyspace "
            "notifications, ...) and poll at once when new work may have arrived",
            POLLING,
        ),
    )

    log_level: LogLevel = field(
        default="info", metadata=flag("the least severe level logged", LOGGING)
    )
    log_format: LogFormat = field(
        default="text", metadata=flag("one line per event, as text or as a JSON object", LOGGING)
    )

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_private_key_file is None):
            raise ValueError(
                f"{option('tls_cert_file')} and {option('tls_private_key_file')} go together"
            )
        for name in GUARD_LIMITS:
            if getattr(self, name) <= 0:
                raise ValueError(f"{option(name)}: {getattr(self, name):g} must be positive")
        if self.serving_cert_validity < SHORTEST_VALIDITY:
            raise ValueError(
                f"{option('serving_cert_validity')}: {self.serving_cert_validity:g} must be at "
                f"least {SHORTEST_VALIDITY:g} seconds, so that a certificate is served a while "
                "between renewals"
            )
        if self.ca_cert_validity < self.serving_cert_validity:
            raise ValueError(
                f"{option('ca_cert_validity')}: {self.ca_cert_validity:g} must be at least "
                f"{option('serving_cert_validity')} ({self.serving_cert_validity:g}): a serving "
                "certificate may not outlive its CA"
            )
        if self.kube_api_qps <= 0:
            raise ValueError(f"{option('kube_api_qps')}: {self.kube_api_qps:g} must be positive")
        if self.shard_lease_duration < SHORTEST_SHARD_LEASE:
            raise ValueError(
                f"{option('shard_lease_duration')}: {self.shard_lease_duration} must be at "
                f"least {SHORTEST_SHARD_LEASE} seconds"
            )
        if self.kube_api_burst < 1:
            raise ValueError(
                f"{option('kube_api_burst')}: {self.kube_api_burst} must be at least 1"
            )
        if self.stale_intervals < 1:
            raise ValueError(
                f"{option('stale_intervals')}: {self.stale_intervals:g} must be at least 1: a "
                "value is due again only after one polling interval"
            )
        if not 3600 <= self.bound_service_account_token_expiry <= 21600:
            raise ValueError(
                f"{option('bound_service_account_token_expiry')}: "
                f"{self.bound_service_account_token_expiry:g} must be between 3600 and 21600 "
                "seconds (1 to 6 hours), as KEDA's"
            )

    @property
    def standalone(self) -> bool:
        return self.scaledobjects is not None

    @property
    def listen_address(self) -> str:
        if self.bind_address:
            return self.bind_address
        return LOOPBACK if self.standalone else ANY_ADDRESS
