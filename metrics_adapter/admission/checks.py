"""KEDA's admission rules that need nothing but the object (reference
keda-scaledjob-webhook-modifiers.md §2.2 rules 5 to 11, §2.3, §3.4), with KEDA's messages and
reasons, and the warnings for what is accepted but not used.

The rules read the parser's typed object (for a malformed one, its draft: defaults in place of
the bad fields) and, where KEDA tells "unset" from "set to 0", the raw spec; a rule whose field
the parser could not read stays silent, since the parser already names that field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from metrics_adapter.admission.findings import (
    FALLBACK,
    NAME_LENGTH,
    REPLICAS,
    SCALE_TO_ZERO,
    SCALING_MODIFIERS,
    TRIGGERS,
    Finding,
)
from metrics_adapter.binding.composite import compile_formula_of
from metrics_adapter.kube.fields import Fields
from metrics_adapter.model.formula import FormulaError
from metrics_adapter.model.keda import ScaledObject, ScaleTargetRef, parse_trigger
from scalers.errors import Problems

WORKLOADS = frozenset({"apps/v1.Deployment", "apps/v1.StatefulSet"})
"""The kinds whose pod template KEDA reads for the cpu/memory rules (4 and 5)."""
MAX_LABEL_VALUE = 63
NAME_LABEL = "scaledobject.keda.sh/name"
NOT_CACHED = frozenset({"cpu", "memory", "cron"})
MODIFIERS = "advanced.scalingModifiers"
_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.I)


def gvk(target: ScaleTargetRef) -> str:
    """KEDA's ``GVKString()``: ``apps/v1.Deployment``."""
    return f"{target.api_version}.{target.kind}"


def go_quote(text: str) -> str:
    """Go's ``%q`` of a name, cut after 253 characters (the longest Kubernetes name)."""
    cut = text if len(text) <= 253 else text[:253] + "…"
    return '"' + cut.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Unread:
    """A field that holds something other than an integer: the parser names it, and the
    rules that need it stay silent."""


UNREAD = Unread()


def _int(raw: Mapping[str, Any], key: str) -> int | Unread | None:
    """The integer at ``key`` as KEDA's Go pointer sees it: ``None`` when unset."""
    value = raw.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return UNREAD


def trigger_rules(spec: Mapping[str, Any]) -> list[Finding]:
    """Rule 10, shared by ScaledObjects and ScaledJobs (reason ``incorrect-triggers``)."""
    raw = spec.get("triggers")
    if raw is None or raw == []:
        message = "no triggers defined in the ScaledObject/ScaledJob"
        return [Finding(TRIGGERS, "incorrect-triggers", "triggers", message, ("triggers",))]
    if not isinstance(raw, list):
        return []
    fields = Fields(spec, "", Problems(), []).items("triggers")
    triggers = [parse_trigger(i, f) for i, f in enumerate(fields)]
    findings, seen = [], set()
    for t in triggers:
        if t.use_cached_metrics and t.type in NOT_CACHED:
            path = f"triggers[{t.index}].useCachedMetrics"
            message = f'property "useCachedMetrics" is not supported for {go_quote(t.type)} scaler'
            findings.append(Finding(TRIGGERS, "incorrect-triggers", path, message, (path,)))
        if t.name and t.name in seen:
            path = f"triggers[{t.index}].name"
            message = (
                f"triggerName {go_quote(t.name)} is defined multiple times in the "
                "ScaledObject/ScaledJob, but it must be unique"
            )
            findings.append(Finding(TRIGGERS, "incorrect-triggers", path, message, (path,)))
        if t.name:
            seen.add(t.name)
    return findings


def scaled_object_rules(so: ScaledObject, spec: Mapping[str, Any], dry_run: bool) -> list[Finding]:
    """Rules 5 to 9 of one ScaledObject."""
    return [
        *_scale_to_zero(so, spec, dry_run),
        *_replicas(spec),
        *_fallback(so, spec),
        *_modifiers(so, spec),
        *_names(so),
    ]


