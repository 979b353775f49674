"""The validating webhook: an AdmissionReview in, the decision out, for KEDA's four kinds.

One answer names every problem of the object: KEDA's rules with KEDA's messages and reasons
(:mod:`.checks`, :mod:`.conflicts`), the parser's and the binder's problems (:mod:`.parameters`),
in a stable order (:mod:`.findings`). What is accepted but unused, or could not be checked,
becomes an admission warning (``kubectl`` prints ``Warning: …``).

Never a hang, never a 500: cluster reads share one deadline; a review that is not one is a
400 (:class:`~metrics_adapter.errors.BadRequest`); a bug of ours in checking admits the object
with a warning and logs it, as ``failurePolicy: Ignore`` would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from metrics_adapter.admission.authentication import (
    trigger_authentication_rules,
    trigger_authentication_warnings,
)
from metrics_adapter.admission.checks import (
    scaled_object_rules,
    scaled_object_warnings,
    trigger_rules,
)
from metrics_adapter.admission.cluster import ClusterView
from metrics_adapter.admission.conflicts import cluster_rules
from metrics_adapter.admission.findings import Finding, merged, parser_findings, refusal
from metrics_adapter.admission.parameters import parameter_findings
from metrics_adapter.admission.review import AdmissionRequest, Verdict, parse_review, response
from metrics_adapter.binding.triggers import ObjectSource
from metrics_adapter.errors import BadRequest
from metrics_adapter.model.authentication import parse_trigger_authentication
from metrics_adapter.model.keda import read_scaled_object, subject_of
from metrics_adapter.model.scaled_job import read_scaled_job
from scalers.errors import ConfigError

log = logging.getLogger(__name__)

AUTHENTICATIONS = ("TriggerAuthentication", "ClusterTriggerAuthentication")
CLUSTER_DEADLINE = 3.0
"""Seconds for every cluster read of one review: well inside the webhook's 10 s timeout
(kube-apiserver's default and KEDA's), so an answer always arrives."""
CLUSTER_READS_IN_FLIGHT = 8
"""Reviews reading the cluster at once; more wait (within the deadline). The webhook paths
take anonymous calls: this keeps them from becoming a flood of API server lists."""


class Recorder(Protocol):
    """Where decisions are counted (:class:`~metrics_adapter.metrics.telemetry.Telemetry`)."""

    def webhook_validation(self, namespace: str, action: str) -> None: ...

    def webhook_refusal(self, namespace: str, action: str, reason: str) -> None: ...


class SyncedSource(ObjectSource, Protocol):
    """The cluster's objects as the controller binds against them, once listed."""

    synced: asyncio.Event


