"""The scaler framework: what a trigger type provides, and how metric names are made.

A trigger becomes a :class:`Scaler`: it names a :class:`Query` (the upstream request,
hashable, so equal requests from many triggers are asked once per interval) and reads
its own value out of the query's answer with :meth:`Scaler.measure`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from scalers.errors import Problems
from scalers.params import TriggerInputs, parse_params

if TYPE_CHECKING:
    from scalers.clients import Clients

A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)
A_contra = TypeVar("A_contra", contravariant=True)
M = TypeVar("M")


class Query(Protocol[A_co]):
    """One upstream request. Equal queries are run once and their answer is shared."""

    def __hash__(self) -> int: ...

    def __eq__(self, other: object) -> bool: ...

    async def run(self, clients: Clients) -> A_co:
        """Ask the source; raise a :class:`~scalers.errors.ScalerError` on failure."""
        ...

    def describe(self) -> str:
        """Where the query goes, for logs: ``GET http://127.0.0.1:8222/jsz?acc=$G``."""
        ...


@dataclass(frozen=True, slots=True)
class Measurement:
    """The HPA's value, and the number KEDA compares with the activation threshold where
    that differs (Kafka: total lag, persistent lag included, before any cap)."""

    value: float
    activity: float


def split(result: float | Measurement) -> tuple[float, float]:
    """``(value, activity)`` of what :meth:`Scaler.measure` returned."""
    if isinstance(result, Measurement):
        return result.value, result.activity
    return result, result


class Scaler(Protocol[A_contra]):
    """One trigger of one ScaledObject, with its parameters parsed."""

    @property
    def query(self) -> Query[Any]: ...

    @property
    def metric_name(self) -> str:
        """KEDA's name for the metric, without the ``s<index>-`` prefix, normalised."""
        ...

    @property
    def target(self) -> float:
        """The HPA target (``lagThreshold``, ``targetValue``, ...)."""
        ...

    @property
    def activation_target(self) -> float:
        """The value must be strictly greater than this for the trigger to be active."""
        ...

    @property
    def value_label(self) -> str:
        """What the value is, in words, for logs: ``lag``, ``value``, ``replicas``."""
        ...

    def measure(self, answer: A_contra) -> float | Measurement:
        """This trigger's value in the query's answer; raise ScalerError if it is not there."""
        ...


@dataclass(frozen=True, slots=True)
class ScalerKind(Generic[M]):
    """A trigger type: its name, its declared metadata, and how to build a scaler from it."""

    type_name: str
    keda_name: str
    """KEDA's Go type name, used as the ``scaler`` label of ``keda_scaler_*`` series."""
    metadata: type[M]
    build: Callable[[M], Scaler[Any]]
    summary: str

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        meta = parse_params(self.metadata, inputs, problems)
        return None if meta is None else self.build(meta)


_NORMALISED = str.maketrans(dict.fromkeys("/.:%()", "-"))


def normalize(name: str) -> str:
    """KEDA's ``NormalizeString``: each of ``/ . : % ( )`` becomes ``-``."""
    return name.translate(_NORMALISED)


def indexed_metric_name(index: int, name: str) -> str:
    """KEDA's ``GenerateMetricNameWithIndex``: ``s<index>-<name>``."""
    return f"s{index}-{name}"


def is_active(value: float, activation_target: float) -> bool:
    """KEDA's activation rule: strictly greater than the activation threshold."""
    return not math.isnan(value) and value > activation_target