def _scale_to_zero(so: ScaledObject, spec: Mapping[str, Any], dry_run: bool) -> list[Finding]:
    """Rule 5: only cpu/memory triggers cannot scale to zero (checked, as in KEDA, only for a
    Deployment or StatefulSet, and not on a dry run)."""
    if dry_run or gvk(so.scale_target_ref) not in WORKLOADS or not so.triggers:
        return []
    minimum = _int(spec, "minReplicaCount")
    if not all(t.is_resource for t in so.triggers) or minimum not in (None, 0):
        return []
    message = (
        "scaledobject has only cpu/memory triggers AND minReplica is 0 "
        "(scale to zero doesn't work in this case)"
    )
    reason = "scale-to-zero-requirements-not-met"
    return [Finding(SCALE_TO_ZERO, reason, "minReplicaCount", message, ("minReplicaCount",))]


def _replicas(spec: Mapping[str, Any]) -> list[Finding]:
    """Rule 6, with KEDA's quirk: an explicit ``minReplicaCount: 0`` counts as 1, an unset
    one as 0; an unset max as 100."""
    low, high = _int(spec, "minReplicaCount"), _int(spec, "maxReplicaCount")
    idle = _int(spec, "idleReplicaCount")
    if isinstance(low, Unread):
        return []
    minimum = 0 if low is None else max(low, 1)
    maximum = 100 if high is None else high
    findings = []
    if not isinstance(maximum, Unread) and minimum > maximum:
        message = f"MinReplicaCount={minimum} must be less than MaxReplicaCount={maximum}"
        findings.append(
            Finding(
                REPLICAS, "incorrect-replicas", "minReplicaCount", message, ("minReplicaCount",)
            )
        )
    if isinstance(idle, int) and idle >= minimum:
        message = f"IdleReplicaCount={idle} must be less than MinReplicaCount={minimum}"
        findings.append(
            Finding(
                REPLICAS, "incorrect-replicas", "idleReplicaCount", message, ("idleReplicaCount",)
            )
        )
    return findings


def _fallback(so: ScaledObject, spec: Mapping[str, Any]) -> list[Finding]:
    """Rule 7, as KEDA ≥ 2.18 applies it (any trigger that is not cpu or memory will do)."""
    raw = spec.get("fallback")
    if not isinstance(raw, Mapping):
        return []
    # Go's non-pointer int32 fields: unset is 0
    read = {k: _int(raw, k) or 0 for k in ("failureThreshold", "replicas")}
    counts = {k: v for k, v in read.items() if isinstance(v, int)}
    if len(counts) == 2 and min(counts.values()) < 0:
        message = (
            f"FailureThreshold={counts['failureThreshold']} & Replicas={counts['replicas']} "
            "must both be greater than or equal to 0"
        )
        negative = tuple(f"fallback.{k}" for k, v in counts.items() if v < 0)
        return [Finding(FALLBACK, "incorrect-fallback", "fallback", message, negative)]
    modifiers = so.advanced.scaling_modifiers
    unmodified = modifiers is None or not modifiers.in_use
    triggers = isinstance(spec.get("triggers"), list)
    if unmodified and triggers and all(t.is_resource for t in so.triggers):
        message = (
            "at least one trigger (that is not cpu or memory) has to have the "
            "`AverageValue` type for the fallback to be enabled"
        )
        return [Finding(FALLBACK, "incorrect-fallback", "fallback", message, ("fallback",))]
    return []


