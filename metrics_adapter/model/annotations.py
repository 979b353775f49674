"""KEDA's annotations on a ScaledObject, and how KEDA reads their values; and our own, in
our own domain (``metrics-adapter.io/``), for what we do on purpose differently from KEDA."""

from __future__ import annotations

from collections.abc import Mapping

PAUSED = "autoscaling.keda.sh/paused"
PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
PAUSED_SCALE_IN = "autoscaling.keda.sh/paused-scale-in"
PAUSED_SCALE_OUT = "autoscaling.keda.sh/paused-scale-out"
FORCE_ACTIVATION = "autoscaling.keda.sh/force-activation"
EXCLUDED_LABELS = "scaledobject.keda.sh/hpa-excluded-labels"

ACTIVATION = "metrics-adapter.io/activation"
"""``one-replica``: activate to ``max(minReplicaCount, 1)`` as KEDA does, not straight to
the replicas the HPA's first step would reach."""
ONE_REPLICA = "one-replica"

_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def flag(annotations: Mapping[str, str], name: str) -> bool:
    """KEDA's boolean annotations: absent is false, and a value Go's ParseBool cannot read
    counts as true (so a typo pauses rather than silently not pausing)."""
    value = annotations.get(name)
    return value is not None and value not in _GO_FALSE


def paused(annotations: Mapping[str, str]) -> bool:
    """Paused: ``paused`` set (as :func:`flag` reads it), or ``paused-replicas`` present."""
    return PAUSED_REPLICAS in annotations or flag(annotations, PAUSED)


def forced(annotations: Mapping[str, str]) -> bool:
    """``force-activation: "true"``: strictly true, since activating by mistake scales up."""
    return annotations.get(FORCE_ACTIVATION, "").strip().lower() == "true"


def one_replica_activation(annotations: Mapping[str, str]) -> bool:
    """``metrics-adapter.io/activation: one-replica`` (case and spaces forgiven). Any other
    value keeps the default: a typo costs an early scale-up the HPA would make anyway,
    whereas reading it as one-replica would silently bring back the slow start."""
    return annotations.get(ACTIVATION, "").strip().lower() == ONE_REPLICA
