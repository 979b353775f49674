"""The in-memory MetricStore: the only thing the request path reads.

Each reading keeps the last good value, when it was measured, the latest error and the
count of consecutive failures; the serialised answer is built once per poll, not per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from metrics_adapter.errors import NotFound, ServiceUnavailable
from metrics_adapter.kube import wire
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


@dataclass(slots=True)
class _Object:
    readings: dict[str, Reading]
    broken: str | None = None
    fallbacks: dict[str, Fallback] = field(default_factory=dict)


class MetricStore:
    def __init__(self) -> None:
        self._objects: dict[ObjectRef, _Object] = {}

    # Writers: the poller and the object loader.

    def register(self, so: ObjectRef, metric_names: Iterable[str]) -> None:
        """Declare an object's metrics, keeping readings (and fallbacks) of names it had."""
        old = self._objects.get(so)
        previous = old.readings if old else {}
        keys = {name.lower(): name for name in metric_names}
        self._objects[so] = _Object(
            {key: previous.get(key, Reading(name)) for key, name in keys.items()},
            fallbacks={k: v for k, v in (old.fallbacks if old else {}).items() if k in keys},
        )

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
        return reading

    def record_error(self, so: ObjectRef, metric: str, error: str) -> Reading | None:
        obj = self._objects.get(so)
        key = metric.lower()
        if obj is None or key not in obj.readings:
            return None
        old = obj.readings[key]
        reading = replace(old, error=error, failures=old.failures + 1, active=False)
        obj.readings[key] = reading = self._with_fallback(obj, key, reading)
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

    def broken_reason(self, so: ObjectRef) -> str | None:
        obj = self._objects.get(so)
        return obj.broken if obj else None

    def answer(self, namespace: str, so_name: str, metric: str) -> bytes:
        """The serialised ``ExternalMetricValueList`` for one request: memory only."""
        obj = self._objects.get(ObjectRef(namespace, so_name))
        if obj is None:
            raise NotFound(f"ScaledObject {namespace}/{so_name} not found")
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
            raise ServiceUnavailable(
                f"metric:{reading.metric_name} has no value yet: the first poll has not completed"
            )
        return reading.body
