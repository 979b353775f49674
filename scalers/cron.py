"""``cron``: a replica floor inside a recurring time window.

Parsed as KEDA's ``cronScaler``: the schedules are checked at parse time, the time zone only
when the trigger is polled (KEDA loads it then), so a zone this host lacks fails the trigger,
not the object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients
from scalers.cron_spec import canonical
from scalers.errors import ScalerError, quote
from scalers.params import TriggerMetadata, param


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    timezone: str = param("timezone", doc="IANA name, e.g. Europe/Paris")
    start: str = param("start", doc="5-field cron expression")
    end: str = param("end", doc="5-field cron expression")
    desired_replicas: int = param("desiredReplicas", doc="not 0")

    def check(self) -> Iterator[tuple[str, str]]:
        if self.desired_replicas == 0:
            yield "desiredReplicas", '"0" is not a number of replicas to hold (expected 1 or more)'
        for name, expr in (("start", self.start), ("end", self.end)):
            try:
                canonical(expr)
            except ValueError as exc:
                yield name, f"{quote(expr)} is not a 5-field cron expression: {exc}"
        if self.start == self.end:
            yield "end", f"{quote(self.end)} must differ from start"


def in_window(start: str, end: str, now: datetime) -> bool:
    """KEDA's rule: active when the next ``end`` comes no later than the next ``start``."""
    next_start = croniter(start, now).get_next(datetime)
    next_end = croniter(end, now).get_next(datetime)
    return bool(next_end <= next_start)


@dataclass(frozen=True, slots=True)
class CronWindow:
    """Is ``now`` inside the window? No I/O, but scheduled like any other query."""

    timezone: str
    start: str
    end: str
    clock: Callable[[ZoneInfo], datetime] = field(default=datetime.now, compare=False)

    async def run(self, clients: Clients) -> bool:
        return in_window(self.start, self.end, self.clock(_zone(self.timezone)))

    def describe(self) -> str:
        return f"cron {quote(self.start)}..{quote(self.end)} in {self.timezone}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "America", a directory
        raise ScalerError(
            f"timezone {quote(name)} is not an IANA time zone this host knows "
            "(e.g. Europe/Paris, UTC)"
        ) from exc


def _name_part(expr: str) -> str:
    for old, new in ((" ", ""), ("*", "x"), ("/", "Sl"), ("?", "Qm"), (",", "Cm")):
        expr = expr.replace(old, new)
    return expr


@dataclass(frozen=True, kw_only=True)
class CronScaler(Scaler[bool]):
    meta: Metadata
    query: CronWindow

    def measure(self, answer: bool) -> float:
        return float(self.meta.desired_replicas) if answer else 0.0


def build(meta: Metadata) -> CronScaler:
    return CronScaler(
        meta=meta,
        query=CronWindow(meta.timezone, canonical(meta.start), canonical(meta.end)),
        metric_name=normalize(
            f"cron-{meta.timezone}-{_name_part(meta.start)}-{_name_part(meta.end)}"
        ),
        target=1.0,
        activation_target=0.0,
        value_label="replicas",
    )


KIND = ScalerKind(
    type_name="cron",
    keda_name="cronScaler",
    metadata=Metadata,
    build=build,
    summary="desiredReplicas between start and end (cron expressions in a time zone), else 0.",
    example=Example(
        {
            "timezone": "Europe/Paris",
            "start": "0 8 * * 1-5",
            "end": "0 18 * * 1-5",
            "desiredReplicas": "3",
        }
    ),
)
