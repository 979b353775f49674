"""Trigger parameters declared once, as typed dataclass fields, and filled by one parser.

A scaler declares its metadata like this::

    @dataclass(frozen=True)
    class Metadata(TriggerMetadata):
        stream: str = param("stream")
        lag_threshold: int = param("lagThreshold", default="10", gt=0)

        def check(self) -> Iterator[tuple[str, str]]:  # optional: rules across fields
            ...

The parser looks each parameter up in the sources of its ``order`` (KEDA's
``triggerMetadata``, ``resolvedEnv`` via ``<name>FromEnv``, ``authParams``), applies the
default, converts it to the field's type, checks enum and range, and reports every
problem of the trigger at once, each with its field path.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from scalers.errors import Problems, quote
from scalers.identity import PodIdentity


class Source(enum.Enum):
    """Where a parameter may come from, named as in KEDA's ``order=`` tags."""

    TRIGGER = "triggerMetadata"
    ENV = "resolvedEnv"
    AUTH = "authParams"


@dataclass(frozen=True, slots=True)
class Param:
    """How one parameter is found and checked."""

    name: str
    order: tuple[Source, ...] = (Source.TRIGGER,)
    aliases: tuple[str, ...] = ()
    """More names for the parameter (KEDA's ``name=address;addresses``): in each source of
    :attr:`order`, :attr:`name` then each alias is looked up, and the first set one wins."""
    default: str | None = None
    """Applied, as if the user wrote it, when no source has the parameter."""
    optional: bool = False
    enum: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    doc: str = ""
    secret: bool = False
    """Kept out of ``repr``, so no log line or error built from the object can show it."""
    target: bool = False
    """The trigger's HPA target: not required of a trigger that only feeds a formula
    (:attr:`TriggerInputs.as_metric_source`), where KEDA's scaler does not require it."""

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional


def param(
    name: str,
    *,
    order: tuple[Source, ...] = (Source.TRIGGER,),
    default: str | None = None,
    optional: bool = False,
    enum: tuple[str, ...] = (),
    ge: float | None = None,
    gt: float | None = None,
    doc: str = "",
    secret: bool = False,
    target: bool = False,
    aliases: tuple[str, ...] = (),
) -> Any:
    """Declare a metadata field; see the module docstring."""
    spec = Param(name, order, aliases, default, optional, enum, ge, gt, doc, secret, target)
    return field(metadata={"param": spec}, repr=not secret)


@dataclass(frozen=True, slots=True)
class TriggerInputs:
    """Everything a trigger's parameters may be read from, already resolved."""

    metadata: Mapping[str, str]
    resolved_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    auth_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    path: str = "metadata"
    """Prefix for problem paths, e.g. ``triggers[1].metadata``."""
    as_metric_source: bool = False
    """KEDA's ``AsMetricSource``: the trigger's value feeds a ScaledObject's scalingModifiers
    formula, and the HPA's target is the formula's, so a :attr:`Param.target` may be unset."""
    pod_identity: PodIdentity | None = None
    """The authentication's ``podIdentity`` (provider other than ``none``), which KEDA hands
    to scalers beside the authParams."""
    namespace: str | None = None
    """The ScaledObject's or ScaledJob's namespace (KEDA's ``ScalableObjectNamespace``), for
    the triggers that read the cluster itself (``kubernetes-workload``)."""
    name: str | None = None
    """The ScaledObject's or ScaledJob's name (KEDA's ``ScalableObjectName``), which external
    scalers receive in their ``ScaledObjectRef``."""

    @property
    def auth_path(self) -> str:
        """Where authParams come from: ``triggers[1].authenticationRef``."""
        trigger = self.path.removesuffix(".metadata")
        return f"{trigger}.authenticationRef" if trigger != self.path else "authParams"


class TriggerMetadata:
    """What every trigger's metadata class is: its fields declared with :func:`param`,
    plus the checks that span fields, which :func:`parse_params` runs once every field
    has parsed."""

    __slots__ = ()

    def check(self) -> Iterator[tuple[str, str]]:
        """Problems between fields, as ``(parameter name, message)``: ``account`` or
        ``accountID`` is required. None by default."""
        return iter(())


M = TypeVar("M", bound=TriggerMetadata)


def declared_params(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], Param]]:
    """A metadata class's parameters, found once: thousands of triggers share a class."""
    declared = _DECLARED.get(cls)
    if declared is None:
        found = ((f, f.metadata.get("param")) for f in dataclasses.fields(cls))
        declared = _DECLARED[cls] = tuple((f, s) for f, s in found if isinstance(s, Param))
    return iter(declared)


_DECLARED: dict[type[Any], tuple[tuple[dataclasses.Field[Any], Param], ...]] = {}


