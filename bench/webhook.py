"""The admission webhook's cost on a valid ScaledObject, on a real control plane: its answer
to kube-apiserver, and what it adds to a create.

    .venv/bin/python -m bench.webhook [--requests 300] [--rounds 3]

etcd, kube-apiserver and kube-controller-manager run on loopback (the e2e harness), the
adapter in cluster mode as its ServiceAccount, registered as deploy/webhook.yaml registers
it; the namespace holds 10 ScaledObjects and the 10 HPAs the adapter made for them, which the
webhook lists at every review (KEDA's conflict rules). Each round measures, one request at a
time:

- **direct**: an AdmissionReview of a valid ScaledObject POSTed to the webhook's path over TLS
  on one kept-alive connection, as kube-apiserver's webhook client sends it;
- **with** / **without**: a create of that ScaledObject through kube-apiserver, with the
  webhook registered and after its configuration is deleted. The creates are server-side dry
  runs (``dryRun=All``): admission runs in full, nothing is stored, so the controller has no
  work that would disturb the figures. (A dry run skips only KEDA's read of the pod template
  for cpu/memory triggers; this object's cron trigger needs none.)

The webhook's cost is *with* minus *without*, per percentile over all rounds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from bench.report import main, note, percentile, print_table, summary
from tests.support import triggers
from tests.support.admission import review
from tests.support.controlplane import (
    WEBHOOK_CONFIGURATION,
    Adapter,
    ControlPlane,
    client_context,
    deployment,
    register_webhook,
    wait_for,
    webhook_answers,
)
from tests.support.controlplane.cluster_mode import cluster_mode

NS = "bench-webhook"
PATH = "/validate-keda-sh-v1alpha1-scaledobject"
NEIGHBOURS = 10
WARM_UP = 20
CRON = {"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "3"}


def valid(name: str) -> dict[str, Any]:
    return triggers.scaled_object(name, NS, {"type": "cron", "metadata": CRON}, minReplicaCount=1)


@contextmanager
def cluster() -> Iterator[tuple[ControlPlane, Adapter]]:
    """The control plane, the adapter in cluster mode with its webhook registered, and the
    namespace's 10 ScaledObjects with their HPAs."""
    began = time.monotonic()
    args = ["--log-level=warning"]
    with cluster_mode(NS, args=args, register=False, report=note, final_tail=0) as (cp, adapter):
        register_webhook(cp, adapter)
        for i in range(NEIGHBOURS):
            cp.apply(deployment(f"web-{i}", NS))
            cp.apply(valid(f"web-{i}"))
        for i in range(NEIGHBOURS):
            wait_for(f"HPA keda-hpa-web-{i}", hpa_of(cp, f"web-{i}"), 60)
        note(
            f"webhook: control plane, adapter and objects ready in {time.monotonic() - began:.1f}s"
        )
        yield cp, adapter


def hpa_of(cp: ControlPlane, name: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: cp.get("autoscaling/v2", "HorizontalPodAutoscaler", f"keda-hpa-{name}", NS)


def timed(call: Callable[[], None], count: int) -> list[float]:
    """Milliseconds of each of ``count`` calls, after a warm-up."""
    for _ in range(WARM_UP):
        call()
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def direct(adapter: Adapter, client: httpx.Client, count: int) -> list[float]:
    body = json.dumps(review(valid("candidate")))

    def call() -> None:
        answer = client.post(f"{adapter.url}{PATH}", content=body)
        response = answer.json()["response"]
        if not response["allowed"] or response.get("warnings"):
            raise RuntimeError(f"the valid object was not admitted cleanly: {response}")

    return timed(call, count)


def through_apiserver(cp: ControlPlane, count: int) -> list[float]:
    path = cp.path("keda.sh/v1alpha1", "ScaledObject", NS)
    candidate = valid("candidate")

    def call() -> None:
        answer = cp.client.post(path, params={"dryRun": "All"}, json=candidate)
        if answer.status_code != 201 or answer.headers.get("warning"):
            raise RuntimeError(f"the valid object was not created cleanly: {answer.text}")

    return timed(call, count)


def unregister(cp: ControlPlane) -> None:
    """Delete the configuration; return once kube-apiserver no longer calls the webhook."""
    cp.delete(
        "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", WEBHOOK_CONFIGURATION
    )
    wait_for("kube-apiserver to stop calling the webhook", lambda: not webhook_answers(cp, NS), 60)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="per measure and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    found: dict[str, list[float]] = {"direct": [], "with": [], "without": []}
    with cluster() as (cp, adapter), httpx.Client(verify=client_context(cp.ca.pem)) as client:
        for r in range(args.rounds):
            note(f"webhook: round {r + 1}/{args.rounds}")
            found["direct"] += direct(adapter, client, args.requests)
            found["with"] += through_apiserver(cp, args.requests)
            unregister(cp)
            found["without"] += through_apiserver(cp, args.requests)
            register_webhook(cp, adapter)
    pct = {k: {p: percentile(v, p) for p in (50, 90, 99)} for k, v in found.items()}
    added = {p: pct["with"][p] - pct["without"][p] for p in (50, 90, 99)}
    rows: list[list[str | int | float | None]] = [
        ["webhook's answer (direct, TLS)", len(found["direct"]), *pct["direct"].values()],
        [
            "create through kube-apiserver, webhook registered",
            len(found["with"]),
            *pct["with"].values(),
        ],
        [
            "create through kube-apiserver, no webhook",
            len(found["without"]),
            *pct["without"].values(),
        ],
        ["added by the webhook (with - without)", None, *added.values()],
    ]
    print_table(
        f"Admission of a valid ScaledObject beside {NEIGHBOURS} others ({args.rounds} rounds)",
        ["measure", "requests", "p50 ms", "p90 ms", "p99 ms"],
        rows,
    )
    return [
        summary(
            "webhook",
            p50_ms=pct["direct"][50],
            p99_ms=pct["direct"][99],
            added_p50_ms=added[50],
            added_p99_ms=added[99],
        )
    ]


if __name__ == "__main__":
    main(run)
