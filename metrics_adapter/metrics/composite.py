"""The composite metric of a ScaledObject with scalingModifiers: its formula over the latest
readings of its triggers, and what to serve when they fail (reference
keda-scaledjob-webhook-modifiers.md §3.2, §3.3).

KEDA evaluates the formula at each HPA request; here :func:`compose` runs after each reading
of a trigger of the object, and the store keeps its answer ready, so a request for
``composite-metric`` is a lookup like any other. The store, the activator, the status and
``explain`` all read the one :class:`Outcome` it returns.

What is served, in this order:

1. Classic fallback (``static``, ``currentReplicas``…): once any trigger has failed more than
   ``failureThreshold`` times, the fallback value, not the formula.
2. A trigger failing, below the threshold (or with no fallback): nothing; the HPA holds.
3. A trigger with no value yet: nothing yet.
4. The formula, with each trigger past the threshold given as nil under ``behavior:
   scalingModifiers``; a nil result then serves the fallback value.
5. A result that is NaN or infinite is never served: it says the formula and its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metrics_adapter.binding.composite import COMPOSITE_METRIC, Composite
from metrics_adapter.model.formula import FormulaError
from scalers.errors import quote

if TYPE_CHECKING:  # the store imports this module
    from metrics_adapter.metrics.store import Reading


@dataclass(frozen=True, slots=True)
class CompositeFallback:
    """``spec.fallback`` as the composite metric applies it."""

    threshold: int
    value: float | None
    """The value that makes the HPA compute the fallback replicas (target x R, / current
    replicas for ``Value``); ``None`` when there is none (``Value`` at 0 replicas)."""
    per_trigger: bool
    """``behavior: scalingModifiers``: a trigger past the threshold is nil in the formula."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One evaluation: the formula's inputs, its result, and what is served."""

    inputs: tuple[tuple[str, float | None], ...] = ()
    """Each name the formula reads and the value it was given (``None``: nil), when it ran."""
    result: float | None = None
    """What the formula gave; ``None`` when it gave nil or did not run."""
    served: float | None = None
    """What the HPA reads: the result, or the fallback value."""
    error: str | None = None
    """Why nothing is served (the HPA holds)."""
    fallback: str | None = None
    """Why the fallback value is served instead of the formula's result."""
    active: bool = False
    """The served value is above ``activationTarget``; a fallback counts as active."""

    @property
    def waiting(self) -> bool:
        """Not every trigger has been read yet."""
        return self.served is None and self.error is None


def compose(
    composite: Composite, readings: Mapping[str, Reading], fallback: CompositeFallback | None
) -> Outcome:
    """The composite metric from ``readings`` (every polled trigger of the object, by metric
    name, lower case as the store keys them) and the object's ``fallback``."""
    triggers = {k: r for k, r in readings.items() if k != COMPOSITE_METRIC}
    failing = {k: r for k, r in triggers.items() if r.error is not None}
    past = {
        k for k, r in failing.items() if fallback is not None and r.failures > fallback.threshold
    }
    if past and fallback is not None and not fallback.per_trigger:
        reason = f"{_names(failing, past)} failing past failureThreshold {fallback.threshold}"
        if fallback.value is not None:
            return Outcome(served=fallback.value, fallback=reason, active=True)
        return Outcome(error=f"{reason}, and the fallback needs a replica (metricType Value)")
    errors = [r for k, r in failing.items() if k not in past]
    if errors:
        return Outcome(error="; ".join(f"{r.metric_name} failing: {r.error}" for r in errors))
    if any(r.value is None for r in triggers.values() if r.error is None):
        return Outcome()  # the first poll of a trigger is still to come
    inputs = tuple(
        (name, _input(triggers.get(composite.variables.get(name, "").lower()), past))
        for name in composite.formula.inputs
    )
    return _evaluate(composite, inputs, fallback, _names(failing, past))


def _input(reading: Reading | None, past: set[str]) -> float | None:
    if reading is None or reading.metric_name.lower() in past:
        return None
    return reading.value


def _evaluate(
    composite: Composite,
    inputs: tuple[tuple[str, float | None], ...],
    fallback: CompositeFallback | None,
    in_fallback: str,
) -> Outcome:
    formula = composite.formula
    given = ", ".join(f"{n}={'nil' if v is None else f'{v:g}'}" for n, v in inputs)
    where = f"formula {quote(formula.text)}" + (f" with {given}" if given else "")
    try:
        result = formula.evaluate(dict(inputs))
    except FormulaError as exc:
        return Outcome(inputs, error=f"{where}: " + "; ".join(p.message for p in exc.problems))
    if result is None:
        reason = f"{where} gave nil"
        if fallback is not None and fallback.value is not None and in_fallback:
            reason += f" ({in_fallback} in fallback)"
            return Outcome(inputs, served=fallback.value, fallback=reason, active=True)
        return Outcome(inputs, error=f"{reason}: there is no fallback value to serve")
    if not math.isfinite(result):
        shown = "NaN" if math.isnan(result) else f"{'+' if result > 0 else '-'}Inf"  # as Go
        return Outcome(inputs, result, error=f"{where} gave {shown}: not served")
    return Outcome(inputs, result, served=result, active=result > composite.activation_target)


def _names(failing: Mapping[str, Reading], keys: set[str]) -> str:
    return ", ".join(failing[k].metric_name for k in sorted(keys))
