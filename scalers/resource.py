"""``cpu`` and ``memory``: read by the HPA itself as Resource metrics; nothing to poll.

The trigger is still parsed here, with every problem reported like any other trigger's,
so the HPA it becomes is valid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scalers.errors import Problems, quote
from scalers.params import TriggerInputs, TriggerMetadata, param, parse_params
from scalers.quantity import parse_quantity

RESOURCE_TYPES = ("cpu", "memory")
METRIC_TYPES = ("Utilization", "AverageValue")


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    value: str = param("value", doc="percent for Utilization, a quantity for AverageValue")
    container_name: str | None = param(
        "containerName", optional=True, doc="scale on one container (a ContainerResource)"
    )
    legacy_type: str | None = param(
        "type", optional=True, enum=METRIC_TYPES, doc="deprecated: use the trigger's metricType"
    )


@dataclass(frozen=True, slots=True)
class ResourceTarget:
    """What the HPA gets: ``Resource`` (or ``ContainerResource``) ``name`` with a target."""

    name: str
    metric_type: str
    value: str
    container_name: str | None = None


def parse(
    resource: str, metric_type: str, inputs: TriggerInputs, problems: Problems
) -> ResourceTarget | None:
    meta = parse_params(Metadata, inputs, problems)
    if meta is None:
        return None
    kind = meta.legacy_type or metric_type
    before = len(problems)
    for name, message in _check(kind, meta.value):
        problems.add(
            f"{inputs.path}.{name}"
            if name
            else inputs.path.removesuffix(".metadata") + ".metricType",
            message,
        )
    if len(problems) > before:
        return None
    return ResourceTarget(resource, kind, meta.value.strip(), meta.container_name)


def _check(metric_type: str, value: str) -> Iterator[tuple[str, str]]:
    if metric_type not in METRIC_TYPES:
        yield "", f"{quote(metric_type)} is not valid for cpu or memory (Utilization, AverageValue)"
    elif metric_type == "Utilization":
        if not value.strip().isdigit() or int(value) <= 0:
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
        self, metric_type: str, inputs: TriggerInputs, problems: Problems
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
