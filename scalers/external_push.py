"""``external-push``: an ``external`` scaler that also says "active" the moment it knows.

Everything of :mod:`scalers.external` holds (metadata, spec, values, activity); in addition
the scaler's ``StreamIsActive`` stream is held open for each idle target
(:mod:`scalers.wake_external`). A ``true`` on it is a wake hint: the trigger is polled at
once, and its ``IsActive`` answer activates the target. A ``false`` does nothing: only a
poll deactivates, as in KEDA, where a push scaler's ``false`` is ignored too.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalers.external import EXAMPLE, UNSETTLED_TARGET, ExternalScaler, Kind, Metadata, MetricsQuery
from scalers.wake import Wake


@dataclass(frozen=True, kw_only=True)
class ExternalPushScaler(ExternalScaler):
    def wake(self) -> Wake:
        """The endpoint's stream watcher; this trigger's ScaledObjectRef is its topic."""
        from scalers.wake_external import ExternalWatch  # it builds on the client module

        return Wake(ExternalWatch(self.query.endpoint), self.query.ref)


def build(meta: Metadata) -> ExternalPushScaler:
    return ExternalPushScaler(
        meta=meta,
        query=MetricsQuery(meta.endpoint(), meta.ref),
        metric_name="external-push",  # KEDA's name is the scaler's: settle() sets it
        target=UNSETTLED_TARGET,
        activation_target=0.0,
        value_label="value",
    )


KIND = Kind(
    type_name="external-push",
    keda_name="externalPushScaler",
    metadata=Metadata,
    build=build,
    summary="external, plus the scaler's StreamIsActive held open while the target is idle: "
    "a true wakes the trigger at once.",
    example=EXAMPLE,
)
