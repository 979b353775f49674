"""``advanced.scalingModifiers``, compiled once when a ScaledObject's triggers are bound: the
formula against the names of its triggers, ``target``, ``activationTarget`` and ``metricType``,
each problem named by its field (a formula's with its ``line:column``) beside the triggers'
own problems, so that one ``Ready=False`` names them all.

KEDA compiles the same when it builds its scalers cache (``ValidateAndCompileScalingModifiers``,
reference keda-scaledjob-webhook-modifiers.md §3.4) and parses ``activationTarget`` only at
run time; here a bad ``activationTarget`` is refused up front, like the rest. The admission
webhook's rule 8 compiles with :func:`compile_formula_of` too, so both read one formula alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metrics_adapter.model.formula import Formula, FormulaError, compile_formula
from metrics_adapter.model.keda import ScaledObject, Trigger
from metrics_adapter.model.scaled_job import Scalable
from scalers.errors import Problems, quote

COMPOSITE_METRIC = "composite-metric"
"""KEDA's name for the one External metric that replaces the others (``CompositeMetricName``)."""
MODIFIERS = "advanced.scalingModifiers"
_GO_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
"""The decimal floats of Go's ``strconv.ParseFloat`` (the HPA's builder reads the same)."""


@dataclass(frozen=True, slots=True)
class Composite:
    """What the composite metric of one ScaledObject is made of."""

    formula: Formula
    target: float
    """The HPA's target for ``composite-metric``."""
    activation_target: float
    """The object is active when the composite value is strictly above this."""
    metric_type: str
    """``AverageValue`` or ``Value``."""
    variables: Mapping[str, str]
    """Each name the formula reads, to its trigger's metric name (``s0-prometheus``)."""


def uses_modifiers(obj: Scalable) -> bool:
    """KEDA's ``IsUsingModifiers``: a ScaledObject whose scalingModifiers set anything."""
    if not isinstance(obj, ScaledObject):
        return False
    modifiers = obj.advanced.scaling_modifiers
    return modifiers is not None and modifiers.in_use


def formula_names(triggers: Iterable[Trigger]) -> frozenset[str]:
    """The names a formula may read: those of the triggers that are not cpu or memory (the
    HPA reads those itself; KEDA leaves them out too). An unnamed trigger cannot be read."""
    return frozenset(t.name for t in triggers if t.name and not t.is_resource)


def compile_formula_of(so: ScaledObject) -> Formula:
    """``so``'s formula, compiled against its triggers' names; raise FormulaError naming
    every problem with its position. ``so`` must have a formula."""
    modifiers = so.advanced.scaling_modifiers
    assert modifiers is not None and modifiers.formula is not None
    return compile_formula(
        modifiers.formula, formula_names(so.triggers), path=f"{MODIFIERS}.formula"
    )


def compile_composite(
    so: ScaledObject, metric_names: Mapping[str, str], problems: Problems
) -> Composite | None:
    """The composite of ``so``, or ``None`` when it uses no modifiers or one is wrong (each
    problem added to ``problems``). ``metric_names`` maps the bound triggers' names to their
    metric names; a trigger that failed to bind is still a name the formula may use."""
    modifiers = so.advanced.scaling_modifiers
    fallback = so.fallback
    per_trigger = fallback is not None and fallback.behavior == "scalingModifiers"
    if per_trigger and (modifiers is None or not modifiers.formula):
        problems.add(
            "fallback.behavior",
            f'"scalingModifiers" needs {MODIFIERS}.formula: failed triggers are given to it as nil',
        )
    if modifiers is None or not modifiers.formula:  # the parser requires it when in use
        return None
    before = len(problems)
    formula = None
    try:
        formula = compile_formula_of(so)
    except FormulaError as exc:
        problems.extend(exc.problems)
    target = _number(modifiers.target, f"{MODIFIERS}.target", problems, positive=True)
    if modifiers.target is None:
        problems.add(f"{MODIFIERS}.target", "is required with a formula")
    activation = _number(modifiers.activation_target, f"{MODIFIERS}.activationTarget", problems)
    if len(problems) > before or formula is None or target is None:
        return None
    return Composite(
        formula=formula,
        target=target,
        activation_target=0.0 if activation is None else activation,
        metric_type=modifiers.metric_type or "AverageValue",
        variables={name: metric_names[name] for name in formula.inputs if name in metric_names},
    )


def _number(
    text: str | None, path: str, problems: Problems, positive: bool = False
) -> float | None:
    if text is None:
        return None
    value = float(text) if _GO_FLOAT.fullmatch(text) else math.nan
    if not math.isfinite(value):
        problems.add(path, f"{quote(text)} is not a number")
        return None
    if positive and value <= 0:
        problems.add(path, f"{quote(text)} must be greater than 0")
        return None
    return value
