"""The in-memory MetricStore: the only thing the request path reads.

Each reading keeps the last good value, when it was measured, the latest error and the
count of consecutive failures; the serialised answer is built once per poll, not per request.
An object with scalingModifiers also has the reading ``composite-metric``, composed again
(:func:`~metrics_adapter.metrics.composite.compose`) whenever one of its triggers is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from metrics_adapter.binding.composite import COMPOSITE_METRIC, Composite
from metrics_adapter.errors import NotFound, NoValueYet, ServiceUnavailable, UnknownObject
from metrics_adapter.kube import wire
from metrics_adapter.metrics.composite import CompositeFallback, Outcome, compose
from metrics_adapter.model.keda import ObjectRef


@dataclass(frozen=True, slots=True)
class Reading:
    metric_name: str
    value: float | None = None
    """The last good value; kept through failures for `explain` and telemetry, never served."""
    measured_at: datetime | None = None
    activity: float | None = None
    """What activation compared (the value, except where KEDA uses another number)."""
    active: bool = False
    error: str | None = None
    """Why the latest poll failed; ``None`` once a poll succeeds."""
    failures: int = 0
    body: bytes | None = None
    fallback_body: bytes | None = None
    """The synthetic answer served while the trigger fails past ``fallback.failureThreshold``."""

    @property
    def healthy(self) -> bool:
        return self.error is None and self.value is not None

    @property
    def in_fallback(self) -> bool:
        return self.error is not None and self.fallback_body is not None


@dataclass(frozen=True, slots=True)
class Fallback:
    """Serve ``value`` once a metric has failed more than ``threshold`` times in a row."""

    threshold: int
    value: float


@dataclass(frozen=True, slots=True)
class Composed:
    """An object's composite metric: how it is made, its last evaluation, its reading."""

    composite: Composite
    outcome: Outcome
    reading: Reading


@dataclass(slots=True)
class _Object:
    readings: dict[str, Reading]
    broken: str | None = None
    fallbacks: dict[str, Fallback] = field(default_factory=dict)
    composite: Composite | None = None
    composite_fallback: CompositeFallback | None = None
    outcome: Outcome = field(default_factory=Outcome)