class AdmissionWebhook:
    """Decides admission reviews; ``cluster`` and ``objects`` only in cluster mode."""

    def __init__(
        self,
        recorder: Recorder | None = None,
        *,
        cluster: ClusterView | None = None,
        objects: SyncedSource | None = None,
        deadline: float = CLUSTER_DEADLINE,
    ) -> None:
        self.recorder = recorder
        self.cluster = cluster
        self.objects = objects
        self.deadline = deadline
        self._reads = asyncio.Semaphore(CLUSTER_READS_IN_FLIGHT)

    async def review(self, kind: str, body: bytes) -> bytes:
        """The AdmissionReview answering ``body``, sent to the path that validates ``kind``;
        BadRequest when ``body`` is not an AdmissionReview of that kind."""
        request = parse_review(body)
        if request.kind != kind:
            raise BadRequest(
                f"this path validates {kind}, not {request.kind}: check the "
                "ValidatingWebhookConfiguration's rules"
            )
        try:
            verdict = await self.decide(request)
        except Exception:
            log.exception("admission of %s %s/%s failed", kind, request.namespace, request.name)
            verdict = Verdict(
                True, warnings=("metrics-adapter could not check this object (logged): admitted",)
            )
        return response(request.uid, verdict)

    async def decide(self, request: AdmissionRequest) -> Verdict:
        if request.operation not in ("CREATE", "UPDATE") or _bookkeeping(request):
            return Verdict(True)
        obj = _in_namespace(request)
        raw_spec = obj.get("spec")
        spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
        if request.kind == "ScaledObject":
            findings, warnings = await self._scaled_object(obj, spec, request)
        elif request.kind == "ScaledJob":
            findings, warnings = self._scaled_job(obj, spec)
        elif request.kind in AUTHENTICATIONS:
            findings, warnings = self._trigger_authentication(obj, spec, request.kind)
        else:
            return Verdict(True)
        return self._verdict(request, obj, merged(findings), warnings)

    async def _scaled_object(
        self, obj: Mapping[str, Any], spec: Mapping[str, Any], request: AdmissionRequest
    ) -> tuple[list[Finding], list[str]]:
        doc = read_scaled_object(obj)
        so = doc.scaled_object or doc.draft
        assert so is not None  # the spec is always read, if only as a draft
        findings = parser_findings(doc.error.problems if doc.error else ())
        findings += [*trigger_rules(spec), *scaled_object_rules(so, spec, request.dry_run)]
        warnings = [*so.warnings, *scaled_object_warnings(so, spec)]
        unwatched = self._unwatched(request.kind, request.namespace, warnings)
        found, more = parameter_findings(so, None if unwatched else self._objects(warnings))
        findings += found
        warnings += more
        if self.cluster is not None and not unwatched:
            found, more = await cluster_rules(
                so, self.cluster, dry_run=request.dry_run, deadline=self.deadline, limit=self._reads
            )
            findings += found
            warnings += more
        return findings, warnings

    def _scaled_job(
        self, obj: Mapping[str, Any], spec: Mapping[str, Any]
    ) -> tuple[list[Finding], list[str]]:
        doc = read_scaled_job(obj)
        findings = [*parser_findings(doc.error.problems if doc.error else ()), *trigger_rules(spec)]
        if doc.scaled_job is None:
            return findings, []
        warnings = list(doc.scaled_job.warnings)
        unwatched = self._unwatched("ScaledJob", doc.scaled_job.ref.namespace, warnings)
        objects = None if unwatched else self._objects(warnings)
        found, more = parameter_findings(doc.scaled_job, objects)
        return [*findings, *found], [*warnings, *more]

    @staticmethod
    def _trigger_authentication(
        obj: Mapping[str, Any], spec: Mapping[str, Any], kind: str
    ) -> tuple[list[Finding], list[str]]:
        warnings: list[str] = []
        try:
            warnings += parse_trigger_authentication({**obj, "kind": kind}).warnings
        except ConfigError as exc:
            findings = parser_findings(exc.problems)
        else:
            findings = []
        findings += trigger_authentication_rules(spec)
        return findings, [*warnings, *trigger_authentication_warnings(spec)]

    def _unwatched(self, kind: str, namespace: str, warnings: list[str]) -> bool:
        """Whether this adapter does not watch ``kind`` in ``namespace`` (--watch-namespace):
        the object is checked on its own, not against a cluster it may not read."""
        why = self.objects.unread(kind, namespace) if self.objects is not None else None
        if why:
            warnings.append(f"not checked against the cluster, nor scaled by this adapter: {why}")
        return bool(why)

    def _objects(self, warnings: list[str]) -> ObjectSource | None:
        """The cluster's objects to bind against, once they are all listed."""
        if self.objects is None:
            return None
        if not self.objects.synced.is_set():
            warnings.append(
                "triggers' authentication and env not checked: the adapter is still listing "
                "the cluster's objects"
            )
            return None
        return self.objects

    def _verdict(
        self,
        request: AdmissionRequest,
        obj: Mapping[str, Any],
        findings: list[Finding],
        warnings: list[str],
    ) -> Verdict:
        namespaced = request.kind != "ClusterTriggerAuthentication"
        subject = subject_of(request.kind, obj, namespaced)
        unique = tuple(dict.fromkeys(warnings))
        namespace = request.namespace if namespaced else ""
        if self.recorder is not None and request.kind == "ScaledObject":
            self.recorder.webhook_validation(namespace, request.action)
        if not findings:
            log.debug("admitted %s", subject, extra={"warnings": len(unique)})
            return Verdict(True, warnings=unique)
        reasons = sorted({f.reason for f in findings})
        if self.recorder is not None and request.kind in ("ScaledObject", "ScaledJob"):
            for reason in reasons:
                self.recorder.webhook_refusal(namespace, request.action, reason)
        message = refusal(subject, findings)
        log.info("refused %s: %s", request.operation.lower(), message, extra={"reasons": reasons})
        return Verdict(False, message, unique)


def _bookkeeping(request: AdmissionRequest) -> bool:
    """An update that leaves the spec and the annotations as they were (finalizers, owner
    references, labels, managed fields): nothing a rule reads changed, so it is not checked,
    as KEDA skips a finalizer's removal. The controller's own finalizer writes pass even when
    the cluster has changed around an object since it was admitted."""
    if request.operation != "UPDATE" or request.object is None or request.old_object is None:
        return False
    new, old = request.object, request.old_object
    return new.get("spec") == old.get("spec") and _annotations(new) == _annotations(old)


def _annotations(obj: Mapping[str, Any]) -> object:
    meta = obj.get("metadata")
    return meta.get("annotations") if isinstance(meta, Mapping) else None


def _in_namespace(request: AdmissionRequest) -> Mapping[str, Any]:
    """The object, in the request's namespace when it does not say one itself."""
    obj = request.object or {}
    meta = obj.get("metadata")
    if request.namespace and isinstance(meta, Mapping) and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": request.namespace}}
    return obj
