"""KEDA's per-trigger series, kept as one small row per trigger and made into families at
scrape time.

``keda_scaler_metrics_value``, ``keda_scaler_metrics_latency_seconds``, ``keda_scaler_active``
and ``keda_scaler_detail_errors_total`` have one series per trigger. As the client library's
labelled children they cost four objects per trigger, each with its own lock and value
holder: about 1.7 KiB a trigger (17 MiB at 10,000, measured with tracemalloc) and a lock
taken for every figure of every poll. Here a trigger is one :class:`Row` of four numbers
under its labels; /metrics is made from the rows when scraped, in the event loop like every
write (prometheus-client's ASGI app collects in the loop), so no lock is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Labels = tuple[str, ...]


@dataclass(slots=True)
class Row:
    """A trigger's figures; ``None``: the series has not been written (not shown)."""

    value: float | None = None
    latency: float | None = None
    active: float | None = None
    errors: float | None = None


class ScalerSeries(Collector):
    """The four per-trigger families, from a :class:`Row` per label set."""

    def __init__(self, labelnames: Labels) -> None:
        self._labelnames = labelnames
        """As the client library's series name theirs (the docs' test reads it)."""
        self._rows: dict[Labels, Row] = {}

    def row(self, labels: Labels) -> Row:
        """The row of ``labels``, made empty on first use."""
        row = self._rows.get(labels)
        if row is None:
            row = self._rows[labels] = Row()
        return row

    def forget(self, labels: Labels) -> None:
        """Stop showing ``labels``' series."""
        self._rows.pop(labels, None)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        value, latency, active, errors = families = self._families()
        for labels, row in self._rows.items():
            if row.value is not None:
                value.add_metric(labels, row.value)
            if row.latency is not None:
                latency.add_metric(labels, row.latency)
            if row.active is not None:
                active.add_metric(labels, row.active)
            if row.errors is not None:
                errors.add_metric(labels, row.errors)
        return families

    def _families(
        self,
    ) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        labels = self._labelnames
        return (
            GaugeMetricFamily(
                "keda_scaler_metrics_value",
                "The current value of each scaler's metric (after fallback).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keda_scaler_metrics_latency_seconds",
                "Latency of the last upstream request for each scaler's metric.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keda_scaler_active", "1 when the scaler is active, else 0.", labels=labels
            ),
            CounterMetricFamily(
                "keda_scaler_detail_errors",
                "Errors reading each scaler's source.",
                labels=labels,
            ),
        )
