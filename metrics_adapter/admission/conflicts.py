"""KEDA's rules that read the cluster (§2.2 rules 1 to 4): another ScaledObject on the same
workload or HPA name, an HPA we do not own already scaling it (with KEDA's two escape
annotations), and cpu/memory triggers over containers that request neither.

Every read is bounded by one deadline well inside the webhook's 10 s timeout. What cannot be
read in time (or at all: no RBAC, the API server away) is not guessed: its rules are skipped
and a warning says which, so the answer is the object's own checks and never a hang. A
workload that does not exist yet is a warning too, where KEDA refuses: objects are applied
together, in any order (kedacore/keda#5973).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from metrics_adapter.admission.checks import WORKLOADS, gvk
from metrics_adapter.admission.cluster import ClusterView
from metrics_adapter.admission.findings import (
    FOREIGN_HPA,
    MISSING_REQUESTS,
    OTHER_SCALED_OBJECT,
    OTHER_SCALED_OBJECT_HPA,
    Finding,
)
from metrics_adapter.errors import KubeError
from metrics_adapter.model.keda import ScaledObject

log = logging.getLogger(__name__)

TRANSFER = "scaledobject.keda.sh/transfer-hpa-ownership"
"""On a ScaledObject, ``"true"``: take over the HPA named in horizontalPodAutoscalerConfig."""
HPA_OWNERSHIP = "validations.keda.sh/hpa-ownership"
"""On an HPA, ``"false"``: this HPA never blocks a ScaledObject."""
HPA_NAME = "advanced.horizontalPodAutoscalerConfig.name"
WHAT = {
    "scaled_objects": "other ScaledObjects on the same workload or HPA name",
    "hpas": "HPAs already scaling the workload",
    "containers": "the workload's cpu/memory requests",
}


@dataclass
class _Reads:
    done: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    async def read(self, key: str, call: Awaitable[Any]) -> None:
        try:
            self.done[key] = await call
        except KubeError as exc:
            self.failed[key] = str(exc)
        except Exception as exc:  # a read of ours that broke must not refuse anything
            log.exception("admission: reading %s failed", key)
            self.failed[key] = type(exc).__name__


async def cluster_rules(
    so: ScaledObject,
    view: ClusterView,
    *,
    dry_run: bool,
    deadline: float,
    limit: asyncio.Semaphore | None = None,
) -> tuple[list[Finding], list[str]]:
    """Rules 1 to 4 for ``so``; and warnings naming the rules that could not be applied."""
    target, namespace = so.scale_target_ref, so.meta.namespace
    if not target.name:  # the parser names the missing field; nothing to compare
        return [], []
    reads = _Reads()
    calls: dict[str, Any] = {"scaled_objects": view.scaled_objects, "hpas": view.hpas}
    if _needs_workload(so, dry_run):
        calls["containers"] = lambda ns: view.containers(ns, target)
        calls["limit_ranges"] = view.limit_range_defaults
    try:
        async with asyncio.timeout(deadline):
            async with limit or _NO_LIMIT, asyncio.TaskGroup() as group:
                for key, call in calls.items():
                    group.create_task(reads.read(key, call(namespace)))
    except TimeoutError:
        for key in calls.keys() - reads.done.keys() - reads.failed.keys():
            reads.failed[key] = f"no answer within {deadline:g}s"
    findings = [*_scaled_objects(so, reads), *_hpas(so, reads)]
    warnings = _taken_over(so, reads)
    found, more = _requests(so, reads)
    return [*findings, *found], [*warnings, *more, *_unread(reads)]


class _Unlimited:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_LIMIT = _Unlimited()


def _needs_workload(so: ScaledObject, dry_run: bool) -> bool:
    """KEDA reads the pod template only for cpu/memory triggers on a Deployment or
    StatefulSet, and not on a dry run."""
    return (
        not dry_run
        and gvk(so.scale_target_ref) in WORKLOADS
        and any(t.is_resource for t in so.triggers)
    )


def _scaled_objects(so: ScaledObject, reads: _Reads) -> list[Finding]:
    target, kind = so.scale_target_ref, gvk(so.scale_target_ref)
    hpa_path = HPA_NAME if so.advanced.hpa_name else "metadata.name"
    findings = []
    for other in reads.done.get("scaled_objects", ()):
        if other.name == so.meta.name:
            continue
        if gvk(other.target) == kind and other.target.name == target.name:
            message = (
                f"the workload '{target.name}' of type '{kind}' is already managed by the "
                f"ScaledObject '{other.name}'"
            )
            findings.append(
                Finding(OTHER_SCALED_OBJECT, "other-scaled-object", "scaleTargetRef.name", message)
            )
        if other.hpa_name == so.hpa_name:
            message = (
                f"the HPA '{so.hpa_name}' is already managed by the ScaledObject '{other.name}'"
            )
            findings.append(
                Finding(OTHER_SCALED_OBJECT_HPA, "other-scaled-object-hpa", hpa_path, message)
            )
    return findings


def _foreign(so: ScaledObject, reads: _Reads) -> list[Any]:
    """HPAs on the same workload that this ScaledObject does not own and that do not opt
    out of the check."""
    target, kind = so.scale_target_ref, gvk(so.scale_target_ref)
    return [
        hpa
        for hpa in reads.done.get("hpas", ())
        if hpa.annotations.get(HPA_OWNERSHIP) != "false"
        and gvk(hpa.target) == kind
        and hpa.target.name == target.name
        and ("ScaledObject", so.meta.name) not in hpa.owners
    ]


def _hpas(so: ScaledObject, reads: _Reads) -> list[Finding]:
    target, kind = so.scale_target_ref, gvk(so.scale_target_ref)
    transfer = so.meta.annotations.get(TRANSFER) == "true"
    findings = []
    for hpa in _foreign(so, reads):
        if transfer and so.advanced.hpa_name == hpa.name:
            continue
        if transfer:
            message = (
                f"the existing hpa '{hpa.name}' for workload '{target.name}' of type '{kind}' "
                "must be specified by name in advanced settings to enable ownership transfer"
            )
            reason = "transfer-ownership-missing-hpa-name"
            findings.append(Finding(FOREIGN_HPA, reason, HPA_NAME, message))
        else:
            message = (
                f"the workload '{target.name}' of type '{kind}' is already managed by the "
                f"hpa '{hpa.name}'"
            )
            findings.append(Finding(FOREIGN_HPA, "other-hpa", "scaleTargetRef.name", message))
    return findings


def _taken_over(so: ScaledObject, reads: _Reads) -> list[str]:
    if so.meta.annotations.get(TRANSFER) != "true":
        return []
    return [
        f"{HPA_NAME}: the HPA {hpa.name!r} will be taken over by this ScaledObject ({TRANSFER})"
        for hpa in _foreign(so, reads)
        if hpa.name == so.advanced.hpa_name
    ]


def _requests(so: ScaledObject, reads: _Reads) -> tuple[list[Finding], list[str]]:
    """Rule 4: each container a cpu/memory trigger scales on (all, or its ``containerName``)
    must request or limit that resource, unless a LimitRange defaults it."""
    if "containers" not in reads.done:
        return [], []
    containers = reads.done["containers"]
    target = so.scale_target_ref
    if containers is None:
        return [], [
            f"scaleTargetRef: {target.kind} '{target.name}' not found in {so.meta.namespace}: "
            "its cpu/memory requests were not checked"
        ]
    defaults = reads.done.get("limit_ranges")
    findings, unsure = [], []
    for t in so.triggers:
        if not t.is_resource:
            continue
        wanted = t.metadata.get("containerName", "")
        for c in containers:
            if (wanted and c.name != wanted) or t.type in c.resources:
                continue
            if defaults is None:  # the LimitRanges could not be read: may be defaulted
                unsure.append(c.name)
            elif t.type not in defaults:
                message = (
                    f"the scaledobject has a {t.type} trigger but the container {c.name} "
                    f"doesn't have the {t.type} request defined"
                )
                findings.append(
                    Finding(MISSING_REQUESTS, "missing-requests", f"triggers[{t.index}]", message)
                )
    if not unsure:
        return findings, []
    why = reads.failed.get("limit_ranges", "")
    return findings, [
        f"scaleTargetRef: containers {', '.join(sorted(set(unsure)))} do not request the "
        f"resource a cpu/memory trigger scales on, and whether a LimitRange defaults it "
        f"could not be read ({why}): not refused"
    ]


def _unread(reads: _Reads) -> list[str]:
    """One warning per rule that could not be applied, naming why."""
    by_what: dict[str, list[str]] = {}
    for key, why in sorted(reads.failed.items()):
        if key == "limit_ranges":  # said by the rule that needed them, if it did
            continue
        by_what.setdefault(WHAT[key], []).append(why)
    return [
        f"not checked, the cluster could not be read: {what} ({'; '.join(why)})"
        for what, why in by_what.items()
    ]
