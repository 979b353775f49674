"""Prometheus series named and labelled as KEDA's (keda-semantics §7), and structured logs."""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics_adapter import __version__
from metrics_adapter.binding.composite import COMPOSITE_METRIC
from metrics_adapter.metrics.scaler_series import ScalerSeries
from metrics_adapter.model.scaled_job import Scalable, ScaledJobRef

if TYPE_CHECKING:
    from metrics_adapter.binding.triggers import BoundTrigger
    from metrics_adapter.kube.objects import ObjectRef
    from metrics_adapter.metrics.composite import Outcome

SCALER_LABELS = ("namespace", "metric", "scaledObject", "scaler", "triggerIndex", "type")
REQUEST_LABELS = ("verb", "group", "version", "resource")
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""From half a millisecond (a read answered from memory) to 10 s (the aggregator gives up)."""
WEBHOOK_NAMESPACES = 1000
"""Distinct ``namespace`` labels of the webhook series: few clusters have more namespaces."""


def scaler_labels(bound: BoundTrigger) -> tuple[str, ...]:
    """The labels of a trigger's series, in the order of :data:`SCALER_LABELS`."""
    return (
        bound.so.namespace,
        bound.metric_name,
        bound.so.name,
        bound.scaler_label,
        str(bound.trigger.index),
        "scaledjob" if isinstance(bound.so, ScaledJobRef) else "scaledobject",
    )


