"""What a trigger sets that nothing will read: warnings, never refusals.

A user moving from KEDA keeps their YAML; a metadata key or an authentication parameter that
KEDA reads and we do not, or that neither reads (a typo), would otherwise be dropped without a
word. Each becomes one line naming the field, shown in the object's Event, in ``explain`` and
in the admission webhook's warnings. Only names and paths: never a value, which may come from a
Secret.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping

from metrics_adapter.model.keda import Trigger
from scalers.keda_parameters import KEDA_PARAMETERS
from scalers.params import Source, declared_params

_FROM_ENV = "FromEnv"


def ignored_parameters(
    trigger: Trigger, declared: type, auth_params: Collection[str] = ()
) -> list[str]:
    """One warning per metadata key of ``trigger``, and per parameter its authentication
    supplies (``auth_params``: names only), that the metadata class ``declared`` does not
    read from there."""
    ours = _ours(declared)
    keda = KEDA_PARAMETERS.get(trigger.type, {})
    path = f"triggers[{trigger.index}]"
    warnings = [
        f"{path}.metadata.{key}: {reason}"
        for key in sorted(trigger.metadata)
        if (reason := _metadata_reason(trigger.type, key, ours, keda)) is not None
    ]
    ref = trigger.authentication_ref
    if ref is not None:
        for name in sorted(auth_params):
            if Source.AUTH in ours.get(name, ()):
                continue
            where = f"{path}.authenticationRef: {ref.kind} {ref.name} supplies parameter {name}"
            if Source.AUTH in keda.get(name, ()):
                warnings.append(
                    f"{where}, which KEDA reads; metrics-adapter does not and ignores it"
                )
            else:
                warnings.append(f"{where}, which {trigger.type} never reads; ignored")
    return warnings


def _metadata_reason(
    type_name: str,
    key: str,
    ours: dict[str, frozenset[Source]],
    keda: Mapping[str, frozenset[Source]],
) -> str | None:
    base = key.removesuffix(_FROM_ENV) if key.endswith(_FROM_ENV) else None
    if Source.TRIGGER in ours.get(key, ()) or (base and Source.ENV in ours.get(base, ())):
        return None
    if Source.TRIGGER in keda.get(key, ()) or (base and Source.ENV in keda.get(base, ())):
        return "KEDA reads this parameter; metrics-adapter does not and ignores it"
    name = base or key
    if base and (name in keda or name in ours):
        return f"{name} cannot come from the environment (no {key}); ignored"
    if Source.AUTH in keda.get(name, ()) or Source.AUTH in ours.get(name, ()):
        return (
            f"{name} is read from the authentication's parameters, not from metadata, "
            "by KEDA too; ignored"
        )
    known = sorted({*ours, *keda, *_from_env(ours, keda)})
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f" (a typo of {close[0]}?)" if close else ""
    return f"not a parameter of {type_name}; ignored{hint}"


def _from_env(
    ours: dict[str, frozenset[Source]], keda: Mapping[str, frozenset[Source]]
) -> Iterator[str]:
    yield from (f"{n}{_FROM_ENV}" for n, s in ours.items() if Source.ENV in s)
    yield from (f"{n}{_FROM_ENV}" for n, o in keda.items() if Source.ENV in o)


_OURS: dict[type, dict[str, frozenset[Source]]] = {}


def _ours(declared: type) -> dict[str, frozenset[Source]]:
    """Where each parameter of a metadata class may come from, computed once per class."""
    found = _OURS.get(declared)
    if found is None:
        found = _OURS[declared] = {
            spec.name: frozenset(spec.order) for _, spec in declared_params(declared)
        }
    return found
