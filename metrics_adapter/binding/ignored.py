"""What a trigger sets that nothing will read: warnings, never refusals.

A user moving from KEDA keeps their YAML; a metadata key or an authentication parameter that
KEDA reads and we do not, or that neither reads (a typo), would otherwise be dropped without a
word. Each becomes one line naming the field, shown in the object's Event, in ``explain`` and
in the admission webhook's warnings. Only names and paths: never a value, which may come from a
Secret.

What KEDA reads is :mod:`scalers.keda_parameters`, generated from its source; what we read is
each trigger type's declared metadata. A KEDA parameter whose absence would change the number
served or weaken security is refused by its scaler instead, so it never reaches here.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from metrics_adapter.model.keda import Trigger
from metrics_adapter.model.scaled_job import Scalable
from scalers.keda_parameters import ALIASES, KEDA_PARAMETERS
from scalers.params import Source, declared_params
from scalers.registry import KINDS, RESOURCE_KINDS

FROM_ENV = "FromEnv"
KEDA_ONLY = "KEDA reads this parameter; metrics-adapter does not and ignores it"

_KAFKA_SASL = (
    "used by KEDA only with sasl gssapi or saslTokenProvider aws_msk_iam, "
    "which metrics-adapter refuses"
)
_SENTINEL = "used only by KEDA's sentinel trigger types; ignored, as in KEDA"
_WHY: Mapping[tuple[str, str], str] = {
    **{
        ("kafka", name): f"{_KAFKA_SASL}; ignored"
        for name in (
            "keytab",
            "realm",
            "kerberosConfig",
            "kerberosServiceName",
            "kerberosDisableFAST",
            "awsRegion",
            "identityOwner",
            "awsRoleArn",
            "awsAccessKeyID",
            "awsAccessKeyId",
            "awsSecretAccessKey",
            "awsSessionToken",
        )
    },
    **{
        (type_name, name): _SENTINEL
        for type_name in ("redis", "redis-cluster", "redis-streams", "redis-cluster-streams")
        for name in ("sentinelMaster", "sentinelUsername", "sentinelPassword")
    },
}
"""Better reasons than :data:`KEDA_ONLY` where the reason is known."""

Reads = Mapping[str, frozenset[Source]]


def ignored_parameters(
    trigger: Trigger, declared: type, auth_params: Collection[str] = ()
) -> list[str]:
    """One warning per metadata key of ``trigger``, and per parameter its authentication
    supplies (``auth_params``: names only), that the metadata class ``declared`` does not
    read from there. A type that passes its whole metadata on (``PASSES_METADATA``: an
    external scaler reads it) ignores no metadata key."""
    ours = _ours(declared)
    keda = KEDA_PARAMETERS.get(trigger.type, {})
    path = f"triggers[{trigger.index}]"
    passed_on = getattr(declared, "PASSES_METADATA", False)
    keys = () if passed_on else sorted(trigger.metadata)
    warnings = [
        f"{path}.metadata.{key}: {reason}"
        for key in keys
        if (reason := _metadata_reason(trigger.type, key, ours, keda)) is not None
    ]
    ref = trigger.authentication_ref
    if ref is None:
        return warnings
    where = f"{path}.authenticationRef ({ref.kind} {ref.name})"
    for name in sorted(auth_params):
        if Source.AUTH in ours.get(name, ()):
            continue
        if Source.AUTH in keda.get(name, ()):
            why = _known_reason(trigger.type, name, Source.AUTH, ours)
        else:
            why = _unknown(
                trigger.type, name, [n for n, s in {**keda, **ours}.items() if Source.AUTH in s]
            )
        warnings.append(f"{where}: parameter {name}: {why}")
    return warnings


def metadata_warnings(obj: Scalable) -> list[str]:
    """The warnings of every trigger's metadata keys alone: for an object that did not bind,
    whose authentication parameters are not known, but whose typo may be why it did not."""
    warnings: list[str] = []
    for trigger in obj.triggers:
        kind = KINDS.get(trigger.type) or RESOURCE_KINDS.get(trigger.type)
        if kind is not None:
            warnings += ignored_parameters(trigger, kind.metadata)
    return warnings


def _metadata_reason(type_name: str, key: str, ours: Reads, keda: Reads) -> str | None:
    base = key.removesuffix(FROM_ENV) if key.endswith(FROM_ENV) else None
    if Source.TRIGGER in ours.get(key, ()) or (base and Source.ENV in ours.get(base, ())):
        return None
    if Source.TRIGGER in keda.get(key, ()):
        return _known_reason(type_name, key, Source.TRIGGER, ours)
    if base and Source.ENV in keda.get(base, ()):
        return _known_reason(type_name, base, Source.ENV, ours)
    name = base or key
    if base and (name in keda or name in ours):
        return f"{name} cannot come from the environment (no {key}); ignored"
    if Source.AUTH in keda.get(name, ()) or Source.AUTH in ours.get(name, ()):
        too = ", by KEDA too" if Source.AUTH in keda.get(name, ()) else ""
        return (
            f"{name} is read from the authentication's parameters, not from metadata{too}; ignored"
        )
    if key == "metricName" and key not in keda:
        return (
            "KEDA no longer reads it for this type either (the metric's name is generated); ignored"
        )
    return _unknown(type_name, key, [*ours, *keda, *_from_env(ours), *_from_env(keda)])


def _unknown(type_name: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.75)
    hint = f" (a typo of {close[0]}?)" if close else ""
    return f"not a parameter of {type_name}; ignored{hint}"


def _known_reason(type_name: str, name: str, source: Source, ours: Reads) -> str:
    """Why a parameter KEDA reads from ``source`` is ignored here: another name for one we
    read, a known reason, or :data:`KEDA_ONLY`."""
    aliases = ALIASES.get(type_name, {})
    first = aliases.get(name, name)
    group = [first, *sorted(a for a, n in aliases.items() if n == first)]
    read = [n for n in group if n != name and source in ours.get(n, ())]
    if read:
        return (
            f"KEDA reads this as another name for {read[0]}; metrics-adapter reads only "
            f"{read[0]} and ignores it: rename it"
        )
    return _WHY.get((type_name, name), KEDA_ONLY)


def _from_env(reads: Reads) -> list[str]:
    return [f"{name}{FROM_ENV}" for name, sources in reads.items() if Source.ENV in sources]


_OURS: dict[type, dict[str, frozenset[Source]]] = {}


def _ours(declared: type) -> dict[str, frozenset[Source]]:
    """Where each parameter of a metadata class, by each of its names, may come from;
    computed once per class."""
    found = _OURS.get(declared)
    if found is None:
        found = _OURS[declared] = {
            name: frozenset(spec.order)
            for _, spec in declared_params(declared)
            for name in (spec.name, *spec.aliases)
        }
    return found
