"""What the HPA controller would compute from our values (keda-semantics §2).

The HPA object itself, as KEDA builds it, is :mod:`metrics_adapter.hpa_spec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TOLERANCE = 0.1


@dataclass(frozen=True, slots=True)
class Proposal:
    replicas: int
    why: str


def metric_replicas(metric_type: str, value: float, target: float, current: int) -> Proposal:
    """Replicas one External metric asks for, with the formula in numbers."""
    if metric_type == "Value":
        ratio = value / target
        if current > 0 and abs(ratio - 1.0) <= TOLERANCE:
            return Proposal(current, f"{value:g}/{target:g} within 10% of target: keep {current}")
        wanted = math.ceil(current * ratio)
        return Proposal(wanted, f"ceil({current} * {value:g} / {target:g}) = {wanted}")
    wanted = math.ceil(value / target)
    if current > 0 and abs(value / (target * current) - 1.0) <= TOLERANCE:
        return Proposal(current, f"{value:g}/({target:g} * {current}) within 10%: keep {current}")
    return Proposal(wanted, f"ceil({value:g} / {target:g}) = {wanted}")


def min_replicas(min_replica_count: int) -> int:
    """The HPA's ``minReplicas``: KEDA takes the 0 <-> 1 step itself, the HPA never sees 0."""
    return max(min_replica_count, 1)


def clamp(replicas: int, min_replica_count: int, max_replicas: int) -> int:
    """The HPA's bounds for a ScaledObject's ``minReplicaCount`` and ``maxReplicaCount``."""
    return max(min_replicas(min_replica_count), min(replicas, max_replicas))
