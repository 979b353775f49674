"""KEDA's own e2e objects are accepted as KEDA accepts them.

``tests/keda_e2e/`` holds the objects of KEDA v2.20.2's end-to-end tests, rendered from
their templates by ``hack/render-keda-e2e`` (see ``tests/keda_e2e/README.md``). Every
ScaledObject and ScaledJob whose trigger types are all ones we register is loaded with the
other objects of its test file, the way standalone mode loads a directory
(``load_documents``), and bound as ``explain`` binds it (``bind_all``). It must be accepted,
unless KEDA refuses it too (:data:`KEDA_REFUSES`, each with KEDA's reason and where KEDA
says it); then we must refuse it, naming the same field. What we refuse by choice where
KEDA accepts (:data:`NOT_SUPPORTED`) must be refused by name.

Objects whose authentication is read from a server (Vault, AWS Secrets Manager, a bound
ServiceAccount token, a mounted file), or comes from a pod identity we do not support (Azure,
GCP), cannot be bound here; their problem must name that source, never a parameter it would
have supplied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metrics_adapter.binding.files import load_documents
from metrics_adapter.binding.triggers import bind_all
from metrics_adapter.binding.yaml_documents import load_all
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.model.scaled_job import ScaledJobRef
from scalers.errors import ConfigError
from scalers.registry import KINDS, RESOURCE_KINDS

CORPUS = Path(__file__).resolve().parents[1] / "keda_e2e"
SUPPORTED = frozenset([*KINDS, *RESOURCE_KINDS])
SCALABLE = ("ScaledObject", "ScaledJob")
LIVE_SOURCES = {
    "hashiCorpVault": "Vault",
    "awsSecretManager": "awsSecretManager",
    "boundServiceAccountToken": "boundServiceAccountToken",
    "azureKeyVault": "azureKeyVault",
    "gcpSecretManager": "gcpSecretManager",
    "filePath": "filePath",
}
"""TriggerAuthentication sources read when the object is bound, from a server (or, for
filePath, a file mounted in KEDA's pod) this test does not have; each with what a problem
about it names."""
UNSUPPORTED_IDENTITIES = frozenset({"azure", "azure-workload", "gcp"})
"""Pod identity providers nothing here can stand in for: KEDA accepts them, we name them."""


@dataclass(frozen=True, slots=True)
class Refusal:
    field: str
    """What our refusal must name: the field KEDA's reason is about."""
    reason: str
    """KEDA's reason, quoted from its source, with the file and line."""


_SCALED_OBJECT_VALIDATION = (
    "internals__scaled_object_validation__scaled_object_validation_test.yaml:"
    "scaled-object-validation-test-ns/"
)
_NO_TRIGGERS = Refusal(
    "triggers",
    '"spec.triggers in body should have at least 1 items" (the CRD\'s minItems: 1, '
    "config/crd/bases/keda.sh_scaledobjects.yaml:369, keda.sh_scaledjobs.yaml:9113, which "
    'KEDA\'s e2e test expects); behind it, "no triggers defined in the ScaledObject/ScaledJob"'
    " (apis/keda/v1alpha1/scaletriggers_types.go:60)",
)
_RESOURCE_ONLY_AT_ZERO = Refusal(
    "minReplicaCount",
    "the webhook's first error, which KEDA's e2e test expects, is \"the scaledobject has a cpu "
    "trigger but the container ... doesn't have the cpu request defined\" (apis/keda/v1alpha1/"
    "scaledobject_webhook.go:489, the target has no requests: a check of our admission webhook, "
    "not of binding); after it, for this object (only cpu or memory, minReplicaCount unset), "
    "\"scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero doesn't "
    'work in this case)" (scaledobject_webhook.go:509)',
)
_IDLE_NOT_BELOW_MIN = Refusal(
    "idleReplicaCount",
    '"IdleReplicaCount=%d must be less than MinReplicaCount=%d" (apis/keda/v1alpha1/'
    "scaledobject_types.go:365, CheckReplicaCountBoundsAreValid: webhook "
    "scaledobject_webhook.go:194, controller scaledobject_controller.go:285)",
)

_RESOURCE_WITHOUT_METRIC_TYPE = Refusal(
    "metricType",
    "\"unknown metric type: , allowed values are 'Utilization' or 'AverageValue'\" "
    "(pkg/scalers/cpu_memory_scaler.go:75: no metricType, and metadata.type is refused since "
    "v2.18; for a ScaledJob, controllers/keda/scaledjob_controller.go:201-204)",
)

KEDA_REFUSES: Mapping[str, Refusal] = {
    "internals__scaled_job_validation__scaled_job_validation_test.yaml:"
    "scaled-job-validation-test-ns/scaled-job-validation-test-sj-empty-triggers": _NO_TRIGGERS,
    _SCALED_OBJECT_VALIDATION + "scaled-object-validation-test-so-empty-triggers": _NO_TRIGGERS,
    _SCALED_OBJECT_VALIDATION
    + "scaled-object-validation-test-so1@cpuScaledObjectTemplate": _RESOURCE_ONLY_AT_ZERO,
    _SCALED_OBJECT_VALIDATION
    + "scaled-object-validation-test-so1@memoryScaledObjectTemplate": _RESOURCE_ONLY_AT_ZERO,
    "sequential__opentelemetry_metrics__opentelemetry_metrics_test.yaml:opentelemetry-metrics-"
    "test-ns/opentelemetry-metrics-test-so-empty-upstream": _IDLE_NOT_BELOW_MIN,
    "sequential__prometheus_metrics__prometheus_metrics_test.yaml:prometheus-metrics-test-ns/"
    "prometheus-metrics-test-so-empty-upstream": _IDLE_NOT_BELOW_MIN,
    "internals__events__events_test.yaml:events-test-ns/events-test-sj-target-error": (
        _RESOURCE_WITHOUT_METRIC_TYPE
    ),
    "internals__value_metric_type__value_metric_type_test.yaml:value-metric-type-test-ns/"
    "value-metric-type-test-so@scaledObjectTemplate": _IDLE_NOT_BELOW_MIN,
    "internals__value_metric_type__value_metric_type_test.yaml:value-metric-type-test-ns/"
    "value-metric-type-test-so@scaledObjectTemplate#2": _IDLE_NOT_BELOW_MIN,
}
"""``<corpus file>:<namespace>/<name>`` of the objects KEDA itself refuses; ``@<template>``
when a file reuses the name, and ``#2`` for a template's second rendering (applied with
other data)."""


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    kind: str
    template: str
    doc: Mapping[str, Any]
    companions: tuple[tuple[str, Any], ...]
    """The file's other objects, the object's own template's last (they win a name clash),
    as ``(origin, document)`` for ``load_documents``."""
    live_sources: tuple[str, ...]
    trigger_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    template: str
    groups: tuple[str, ...]
    """Where the test creates it with others (a template list, or a function applying
    templates one by one), the first first. Of two objects with one name (a valid and an
    invalid TriggerAuthentication, say), an object gets the one created with it first."""
    doc: Mapping[str, Any]


def _chunks(path: Path) -> list[Rendered]:
    """The documents of a corpus file, each after its ``# template: X`` line and, when a
    template list creates it, ``# created with: getTemplateData, ...``."""
    out: list[Rendered] = []
    for chunk in re.split(r"(?m)^---\n", path.read_text())[1:]:
        template = re.search(r"(?m)^# template: (\S+)", chunk)
        groups = re.search(r"(?m)^# created with: (.*)$", chunk)
        assert template is not None, f"{path.name}: a document without its template"
        names = tuple(groups.group(1).split(", ")) if groups else ()
        out += [
            Rendered(template.group(1), names, d) for d in load_all(chunk) if isinstance(d, dict)
        ]
    return out


def _refs(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(auth.get("kind") or "TriggerAuthentication"), str(auth.get("name")))
        for t in (doc.get("spec") or {}).get("triggers") or []
        if isinstance(auth := t.get("authenticationRef"), dict)
    ]


