"""Trigger metadata checked at admission by the binder the controller uses
(:func:`~metrics_adapter.binding.triggers.bind_all`), its problems sorted into those that
refuse and those that only warn.

A problem refuses when the object alone settles it: a value written in the trigger's metadata
that is not what the trigger takes, a parameter no source could supply, an unknown trigger
type. A problem that authentication or the target's env could still settle only warns: the
TriggerAuthentication, its Secret, the Deployment and its env are often applied in the same
``kubectl apply``, in any order, and KEDA does not check them either.

Those warnings go to whoever calls the webhook, and the webhook cannot ask who that is (the
API server calls it anonymously). So their text never carries a value read from a Secret, a
ConfigMap or an env: only the field's path, and for a missing TriggerAuthentication the names
the object itself wrote.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from metrics_adapter.admission.findings import Finding, parser_findings
from metrics_adapter.binding.auth_sources.base import SourceRead, SourceValues
from metrics_adapter.binding.env import container_env
from metrics_adapter.binding.ignored import metadata_warnings
from metrics_adapter.binding.triggers import ObjectSource, bind_all
from metrics_adapter.errors import AuthSourceError
from metrics_adapter.model.authentication import TriggerAuthentication
from metrics_adapter.model.keda import ObjectRef, Trigger
from metrics_adapter.model.scaled_job import Scalable, ScaledJob
from scalers.errors import ConfigError, Problem
from scalers.params import Param, Source, declared_params
from scalers.registry import KINDS, RESOURCE_KINDS

_TRIGGER = re.compile(r"triggers\[(\d+)\]\.?(.*)", re.S)


@functools.cache
def _params(type_name: str) -> Mapping[str, Param]:
    """A trigger type's declared parameters, by name: where each may come from. Looked up
    per type, so that admission imports only the kinds it is shown."""
    kind = RESOURCE_KINDS.get(type_name) or KINDS.get(type_name)
    if kind is None:
        return {}
    return {spec.name: spec for _, spec in declared_params(kind.metadata)}


class NoObjects:
    """An :class:`ObjectSource` with nothing in it: no cluster to look in, or not listed
    yet. A ScaledJob's own Job template still gives its containers' literal env."""

    cluster_object_namespace = ""

    def trigger_authentication(self, ref: ObjectRef) -> TriggerAuthentication | None:
        return None

    def cluster_trigger_authentication(self, name: str) -> TriggerAuthentication | None:
        return None

    def unread(self, kind: str, namespace: str = "") -> str | None:
        return None

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def binary_secret_keys(self, namespace: str, name: str) -> frozenset[str]:
        return frozenset()

    def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def container_env(self, obj: Scalable, container: str | None) -> Mapping[str, str]:
        if not isinstance(obj, ScaledJob):
            return {}
        return container_env(obj.containers, container, obj.ref.namespace, _none, _none)

    def workload_service_account(self, obj: Scalable) -> str:
        return "default"

    def service_account_annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def source_values(self, read: SourceRead) -> SourceValues | AuthSourceError | None:
        """Never read here: a source that needs a read could still settle later."""
        return None


def _none(_: ObjectRef) -> None:
    return None


def parameter_findings(
    obj: Scalable, objects: ObjectSource | None
) -> tuple[list[Finding], list[str]]:
    """The refusing problems of binding ``obj``'s triggers, and the warnings: what could
    still be settled, and what nothing reads (:mod:`metrics_adapter.binding.ignored`).
    Without ``objects`` what depends on them is not known, and not reported."""
    try:
        binding = bind_all(obj, objects or NoObjects())
    except ConfigError as exc:
        problems = exc.problems
    else:
        return [], list(binding.warnings)
    triggers = {t.index: t for t in obj.triggers}
    refuse: list[Problem] = []
    warnings = metadata_warnings(obj)  # a typo among them may be why it did not bind
    for problem in problems:
        if not _deferred(problem, triggers):
            refuse.append(problem)
        elif objects is not None:
            warnings.append(_warning(problem))
    return parser_findings(refuse), warnings


def _deferred(problem: Problem, triggers: Mapping[int, Trigger]) -> bool:
    """Whether authentication or env, once applied, could make this problem go away."""
    match = _TRIGGER.fullmatch(problem.path)
    trigger = triggers.get(int(match[1])) if match else None
    if match is None or trigger is None:
        return False
    rest = match[2]
    if rest.startswith("authenticationRef") or rest.endswith("FromEnv"):
        return True
    if not rest.startswith("metadata."):
        return False
    name = rest.removeprefix("metadata.")
    spec = _params(trigger.type).get(name)
    auth = trigger.authentication_ref is not None and (spec is None or Source.AUTH in spec.order)
    env = bool(trigger.metadata.get(f"{name}FromEnv", "").strip()) and (
        spec is None or Source.ENV in spec.order
    )
    if not trigger.metadata.get(name, "").strip():
        return auth or env  # missing here, or a rule over values some of which come from there
    if spec is None:
        return False
    # Written in the metadata: only a source read before it can stand in for it.
    order = spec.order
    before = order[: order.index(Source.TRIGGER)] if Source.TRIGGER in order else order
    return (auth and Source.AUTH in before) or (env and Source.ENV in before)


def _warning(problem: Problem) -> str:
    if problem.path.endswith(".authenticationRef"):  # "… not found": the object's own names
        return f"{problem}; not refused: it may be applied later"
    return (
        f"{problem.path}: not usable yet from the trigger's authentication or the workload's "
        "env; not refused: they may be applied later (Ready=False will say why if not)"
    )