def parse_params(cls: type[M], inputs: TriggerInputs, problems: Problems) -> M | None:
    """Fill the metadata dataclass ``cls`` from ``inputs``; ``None`` if anything was wrong."""
    hints = _hints(cls)
    values: dict[str, Any] = {}
    before = len(problems)
    for f, spec in declared_params(cls):
        found = _lookup(spec, inputs, problems)
        if found is None:
            raw, where = spec.default, f"{inputs.path}.{spec.name}"
        else:
            raw, where = found
        if raw is None:
            if spec.required and not (spec.target and inputs.as_metric_source):
                problems.add(f"{inputs.path}.{spec.name}", "is required")
            values[f.name] = None
            continue
        if spec.target and inputs.as_metric_source:  # not the HPA's target: any number
            spec = dataclasses.replace(spec, gt=None, ge=None)
        converted = _convert(raw, hints[f.name], spec, where, problems)
        values[f.name] = converted
    if len(problems) > before:
        return None
    instance = cls(**values)
    for name, message in instance.check():
        problems.add(f"{inputs.path}.{name}", message)
    return None if len(problems) > before else instance


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """Type hints of a metadata class, resolved once: thousands of triggers share a class."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _lookup(spec: Param, inputs: TriggerInputs, problems: Problems) -> tuple[str, str] | None:
    for source in spec.order:
        for name in (spec.name, *spec.aliases):
            found = _lookup_in(source, name, inputs, problems)
            if found is not None:
                return found
    return None


def _lookup_in(
    source: Source, name: str, inputs: TriggerInputs, problems: Problems
) -> tuple[str, str] | None:
    if source is Source.TRIGGER and inputs.metadata.get(name, "").strip():
        return inputs.metadata[name].strip(), f"{inputs.path}.{name}"
    if source is Source.ENV:
        key = f"{name}FromEnv"
        var = inputs.metadata.get(key, "").strip()
        if var:
            if var in inputs.resolved_env:  # set but empty: the next source, as in KEDA
                value = inputs.resolved_env[var].strip()
                return (value, f"{inputs.path}.{key}") if value else None
            problems.add(
                f"{inputs.path}.{key}",
                f"environment variable {quote(var)} is not set on the scale target's container",
            )
    elif source is Source.AUTH and inputs.auth_params.get(name, "").strip():
        return inputs.auth_params[name].strip(), f"{inputs.auth_path}.{name}"
    return None


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
"""Go's ``strconv.ParseBool``, which KEDA's parser uses: ``yes`` or ``tRuE`` is refused."""
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
"""A JSON number: KEDA reads numeric parameters with ``json.Unmarshal``, so ``+5``, ``.5``,
``010``, ``1_000`` and ``inf`` are not numbers to it (Python's ``int``/``float`` take them)."""


def _convert(raw: str, hint: Any, spec: Param, where: str, problems: Problems) -> Any:
    kind = _unwrap_optional(hint)
    text = raw.strip()
    # A list's enum holds for each element (KEDA's ``authModes: "tls,basic"``).
    values = [p.strip() for p in text.split(",")] if kind == tuple[str, ...] else [text]
    if spec.enum and any(v not in spec.enum for v in values):
        problems.add(where, f"{quote(raw)} is not one of: {', '.join(spec.enum)}")
        return None
    if kind is str:
        return raw
    if kind is bool:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        problems.add(where, f"{quote(raw)} is not a boolean (expected true or false)")
        return None
    if kind is datetime.timedelta:
        seconds = parse_duration(text)
        if seconds is None:
            problems.add(where, f"{quote(raw)} is not a duration (30s, 1m30s) or milliseconds")
            return None
        if seconds < 0:
            problems.add(where, f"{quote(raw)} is negative")
            return None
        return datetime.timedelta(seconds=seconds)
    if kind is int:
        if not _INTEGER.fullmatch(text):
            problems.add(where, f"{quote(raw)} is not " + _int_or_number(text))
            return None
        # KEDA reads integers as Go's int64 (20 characters at most: no huge int() here)
        number: float = int(text) if len(text) <= 20 else 2**63
        if not -(2**63) <= number < 2**63:
            problems.add(where, f"{quote(raw)} is out of range for a 64-bit integer")
            return None
    elif kind is float:
        if not _NUMBER.fullmatch(text):
            problems.add(where, f"{quote(raw)} is not a number")
            return None
        number = float(text)
        if not math.isfinite(number):  # 1e999: a JSON number, too large for a float64
            problems.add(where, f"{quote(raw)} is out of range for a number")
            return None
    elif kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    else:  # pragma: no cover - a declaration error, caught by the registry tests
        raise TypeError(f"parameter {spec.name}: unsupported type {hint!r}")
    if spec.gt is not None and not number > spec.gt:
        problems.add(where, f"{quote(raw)} must be greater than {spec.gt:g}")
        return None
    if spec.ge is not None and not number >= spec.ge:
        problems.add(where, f"{quote(raw)} must be at least {spec.ge:g}")
        return None
    return number


def _int_or_number(text: str) -> str:
    return "a whole number" if _NUMBER.fullmatch(text) else "a number"


_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}


_GO_INT64_MAX = 2**63 - 1
_GO_DURATION_MAX_SECONDS = _GO_INT64_MAX / 1e9
"""A Go ``time.Duration`` counts nanoseconds in an int64: about 292 years."""


def parse_duration(text: str) -> float | None:
    """Seconds in KEDA's ``time.Duration`` parameters: a Go duration (``1m30s``, ``-2s``),
    else a whole number of milliseconds (``500``); ``None`` if it is neither."""
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in "+-" else text
    if body.isascii() and body.isdigit():  # Go's ParseInt takes a sign too
        # ParseInt refuses what int64 cannot hold; so do we, before int() meets a number too
        # long for it or float() one too large.
        if len(body) > len(str(_GO_INT64_MAX)) or int(body) > _GO_INT64_MAX:
            return None
        return sign * int(body) / 1000
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0 or total > _GO_DURATION_MAX_SECONDS:
        return None  # Go's ParseDuration: "invalid duration" past int64 nanoseconds
    return sign * total


def _unwrap_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def type_name(hint: Any) -> str:
    """A short name of a parameter's type, for ``metrics-adapter triggers``."""
    kind = _unwrap_optional(hint)
    if kind == tuple[str, ...]:
        return "list"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return "duration" if kind is datetime.timedelta else names.get(kind, str(kind))