def _live_sources(doc: Mapping[str, Any], others: list[Rendered]) -> tuple[str, ...]:
    """What a problem of the object must name: the sources of its authentications that
    cannot be read here (``Vault``, ``podIdentity gcp``)."""
    used = set(_refs(doc))
    found: set[str] = set()
    for other in (r.doc for r in others):
        if (other.get("kind"), (other.get("metadata") or {}).get("name")) not in used:
            continue
        spec = other.get("spec") or {}
        found |= {named for source, named in LIVE_SOURCES.items() if source in spec}
        provider = (spec.get("podIdentity") or {}).get("provider")
        if provider in UNSUPPORTED_IDENTITIES:
            found.add(f"podIdentity {provider}")
    return tuple(sorted(found))


def corpus_cases() -> list[Case]:
    """Every ScaledObject and ScaledJob of the corpus whose trigger types we all register."""
    cases: list[Case] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        docs = _chunks(path)
        scalable = [r for r in docs if r.doc.get("kind") in SCALABLE]
        names = [_name(r.doc) for r in scalable]
        others = [r for r in docs if r.doc.get("kind") not in SCALABLE]
        for own in scalable:
            triggers = (own.doc.get("spec") or {}).get("triggers") or []
            types = tuple(str(t.get("type")) for t in triggers if isinstance(t, dict))
            if not set(types) <= SUPPORTED:
                continue
            # Later documents win a name clash: the object's own template's, then those
            # created with it first, then with it at all, then with anything.
            first = own.groups[:1]
            ordered = sorted(
                others,
                key=lambda r: (
                    r.template == own.template,
                    bool(set(first) & set(r.groups)),
                    bool(set(own.groups) & set(r.groups)),
                    bool(r.groups),
                ),
            )
            case_id = f"{path.name}:{_name(own.doc)}"
            if names.count(_name(own.doc)) > 1:
                case_id += f"@{own.template}"
            taken = sum(c.id.split("#")[0] == case_id for c in cases)
            if taken:  # the same template applied with other data
                case_id += f"#{taken + 1}"
            companions = tuple((f"{path.name}#{r.template}", r.doc) for r in ordered)
            live = _live_sources(own.doc, others)
            cases.append(
                Case(case_id, str(own.doc["kind"]), own.template, own.doc, companions, live, types)
            )
    return cases


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def outcome(case: Case) -> str | None:
    """``None`` when the object is accepted; else every problem we report, in one line."""
    origin = f"{case.id.partition(':')[0]}#{case.template}"
    inventory = load_documents([*case.companions, (origin, case.doc)])
    namespace, _, name = _name(case.doc).partition("/")
    ref = ScaledJobRef(namespace, name) if case.kind == "ScaledJob" else ObjectRef(namespace, name)
    if ref in inventory.broken:
        return str(inventory.broken[ref])
    obj = (
        inventory.scaled_jobs.get(ref)
        if isinstance(ref, ScaledJobRef)
        else inventory.scaled_objects.get(ref)
    )
    if obj is None:
        return "not loaded: " + "; ".join(inventory.errors)
    try:
        bind_all(obj, inventory)
    except ConfigError as exc:
        others = [e for e in inventory.errors if not e.startswith(str(ref))]
        return "; ".join([str(exc), *others])
    return None