def _modifiers(so: ScaledObject, spec: Mapping[str, Any]) -> list[Finding]:
    """Rule 8 (§3.4): KEDA's ``ValidateAndCompileScalingModifiers``, in its order, each step
    only when the one before passed; and the scalingModifiers fallback needs a formula."""
    m = so.advanced.scaling_modifiers
    findings = []
    if (
        so.fallback is not None
        and so.fallback.behavior == "scalingModifiers"
        and not (m and m.formula)
    ):
        message = (
            "scalingModifiers fallback behavior requires scalingModifiers.formula to be defined"
        )
        path = "fallback.behavior"
        findings.append(
            Finding(SCALING_MODIFIERS, "scaling-modifiers-fallback", path, message, (path,))
        )
    if m is None or not m.in_use:
        return findings
    reason, formula_path = "scaling-modifiers", f"{MODIFIERS}.formula"
    if not m.formula:
        message = "error ScalingModifiers.Formula is mandatory"
        return [
            *findings,
            Finding(SCALING_MODIFIERS, reason, formula_path, message, (formula_path,)),
        ]
    formula = "error validating formula in ScalingModifiers: "
    target_path = f"{MODIFIERS}.target"
    if not m.target:
        message = formula + "formula is given but target is empty"
        return [
            *findings,
            Finding(SCALING_MODIFIERS, reason, target_path, message, (target_path,)),
        ]
    try:
        compile_formula_of(so)  # as the binder compiles it
    except FormulaError as exc:
        return [
            *findings,
            *(
                Finding(SCALING_MODIFIERS, reason, p.path, formula + p.message, (formula_path,))
                for p in exc.problems
            ),
        ]
    target = "error validating target in ScalingModifiers: "
    if not _GO_FLOAT.fullmatch(m.target):
        cause = f"strconv.ParseFloat: parsing {go_quote(m.target)}: invalid syntax"
    elif float(m.target) <= 0:
        cause = "%!w(<nil>)"  # KEDA wraps a nil error when the number is not above 0
    else:
        cause = ""
    if cause:
        message = (
            f"{target}error converting target for scalingModifiers (string->float) to valid "
            f"target: {cause}"
        )
        return [*findings, Finding(SCALING_MODIFIERS, reason, target_path, message, (target_path,))]
    raw = spec.get("advanced")
    metric_type = raw.get("scalingModifiers") if isinstance(raw, Mapping) else None
    if isinstance(metric_type, Mapping) and metric_type.get("metricType") == "Utilization":
        path = f"{MODIFIERS}.metricType"
        message = (
            f"{target}error trigger type is Utilization, but it needs to be AverageValue or "
            "Value for external metrics"
        )
        findings.append(Finding(SCALING_MODIFIERS, reason, path, message, (path,)))
    return findings


def _names(so: ScaledObject) -> list[Finding]:
    """Rule 9 (KEDA ≥ 2.20): the name is a label value; the HPA's name a DNS label."""
    name, hpa = so.meta.name, so.hpa_name
    if len(name.encode()) > MAX_LABEL_VALUE:
        message = (
            f"scaledobject name {go_quote(name)} is {len(name.encode())} characters long; "
            f"must be no more than {MAX_LABEL_VALUE} characters because it is used as the "
            f'"{NAME_LABEL}" label value'
        )
        return [Finding(NAME_LENGTH, "name-too-long", "metadata.name", message)]
    if len(hpa.encode()) > MAX_LABEL_VALUE:
        message = (
            f"HPA name {go_quote(hpa)} derived from scaledobject is {len(hpa.encode())} characters "
            f"long; must be no more than {MAX_LABEL_VALUE} characters; set "
            "spec.advanced.horizontalPodAutoscalerConfig.name to a shorter name or shorten "
            "the scaledobject name"
        )
        path = (
            "advanced.horizontalPodAutoscalerConfig.name"
            if so.advanced.hpa_name
            else "metadata.name"
        )
        return [Finding(NAME_LENGTH, "hpa-name-too-long", path, message)]
    return []


def scaled_object_warnings(so: ScaledObject, spec: Mapping[str, Any]) -> list[str]:
    """What is accepted but has no effect here. KEDA's rule 11 pollingInterval warning is not
    given: this adapter polls every pollingInterval whatever the replica counts, so it always
    matters; its cooldownPeriod warning is (main's condition: idle mode is an unset
    idleReplicaCount)."""
    warnings = []
    if (
        spec.get("cooldownPeriod") is not None
        and so.min_replica_count > 0
        and so.idle_replica_count is None
    ):
        warnings.append(
            "cooldownPeriod: CooldownPeriod is configured but is not relevant. CooldownPeriod is "
            "only relevant when minReplicaCount = 0 or idleReplicaCount is set"
        )
    for t in so.triggers:
        if t.use_cached_metrics and t.type not in NOT_CACHED:
            warnings.append(
                f"triggers[{t.index}].useCachedMetrics: ignored: every read is answered from "
                "memory, polled once per pollingInterval"
            )
    return warnings