class MetricStore:
    def __init__(self) -> None:
        self._objects: dict[ObjectRef, _Object] = {}

    # Writers: the poller and the object loader.

    def register(
        self, so: ObjectRef, metric_names: Iterable[str], composite: Composite | None = None
    ) -> None:
        """Declare an object's metrics, keeping readings (and fallbacks) of names it had;
        with ``composite``, ``composite-metric`` too, composed from them."""
        old = self._objects.get(so)
        previous = old.readings if old else {}
        keys = {name.lower(): name for name in metric_names}
        if composite is not None:
            keys[COMPOSITE_METRIC] = COMPOSITE_METRIC
        obj = self._objects[so] = _Object(
            {key: previous.get(key, Reading(name)) for key, name in keys.items()},
            fallbacks={k: v for k, v in (old.fallbacks if old else {}).items() if k in keys},
            composite=composite,
            composite_fallback=old.composite_fallback if old and composite else None,
        )
        self._compose(obj)

    def mark_broken(self, so: ObjectRef, reason: str) -> None:
        """The object could not be parsed or bound: requests for it get 503 with ``reason``."""
        self._objects[so] = _Object({}, broken=reason)

    def unregister(self, so: ObjectRef) -> None:
        self._objects.pop(so, None)

    def record_value(
        self,
        so: ObjectRef,
        metric: str,
        value: float,
        active: bool,
        measured_at: datetime,
        activity: float | None = None,
    ) -> Reading | None:
        obj = self._objects.get(so)
        key = metric.lower()
        if obj is None or key not in obj.readings:
            return None
        reading = Reading(
            metric_name=metric,
            value=value,
            measured_at=measured_at,
            activity=value if activity is None else activity,
            active=active,
            body=wire.external_metric_value_list(metric, value, measured_at),
        )
        obj.readings[key] = reading
        self._compose(obj)
        return reading

    def record_error(self, so: ObjectRef, metric: str, error: str) -> Reading | None:
        obj = self._objects.get(so)
        key = metric.lower()
        if obj is None or key not in obj.readings:
            return None
        old = obj.readings[key]
        reading = replace(old, error=error, failures=old.failures + 1, active=False)
        obj.readings[key] = reading = self._with_fallback(obj, key, reading)
        self._compose(obj)
        return reading

    def set_fallback(self, so: ObjectRef, metric: str, fallback: Fallback | None) -> None:
        """Configure (or, with ``None``, remove) a metric's fallback; applies at once to a
        reading already failing past the threshold."""
        obj = self._objects.get(so)
        key = metric.lower()
        if obj is None or key not in obj.readings:
            return
        if fallback is None:
            obj.fallbacks.pop(key, None)
        else:
            obj.fallbacks[key] = fallback
        obj.readings[key] = self._with_fallback(obj, key, obj.readings[key])

    def set_composite_fallback(self, so: ObjectRef, fallback: CompositeFallback | None) -> None:
        """Configure (or remove) what the composite metric serves when triggers fail."""
        obj = self._objects.get(so)
        if obj is None or obj.composite is None:
            return
        obj.composite_fallback = fallback
        self._compose(obj)

    @staticmethod
    def _compose(obj: _Object) -> None:
        """Compose the composite metric again from the object's readings."""
        if obj.composite is None:
            return
        obj.outcome = outcome = compose(obj.composite, obj.readings, obj.composite_fallback)
        old = obj.readings[COMPOSITE_METRIC]
        now = datetime.now(UTC)
        if outcome.fallback is not None:
            assert outcome.served is not None
            body = wire.external_metric_value_list(COMPOSITE_METRIC, outcome.served, now)
            reading = replace(old, error=outcome.fallback, active=True, fallback_body=body)
        elif outcome.error is not None:
            reading = replace(old, error=outcome.error, active=False, fallback_body=None)
        elif outcome.served is None:
            reading = Reading(COMPOSITE_METRIC)
        else:
            measured = max(
                (r.measured_at for r in obj.readings.values() if r.measured_at), default=now
            )
            reading = Reading(
                metric_name=COMPOSITE_METRIC,
                value=outcome.served,
                measured_at=measured,
                activity=outcome.served,
                active=outcome.active,
                body=wire.external_metric_value_list(COMPOSITE_METRIC, outcome.served, measured),
            )
        obj.readings[COMPOSITE_METRIC] = reading

    @staticmethod
    def _with_fallback(obj: _Object, key: str, reading: Reading) -> Reading:
        fallback = obj.fallbacks.get(key)
        if reading.error is None or fallback is None or reading.failures <= fallback.threshold:
            return replace(reading, fallback_body=None) if reading.fallback_body else reading
        body = wire.external_metric_value_list(
            reading.metric_name, fallback.value, datetime.now(UTC)
        )
        return replace(reading, fallback_body=body)

    # Readers.

    def objects(self) -> list[ObjectRef]:
        """ScaledObjects, then ScaledJobs (their refs are ScaledJobRefs), each by name."""
        return sorted(self._objects, key=lambda r: (type(r) is not ObjectRef, r.namespace, r.name))

    def readings(self, so: ObjectRef) -> Mapping[str, Reading]:
        obj = self._objects.get(so)
        return dict(obj.readings) if obj else {}

    def composite(self, so: ObjectRef) -> Composed | None:
        """The object's composite metric, when it uses scalingModifiers."""
        obj = self._objects.get(so)
        if obj is None or obj.composite is None:
            return None
        return Composed(obj.composite, obj.outcome, obj.readings[COMPOSITE_METRIC])

    def broken_reason(self, so: ObjectRef) -> str | None:
        obj = self._objects.get(so)
        return obj.broken if obj else None

    def answer(self, namespace: str, so_name: str, metric: str) -> bytes:
        """The serialised ``ExternalMetricValueList`` for one request: memory only."""
        obj = self._objects.get(ObjectRef(namespace, so_name))
        if obj is None:
            raise UnknownObject(f"ScaledObject {namespace}/{so_name} not found")
        if obj.broken is not None:
            raise ServiceUnavailable(
                f"ScaledObject {namespace}/{so_name} is not ready: {obj.broken}"
            )
        reading = obj.readings.get(metric.lower())
        if reading is None:
            known = ", ".join(r.metric_name for r in obj.readings.values()) or "none"
            raise NotFound(
                f"no matching metrics found for {metric} in ScaledObject "
                f"{namespace}/{so_name} (its metrics: {known})"
            )
        if reading.fallback_body is not None and reading.error is not None:
            return reading.fallback_body
        if reading.error is not None:
            raise ServiceUnavailable(
                f"metric:{reading.metric_name} encountered error: {reading.error}"
            )
        if reading.body is None:
            raise NoValueYet(
                f"metric:{reading.metric_name} has no value yet: the first poll has not completed"
            )
        return reading.body
