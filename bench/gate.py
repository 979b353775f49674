"""The auth gate's cost per request, in process: the same HPA request through the app alone,
behind the request metrics, and behind the metrics and the gate (front-proxy certificate,
decision remembered), side by side in each round.

    .venv/bin/python -m bench.gate [--requests 20000] [--rounds 5]

wrk cannot present a client certificate, so bench.api measures the open standalone API; this
adds what authentication and authorization cost on top, without the socket and TLS noise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message

from bench.report import main, median, note, print_table, summary
from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.auth.authn import Authenticator
from metrics_adapter.api.auth.authz import DelegatingAuthorizer
from metrics_adapter.api.auth.identity import (
    Attributes,
    AuthConfig,
    CaBundle,
    RequestHeaderConfig,
    User,
)
from metrics_adapter.api.auth.middleware import AuthMiddleware
from metrics_adapter.api.request_metrics import RequestMetrics
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from tests.support.pki import CertificateAuthority

PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/s0-cron"
HEADERS = [
    (b"host", b"metrics-adapter.keda.svc"),
    (b"x-remote-user", b"system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
    (b"x-remote-group", b"system:serviceaccounts"),
    (b"x-remote-group", b"system:authenticated"),
    (b"accept", b"application/json"),
]


class Allow:
    """kube-apiserver's SubjectAccessReview, answered yes at once: asked once, then remembered."""

    async def review_token(self, token: str) -> User | None:
        return None

    async def review_access(self, user: User, attributes: Attributes) -> tuple[bool, str]:
        return True, ""


def apps() -> tuple[dict[str, ASGIApp], list[str]]:
    """The three stacks, and the verified chain (leaf, CA) of the front proxy's certificate."""
    store = MetricStore()
    ref = ObjectRef("bench", "so-0")
    store.register(ref, ["s0-cron"])
    store.record_value(ref, "s0-cron", 5, True, datetime.now(UTC))
    app = create_app(store, Health(loaded=True, poller_running=lambda: True))
    ca = CertificateAuthority("front-proxy-ca")
    config = AuthConfig(
        requestheader=RequestHeaderConfig(CaBundle.parse(ca.pem, "bench"), ("front-proxy-client",))
    )
    gate = AuthMiddleware(app, Authenticator(config), DelegatingAuthorizer(Allow()))
    stacks: dict[str, ASGIApp] = {
        "app alone": app,
        "+ request metrics": RequestMetrics(app, Telemetry()),
        "+ metrics + auth gate": RequestMetrics(gate, Telemetry()),
    }
    return stacks, [ca.issue("front-proxy-client").cert_pem.decode(), ca.pem.decode()]


async def per_request_us(app: ASGIApp, chain: list[str], requests: int) -> float:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"labelSelector=scaledobject.keda.sh%2Fname%3Dso-0",
        "headers": HEADERS,
        "server": ("127.0.0.1", 6443),
        "client": ("127.0.0.1", 50000),
        "extensions": {"tls": {"client_cert_chain": chain}},
    }
    status: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    began = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope, state={}), receive, send)
    elapsed = time.perf_counter() - began
    assert set(status) == {200}, set(status)
    return elapsed / requests * 1e6


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    built, chain = apps()
    rounds: dict[str, list[float]] = {name: [] for name in built}
    overhead: list[float] = []
    for i in range(args.rounds):
        note(f"gate: round {i + 1}/{args.rounds}")
        took = {
            name: asyncio.run(per_request_us(app, chain, args.requests))
            for name, app in built.items()
        }
        for name, us in took.items():
            rounds[name].append(us)
        overhead.append(took["+ metrics + auth gate"] - took["+ request metrics"])
    base = median(rounds["app alone"])
    print_table(
        f"Per request, in process (no socket, no TLS), {args.requests} requests x "
        f"{args.rounds} rounds, medians",
        ("stack", "µs / request", "vs app alone"),
        [(name, median(values), median(values) / base) for name, values in rounds.items()],
    )
    return [
        summary(
            "gate",
            us_per_request=median(rounds["+ metrics + auth gate"]),
            gate_overhead_us=median(overhead),
            app_alone_us=base,
        )
    ]


if __name__ == "__main__":
    main(run)
