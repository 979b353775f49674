"""``cpu`` and ``memory``: read by the HPA itself as Resource metrics; nothing to poll.

The trigger is still parsed here, with every problem reported like any other trigger's,
so the HPA it becomes is valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from scalers.errors import Problems, quote
from scalers.params import TriggerInputs, TriggerMetadata, param, parse_params
from scalers.quantity import parse_quantity

RESOURCE_TYPES = ("cpu", "memory")
_PERCENT = re.compile(r"\+?[0-9]{1,10}")
METRIC_TYPES = ("Utilization", "AverageValue")


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    value: str = param("value", doc="percent for Utilization, a quantity for AverageValue")
    container_name: str | None = param(
        "containerName", optional=True, doc="scale on one container (a ContainerResource)"
    )
    legacy_type: str | None = param(
        "type", optional=True, doc="removed in KEDA v2.18: refused, use the trigger's metricType"
    )


@dataclass(frozen=True, slots=True)
class ResourceTarget:
    """What the HPA gets: ``Resource`` (or ``ContainerResource``) ``name`` with a target."""

    name: str
    metric_type: str
    value: str
    container_name: str | None = None


def parse(
    resource: str, metric_type: str | None, inputs: TriggerInputs, problems: Problems
) -> ResourceTarget | None:
    """``metric_type`` is the trigger's ``metricType``, ``None`` when unset: KEDA refuses a
    cpu or memory trigger without one (``cpu_memory_scaler.go``: "unknown metric type")."""
    meta = parse_params(Metadata, inputs, problems)
    if meta is None:
        return None
    kind = metric_type or ""
    before = len(problems)
    if meta.legacy_type is not None:  # KEDA's deprecated= tag: set at all is an error
        problems.add(
            f"{inputs.path}.type",
            "was removed in KEDA v2.18; set the trigger's metricType (Utilization or "
            "AverageValue) instead",
        )
    for name, message in _check(kind, meta.value):
        problems.add(
            f"{inputs.path}.{name}"
            if name
            else inputs.path.removesuffix(".metadata") + ".metricType",
            message,
        )
    if len(problems) > before:
        return None
    value = meta.value.strip()
    if kind == "Utilization":
        value = str(int(value))  # the HPA's integer: "+70" is 70
    return ResourceTarget(resource, kind, value, meta.container_name)


def _check(metric_type: str, value: str) -> Iterator[tuple[str, str]]:
    if not metric_type:
        yield "", "is required for cpu and memory triggers (Utilization or AverageValue)"
    elif metric_type not in METRIC_TYPES:
        yield "", f"{quote(metric_type)} is not valid for cpu or memory (Utilization, AverageValue)"
    elif metric_type == "Utilization":  # KEDA: ParseInt(value, 10, 32); the HPA: above 0
        text = value.strip()
        if not _PERCENT.fullmatch(text) or not 0 < int(text) < 2**31:
            yield "value", f"{quote(value)} must be a whole percentage above 0 for Utilization"
    else:
        try:
            if parse_quantity(value) <= 0:
                yield "value", f"{quote(value)} must be above 0"
        except ValueError:
            yield "value", f"{quote(value)} is not a Kubernetes quantity"


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """A trigger type the HPA reads itself, as a Resource metric: parsed and checked like
    any other trigger type, but never polled or served."""

    type_name: str
    summary: str
    metadata: type[Metadata] = Metadata

    def create(
        self, metric_type: str | None, inputs: TriggerInputs, problems: Problems
    ) -> ResourceTarget | None:
        return parse(self.type_name, metric_type, inputs, problems)


KINDS = tuple(
    ResourceKind(
        name,
        f"{name} usage, read by the HPA itself as a Resource metric (trigger metricType "
        "Utilization or AverageValue); nothing is polled.",
    )
    for name in RESOURCE_TYPES
)