_PG_CONNECTION = Refusal(
    "connection",
    "a placeholder: KEDA's test builds the connection string when it runs "
    "(pg.GetConnectionString); KEDA refuses a string that is not one when it builds the "
    "scaler (pkg/scalers/postgresql_scaler.go:179-184, sql.Open then Ping)",
)
_AZURE_CONNECTION = Refusal(
    "connection",
    "a placeholder: KEDA's test reads the storage connection string from its environment "
    "(TF_AZURE_STORAGE_CONNECTION_STRING); KEDA refuses a string that is not one when it "
    "builds the scaler (pkg/scalers/azure/azure_storage.go:94 and :121, the SDK's "
    "NewClientFromConnectionString)",
)
RUNTIME_VALUES: Mapping[str, Refusal] = {
    "internals__scaling_strategies__accurate_scaling_strategy__accurate_scaling_strategy_test"
    ".yaml:accurate-scaling-strategy-test-ns/accurate-scaling-strategy-test-sj": _AZURE_CONNECTION,
    "scalers__azure__azure_blob__azure_blob_test.yaml:azure-blob-test-ns/azure-blob-test-so": (
        _AZURE_CONNECTION
    ),
    "scalers__azure__azure_queue__azure_queue_test.yaml:azure-queue-test-ns/azure-queue-test-so": (
        _AZURE_CONNECTION
    ),
    "secret-providers__trigger_auth_secret__trigger_auth_secret_test.yaml:"
    "trigger-auth-secret-test-ns/trigger-auth-secret-test-so": _AZURE_CONNECTION,
    "scalers__postgresql__postgresql_high_available__postgresql_ha_test.yaml:postgresql-ha-test-ns"
    "/postgresql-ha-test-so": _PG_CONNECTION,
    "scalers__postgresql__postgresql_standalone__postgresql_test.yaml:postgresql-test-ns/"
    "postgresql-test-so": _PG_CONNECTION,
}
"""Objects that hold a rendered placeholder where only a real value is valid (known only
when KEDA's test runs): refused, naming that field, as KEDA would refuse the placeholder."""