class Telemetry:
    """The process's series, in a registry of its own so tests can read them in isolation."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.scalers = ScalerSeries(SCALER_LABELS)
        r.register(self.scalers)
        self.object_errors = Counter(
            "keda_scaled_object_errors",
            "Errors of each ScaledObject (parse, bind or scaler).",
            ("namespace", "scaledObject"),
            registry=r,
        )
        self.job_errors = Counter(
            "keda_scaled_job_errors",
            "Errors of each ScaledJob (parse, bind, scaler or Job writes).",
            ("namespace", "scaledJob"),
            registry=r,
        )
        # Not a KEDA series (KEDA has none for it): what a ScaledJob did, for the dashboard.
        self.jobs_created = Counter(
            "metrics_adapter_scaled_job_jobs_created",
            "Jobs created for each ScaledJob.",
            ("namespace", "scaledJob"),
            registry=r,
        )
        self.resources = Gauge(
            "keda_resource_registered_total",
            "ScaledObjects (scaled_object) and ScaledJobs (scaled_job) registered, per namespace.",
            ("type", "namespace"),
            registry=r,
        )
        self.triggers = Gauge(
            "keda_trigger_registered_total",
            "Triggers registered, per trigger type.",
            ("type",),
            registry=r,
        )
        # The metrics API's own requests, named as k8s.io/apiserver names them (KEDA's metrics
        # server exposes these), so apiserver dashboards and alerts work on this adapter too.
        self.requests = Counter(
            "apiserver_request_total",
            "Requests to the metrics API, by verb, group, version, resource and HTTP code.",
            (*REQUEST_LABELS, "code"),
            registry=r,
        )
        self.request_duration = Histogram(
            "apiserver_request_duration_seconds",
            "Time to answer a request to the metrics API, by verb, group, version and resource.",
            REQUEST_LABELS,
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        # k8s.io/apiserver's names for the reviews a delegating server asks of kube-apiserver:
        # cache misses only, so they show what authentication costs the control plane.
        self.authn_reviews = Counter(
            "apiserver_delegated_authn_request_total",
            "TokenReviews asked of kube-apiserver, by HTTP code (0: no answer).",
            ("code",),
            registry=r,
        )
        self.authz_reviews = Counter(
            "apiserver_delegated_authz_request_total",
            "SubjectAccessReviews asked of kube-apiserver, by HTTP code (0: no answer).",
            ("code",),
            registry=r,
        )
        # KEDA's admission webhook series (KEDA >= 2.17 names): ScaledObjects validated, and
        # refusals by reason (a ScaledJob's refusals too, as KEDA counts them).
        self.webhook_validations = Counter(
            "keda_webhook_scaled_object_validations",
            "ScaledObjects checked by the admission webhook, by namespace and action.",
            ("namespace", "action"),
            registry=r,
        )
        self.webhook_errors = Counter(
            "keda_webhook_scaled_object_validation_errors",
            "Admission refusals of ScaledObjects and ScaledJobs, one per reason of each.",
            ("namespace", "action", "reason"),
            registry=r,
        )
        self._webhook_namespaces: set[str] = set()
        # Wake hints (ours: KEDA has none): how the watchers do, what they said, what it cost.
        self.wake_hints = Counter(
            "metrics_adapter_wake_hints",
            "Wake hints received from the sources' watchers, by source type.",
            ("source_type",),
            registry=r,
        )
        self.wake_polls = Counter(
            "metrics_adapter_wake_polls",
            "Polls made early for wake hints (at most one per query per second), by source type.",
            ("source_type",),
            registry=r,
        )
        self.wake_watchers = Gauge(
            "metrics_adapter_wake_watchers",
            "Wake watcher connections open, by source type and state.",
            ("source_type", "state"),
            registry=r,
        )
        # The Kubernetes API, as client-go and controller-runtime name their series (KEDA's
        # operator exports these), and the watches and Lease behind the controller.
        self.kube_requests = Counter(
            "rest_client_requests",
            "Kubernetes API requests, by HTTP method (WATCH for a watch) and answer code "
            "(<error> when none came).",
            ("method", "code"),
            registry=r,
        )
        self.kube_write_wait = Histogram(
            "rest_client_rate_limiter_duration_seconds",
            "Seconds each Kubernetes API write waited for the client-side rate limit "
            "(--kube-api-qps, --kube-api-burst), by HTTP method.",
            ("verb",),
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.watch_restarts = Counter(
            "metrics_adapter_watch_restarts",
            "Watches started again, by resource and reason: ended (by the server's timeout), "
            "expired (410: re-listed) or error.",
            ("resource", "reason"),
            registry=r,
        )
        self.leader = Gauge(
            "leader_election_master_status",
            "1 while this process holds the Lease and writes, else 0.",
            ("name",),
            registry=r,
        )
        self.shard_members = Gauge(
            "metrics_adapter_shard_members",
            "Live replicas in this process's shard group, as it last saw them (--shards).",
            registry=r,
        )
        self.shard_objects = Gauge(
            "metrics_adapter_shard_objects",
            "ScaledObjects and ScaledJobs this process polls (held=polled) and writes for "
            "(held=written): its share under --shards, every object otherwise.",
            ("held",),
            registry=r,
        )
        self.leader_transitions = Counter(
            "metrics_adapter_leader_transitions",
            "Times this process took (to=leader) or lost (to=follower) the Lease.",
            ("to",),
            registry=r,
        )
        # The secure port's guard (metrics_adapter.api.guard): who it turned away and why.
        self.connections_refused = Counter(
            "metrics_adapter_connections_refused",
            "Connections to the secure port reset on arrival, before TLS, by reason: "
            "per_address, handshake_rate or capacity.",
            ("reason",),
            registry=r,
        )
        self.connections_closed = Counter(
            "metrics_adapter_connections_closed",
            "Admitted connections the adapter closed, by reason: handshake (failed or too "
            "slow), read_timeout (a request too slow to arrive) or evicted (room for another).",
            ("reason",),
            registry=r,
        )
        self.connections = Gauge(
            "metrics_adapter_connections",
            "Connections the secure port holds now.",
            registry=r,
        )
        self.requests_refused = Counter(
            "metrics_adapter_requests_refused",
            "Requests answered 429 by reason: max_inflight (past --max-requests-inflight).",
            ("reason",),
            registry=r,
        )
        # Reads forwarded to the replica owning the object (metrics_adapter.api.forward).
        self.forwarded_requests = Counter(
            "metrics_adapter_forwarded_requests",
            "Metric reads forwarded to the owner replica, by result: answered (its answer, "
            "a value or a Status), stale (the owner unreachable, or holding nothing yet after "
            "a hand-over, like this replica for an object it was just given: the last answer "
            "given served instead) or failed (503).",
            ("result",),
            registry=r,
        )
        self.forward_duration = Histogram(
            "metrics_adapter_forward_duration_seconds",
            "Time of each metric read forwarded to the owner replica, answered or not.",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        # The poller's backlog (metrics_adapter.metrics.backlog): ours, KEDA has none.
        self.polls_overdue = Gauge(
            "metrics_adapter_polls_overdue",
            "Queries not answered for longer than their polling interval and a timed-out poll: "
            "polls are behind.",
            registry=r,
        )
        self.polls_stale = Gauge(
            "metrics_adapter_polls_stale",
            "Queries not answered for --stale-intervals polling intervals: their values are "
            "served as errors.",
            registry=r,
        )
        self.oldest_answer = Gauge(
            "metrics_adapter_poll_oldest_answer_seconds",
            "Seconds since the least recently answered query was answered.",
            registry=r,
        )
        self._poll_ages = PollAges()
        r.register(self._poll_ages)
        build = Gauge(
            "keda_build_info",
            "Build information of metrics-adapter.",
            ("version", "git_commit", "goversion", "goos", "goarch"),
            registry=r,
        )
        build.labels(
            __version__, "", f"python{platform.python_version()}", sys.platform, platform.machine()
        ).set(1)

    def observe(
        self, bound: BoundTrigger, value: float, active: bool | None, latency: float
    ) -> None:
        """A trigger's reading; ``active`` is ``None`` where KEDA records no activity of the
        trigger (under scalingModifiers: only the composite's)."""
        row = self.scalers.row(scaler_labels(bound))
        row.value, row.latency = value, latency
        if active is not None:
            row.active = 1 if active else 0

    @staticmethod
    def _composite_labels(ref: ObjectRef) -> tuple[str, ...]:
        """KEDA's labels for the composite metric: scaler and metric ``composite-metric``,
        triggerIndex 0."""
        return (ref.namespace, COMPOSITE_METRIC, ref.name, COMPOSITE_METRIC, "0", "scaledobject")

    def composite(self, ref: ObjectRef, outcome: Outcome) -> None:
        """The composite metric of a ScaledObject: what is served (after fallback), and its
        activity; while nothing is served, inactive, with the last value kept."""
        row = self.scalers.row(self._composite_labels(ref))
        if outcome.served is not None:
            row.value = outcome.served
        row.active = 1 if outcome.active else 0

    def forget_composite(self, ref: ObjectRef) -> None:
        self.scalers.forget(self._composite_labels(ref))

    def error(self, bound: BoundTrigger) -> None:
        row = self.scalers.row(scaler_labels(bound))
        row.errors = (row.errors or 0) + 1
        row.active = 0
        self.object_error(bound.so)

    def register(self, so: Scalable, count: int = 1) -> None:
        """Count ``so`` and its triggers in the registered gauges (``count=-1``: uncount)."""
        kind = "scaled_job" if isinstance(so.ref, ScaledJobRef) else "scaled_object"
        self.resources.labels(kind, so.ref.namespace).inc(count)
        if kind == "scaled_job":  # KEDA starts its error counter at 0; ours alike
            self.job_errors.labels(so.ref.namespace, so.ref.name)
            self.jobs_created.labels(so.ref.namespace, so.ref.name)
        for trigger in so.triggers:
            self.triggers.labels(trigger.type).inc(count)

    def object_error(self, ref: ObjectRef) -> None:
        """One more error of a ScaledObject, or of a ScaledJob (a :class:`ScaledJobRef`)."""
        series = self.job_errors if isinstance(ref, ScaledJobRef) else self.object_errors
        series.labels(ref.namespace, ref.name).inc()

    def kube_request(self, method: str, code: str) -> None:
        self.kube_requests.labels(method, code).inc()

    def kube_write_waited(self, method: str, seconds: float) -> None:
        self.kube_write_wait.labels(method).observe(seconds)

    def watch_restart(self, resource: str, reason: str) -> None:
        self.watch_restarts.labels(resource, reason).inc()

    def leadership(self, name: str, leading: bool) -> None:
        """A change of leadership: the gauge and the transition."""
        self.leader.labels(name).set(1 if leading else 0)
        self.leader_transitions.labels("leader" if leading else "follower").inc()

    # metrics_adapter.api.guard.GuardObserver
    def connection_refused(self, reason: str) -> None:
        self.connections_refused.labels(reason).inc()

    def connection_closed(self, reason: str) -> None:
        self.connections_closed.labels(reason).inc()

    def request_refused(self, reason: str) -> None:
        self.requests_refused.labels(reason).inc()

    def connections_open(self, count: int) -> None:
        self.connections.set(count)

    # metrics_adapter.api.forward.ForwardObserver
    def forwarded(self, result: str, seconds: float) -> None:
        self.forwarded_requests.labels(result).inc()
        self.forward_duration.observe(seconds)

    def wake_hint(self, source_type: str) -> None:
        self.wake_hints.labels(source_type).inc()

    def wake_poll(self, source_type: str) -> None:
        self.wake_polls.labels(source_type).inc()

    def wake_watcher_states(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Watchers by ``(source_type, state)``; a pair not in ``counts`` reads 0."""
        for labels, count in counts.items():
            self.wake_watchers.labels(*labels).set(count)
        for metric in self.wake_watchers.collect():
            for sample in metric.samples:
                pair = (sample.labels["source_type"], sample.labels["state"])
                if pair not in counts:
                    self.wake_watchers.labels(*pair).set(0)

    def webhook_validation(self, namespace: str, action: str) -> None:
        self.webhook_validations.labels(self._webhook_namespace(namespace), action).inc()

    def webhook_refusal(self, namespace: str, action: str, reason: str) -> None:
        self.webhook_errors.labels(self._webhook_namespace(namespace), action, reason).inc()

    def _webhook_namespace(self, namespace: str) -> str:
        """The namespace as a label, from a bounded set: the webhook takes anonymous calls,
        which could otherwise invent a series per made-up namespace. Past
        :data:`WEBHOOK_NAMESPACES` distinct ones, new namespaces are counted as ``_other``."""
        if namespace in self._webhook_namespaces:
            return namespace
        if len(self._webhook_namespaces) >= WEBHOOK_NAMESPACES:
            return "_other"
        self._webhook_namespaces.add(namespace)
        return namespace

    def poll_ages_from(self, ages: Callable[[], Iterable[tuple[BoundTrigger, float]]]) -> None:
        """Where the per-trigger ages of the answers come from, computed at each scrape."""
        self._poll_ages.source = ages

    def backlog(self, overdue: int, stale: int, oldest_s: float) -> None:
        self.polls_overdue.set(overdue)
        self.polls_stale.set(stale)
        self.oldest_answer.set(oldest_s)

    def forget(self, bound: BoundTrigger) -> None:
        self.scalers.forget(scaler_labels(bound))


class PollAges(Collector):
    """``metrics_adapter_scaler_poll_age_seconds``, made at scrape time from the poller: a
    series per trigger kept up to date every second would cost more than every scrape."""

    _labelnames = SCALER_LABELS
    """As the client library's series name theirs."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[BoundTrigger, float]]] = list

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for bound, age in self.source():
            family.add_metric(scaler_labels(bound), round(age, 3))
        return [family]

    @classmethod
    def _family(cls) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "metrics_adapter_scaler_poll_age_seconds",
            "Seconds since each trigger's query was last answered (a value or an error); past "
            "--stale-intervals polling intervals its value is served as an error.",
            labels=cls._labelnames,
        )


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's message again, with terminal escape codes
}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        line = f"{line}  {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class OncePerBurst(logging.Filter):
    """Drops a record whose message the logger said within the last ``seconds``: each of our
    uvicorn servers (the API, /metrics) logs the same "Started server process [pid]",
    "Shutting down" and "Finished server process", which say one thing once."""

    def __init__(self, seconds: float = 2.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._said: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        last = self._said.get(message)
        self._said = {m: t for m, t in self._said.items() if record.created - t < self.seconds}
        self._said[message] = record.created
        return last is None or record.created - last >= self.seconds


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    uvicorn_lifecycle = logging.getLogger("uvicorn.error")
    uvicorn_lifecycle.filters[:] = [
        f for f in uvicorn_lifecycle.filters if not isinstance(f, OncePerBurst)
    ]
    uvicorn_lifecycle.addFilter(OncePerBurst())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # These log whole response bodies at DEBUG: STS credentials, Secrets Manager values,
    # TokenRequest answers (bound tokens, Vault's service account JWTs).
    for noisy in (
        "httpx",
        "httpcore",
        "uvicorn.access",
        "botocore",
        "aiobotocore",
        "aioboto3",
        "kubernetes_asyncio",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
