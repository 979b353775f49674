"""What kube-apiserver's strict field validation would say of an object, without a cluster.

A CRD's structural schema checked the way the API server checks it on a create with
``fieldValidation=Strict``: a field the schema does not declare is an error (the server would
otherwise prune it), as are a wrong type, a value outside an enum and a broken bound. Only the
keywords our CRDs and KEDA's JobSpec schema use are understood; any other raises, so a schema
this cannot read is never passed silently. The e2e tests make the same checks against a real
kube-apiserver; this lets the unit tests name the exact field without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
_UNDERSTOOD = {
    "type",
    "description",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "default",
    "nullable",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}


def violations(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """Every problem with ``obj`` under a CRD version's ``openAPIV3Schema``, as ``path: what``.

    The root ``metadata`` is ObjectMeta, which the server checks itself, as it does here."""
    rest = {k: v for k, v in obj.items() if k != "metadata"}
    return list(_check(schema, rest, ""))


def _check(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    unknown = set(schema) - _UNDERSTOOD
    if unknown:
        raise ValueError(f"{path or '<root>'}: schema keywords not understood: {sorted(unknown)}")
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable"):
            yield f"{where}: null is not allowed"
        return
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            yield f"{where}: {value!r} is neither an integer nor a string"
        elif isinstance(value, str):
            yield from _bounds(schema, value, where)  # a quantity's pattern
        return
    if "anyOf" in schema:
        raise ValueError(f"{where}: anyOf without x-kubernetes-int-or-string")
    kind = schema.get("type")
    if kind is not None and not _of_type(kind, value):
        yield f"{where}: {value!r} is not of type {kind}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: {value!r} is not one of {schema['enum']}"
    yield from _bounds(schema, value, where)
    if isinstance(value, dict):
        yield from _object(schema, value, path)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _check(schema["items"], item, f"{path}[{i}]")


def _of_type(kind: str, value: Any) -> bool:
    # bool is an int in Python, never in JSON.
    return isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))


def _bounds(schema: Mapping[str, Any], value: Any, where: str) -> Iterator[str]:
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{where}: {value!r} is less than {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{where}: {value!r} is more than {schema['maximum']}"
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"{where}: shorter than {schema['minLength']}"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"{where}: longer than {schema['maxLength']}"
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield f"{where}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"{where}: more than {schema['maxItems']} items"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        yield f"{where}: {value!r} does not match {schema['pattern']}"


def _object(schema: Mapping[str, Any], value: Mapping[str, Any], path: str) -> Iterator[str]:
    prefix = f"{path}." if path else ""
    for name in schema.get("required", ()):
        if name not in value:
            yield f"{prefix}{name}: required"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            yield from _check(properties[key], item, f"{prefix}{key}")
        elif isinstance(extra, Mapping):
            yield from _check(extra, item, f"{prefix}{key}")
        elif not (extra is True or schema.get("x-kubernetes-preserve-unknown-fields")):
            yield f"{prefix}{key}: unknown field"