WAITING: Mapping[str, str] = {}
"""Objects whose test waits for work in progress (issue 21), with whose: expected to fail,
and strictly, so that each entry goes as soon as it passes."""

NOT_SUPPORTED: Mapping[str, str] = {
    "scalers__metrics_api__metrics_api_test.yaml:metrics-api-test-ns/metrics-api-test-so"
    "@scaledObjectTemplate#2": "aggregateFromKubeServiceEndpoints: true is not supported",
    "internals__scaling_modifiers__scaling_modifiers_test.yaml:scaling-modifiers-test-ns/"
    "scaling-modifiers-test-so@soComplexFormula": "not supported here: count()",
}
"""Objects KEDA accepts and we refuse by choice, with what our refusal must say: a feature
we do not have (docs/migration.md), named rather than dropped without a word."""

CASES = corpus_cases()


def _params(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(strict=True, reason=WAITING[c.id])] if c.id in WAITING else [],
        )
        for c in cases
    ]


PLAIN = [c for c in CASES if not c.live_sources]
LIVE = [c for c in CASES if c.live_sources]


def test_the_corpus_is_there() -> None:
    """The corpus is committed: an empty glob would pass every test below."""
    assert len(list(CORPUS.glob("*.yaml"))) > 150
    assert len(PLAIN) > 60


@pytest.mark.parametrize("case", _params(PLAIN))
def test_accepted_as_keda_accepts_it(case: Case) -> None:
    problem = outcome(case)
    refusal = KEDA_REFUSES.get(case.id) or RUNTIME_VALUES.get(case.id)
    unsupported = NOT_SUPPORTED.get(case.id)
    if unsupported is not None:
        assert problem is not None and unsupported in problem, problem
    elif refusal is None:
        assert problem is None, f"KEDA accepts {case.id}; we refuse it: {problem}"
    else:
        assert problem is not None, f"KEDA refuses {case.id} ({refusal.reason}); we accept it"
        assert f"{refusal.field}: " in problem, f"KEDA: {refusal.reason}; we: {problem}"


@pytest.mark.parametrize("case", _params(LIVE))
def test_a_source_we_cannot_read_here_is_named(case: Case) -> None:
    """Standalone, with no server to read them from (or no support for them at all), these
    objects cannot be bound; the problem must be the source, never a parameter it would
    have supplied."""
    problem = outcome(case)
    assert problem is not None
    assert any(source in problem for source in case.live_sources), problem
    assert "is required" not in problem, problem


def test_every_entry_is_an_object_of_the_corpus() -> None:
    """A stale entry (KEDA's test changed, or the object is gone) fails here."""
    plain = {c.id for c in PLAIN}
    assert not set(KEDA_REFUSES) - plain, sorted(set(KEDA_REFUSES) - plain)
    assert not set(NOT_SUPPORTED) - plain, sorted(set(NOT_SUPPORTED) - plain)
    assert not set(RUNTIME_VALUES) - plain, sorted(set(RUNTIME_VALUES) - plain)
    assert not set(WAITING) - {c.id for c in CASES}, sorted(set(WAITING))
    assert not set(KEDA_REFUSES) & set(NOT_SUPPORTED)
