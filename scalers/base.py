"""The scaler framework: what a trigger type provides, and how metric names are made.

A trigger becomes a :class:`Scaler`: it names a :class:`Query` (the upstream request,
hashable, so equal requests from many triggers are asked once per interval) and reads
its own value out of the query's answer with :meth:`Scaler.measure`. Its metadata is a
:class:`~scalers.params.TriggerMetadata`, parsed by :class:`ScalerKind`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from scalers.errors import Problems
from scalers.params import TriggerInputs, TriggerMetadata, parse_params

if TYPE_CHECKING:
    from scalers.clients import Clients

A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)


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


@dataclass(frozen=True, kw_only=True)
class Scaler(ABC, Generic[A]):
    """One trigger of one ScaledObject, with its parameters parsed.

    A trigger type subclasses ``Scaler[<its query's answer>]``, so that mypy holds its
    :attr:`query` and its :meth:`measure` to one answer type; its ``build`` sets the
    fields below once. Only the registry sees ``Scaler[Any]``.
    """

    query: Query[A]
    metric_name: str
    """KEDA's name for the metric, without the ``s<index>-`` prefix, normalised."""
    target: float
    """The HPA target (``lagThreshold``, ``targetValue``, ...)."""
    activation_target: float
    """The value must be strictly greater than this for the trigger to be active."""
    value_label: str
    """What the value is, in words, for logs: ``lag``, ``value``, ``replicas``."""

    @abstractmethod
    def measure(self, answer: A) -> float | Measurement:
        """This trigger's value in the query's answer; raise ScalerError if it is not there."""


M = TypeVar("M", bound=TriggerMetadata)


@dataclass(frozen=True, eq=False)
class Example:
    """One working trigger of a type, as a user writes it. The trigger reference shows it,
    and the contract test over every registered type (``tests/unit/test_trigger_contract.py``)
    builds it, takes each required parameter away, and points it at a closed port."""

    metadata: Mapping[str, str]
    auth: Mapping[str, str] = field(default_factory=dict)
    """What the trigger's TriggerAuthentication provides (``authParams``)."""
    source: str | None = None
    """The parameter that says where the event source is (a URL or ``host:port``);
    ``None`` when there is nothing to reach (``cron``)."""


@dataclass(frozen=True, slots=True)
class ScalerKind(Generic[M]):
    """A trigger type: its name, its declared metadata, and how to build a scaler from it."""

    type_name: str
    keda_name: str
    """KEDA's Go type name, used as the ``scaler`` label of ``keda_scaler_*`` series."""
    metadata: type[M]
    build: Callable[[M], Scaler[Any]]
    summary: str
    example: Example
    guide: str = ""
    """Markdown for the trigger reference, after the example: what a user moving an existing
    setup over needs to know; empty for most types."""

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


def needs_settling(scaler: Scaler[Any]) -> bool:
    """Whether the trigger's metric name or target come from its source (``external``)."""
    return getattr(scaler, "settle", None) is not None


async def settled(scaler: Scaler[Any], clients: Clients) -> Scaler[Any]:
    """The scaler with what only its source can tell (an external scaler's metric name and
    target, from ``GetMetricSpec``), asked once each time the trigger is built, never per
    poll; the scaler itself when it needs nothing. Raises ScalerError."""
    settle: Callable[[Clients], Awaitable[Scaler[Any]]] | None = getattr(scaler, "settle", None)
    return scaler if settle is None else await settle(clients)


def is_active(value: float, activation_target: float) -> bool:
    """KEDA's activation rule: strictly greater than the activation threshold."""
    return not math.isnan(value) and value > activation_target
