"""The Kubernetes API as the controller uses it, on :mod:`metrics_adapter.kube.transport`.

Only the I/O is here: objects arrive as JSON, to be parsed by whoever reads them, and the
typed shapes the controller writes (:mod:`metrics_adapter.kube.objects`,
:mod:`metrics_adapter.kube.autoscaling`) make their own JSON. Every call has a timeout;
every failure is a :class:`~metrics_adapter.errors.KubeError` naming the object and the
call. List+watch with resume and re-list is :func:`metrics_adapter.kube.watch.watch`, on
:meth:`KubeClient.open_watch`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from metrics_adapter.errors import KubeConflict, KubeError, KubeGone, KubeNotFound, KubeUnreachable
from metrics_adapter.kube import autoscaling
from metrics_adapter.kube.budget import Write, WriteBudget
from metrics_adapter.kube.clock import ServerClock
from metrics_adapter.kube.events import EventSeries
from metrics_adapter.kube.objects import Event, Lease, Scale
from metrics_adapter.kube.transport import ApiError, Transport, connect
from metrics_adapter.kube.wire import parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "metrics-adapter"


@dataclass(frozen=True, slots=True)
class BoundToken:
    """A ServiceAccount token from the TokenRequest API, and when it stops working."""

    token: str = field(repr=False)
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = f"/apis/{self.api_version}" if "/" in self.api_version else "/api/v1"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return "/".join(p for p in (base, self.plural, name, sub) if p)

    def subject(self, namespace: str | None = None, name: str | None = None) -> str:
        """``Deployment e2e/web``; ``Secrets in e2e``; ``Secrets`` (all namespaces)."""
        if name is None:
            return f"{self.kind}s in {namespace}" if namespace else f"{self.kind}s"
        return f"{self.kind} {namespace}/{name}" if self.namespaced else f"{self.kind} {name}"


SCALED_OBJECTS = Resource("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
SCALED_JOBS = Resource("keda.sh/v1alpha1", "ScaledJob", "scaledjobs")
TRIGGER_AUTHENTICATIONS = Resource(
    "keda.sh/v1alpha1", "TriggerAuthentication", "triggerauthentications"
)
CLUSTER_TRIGGER_AUTHENTICATIONS = Resource(
    "keda.sh/v1alpha1", "ClusterTriggerAuthentication", "clustertriggerauthentications", False
)
SECRETS = Resource("v1", "Secret", "secrets")
CONFIG_MAPS = Resource("v1", "ConfigMap", "configmaps")
DEPLOYMENTS = Resource("apps/v1", "Deployment", "deployments")
STATEFULSETS = Resource("apps/v1", "StatefulSet", "statefulsets")
HPAS = Resource(autoscaling.API_VERSION, autoscaling.KIND, "horizontalpodautoscalers")
EVENTS = Resource("v1", "Event", "events")
LEASES = Resource(Lease.API_VERSION, Lease.KIND, "leases")
JOBS = Resource("batch/v1", "Job", "jobs")
PODS = Resource("v1", "Pod", "pods")
SERVICE_ACCOUNTS = Resource("v1", "ServiceAccount", "serviceaccounts")
_KNOWN = {(r.api_version, r.kind): r for r in (SCALED_OBJECTS, DEPLOYMENTS, STATEFULSETS, HPAS)}


class KubeObserver(Protocol):
    """What the client reports of its traffic (``/metrics``): each request's verb and answer
    code, as client-go's ``rest_client_requests_total`` counts them, and each watch restart."""

    def kube_request(self, method: str, code: str) -> None: ...

    def kube_write_waited(self, method: str, seconds: float) -> None: ...

    def watch_restart(self, resource: str, reason: str) -> None: ...


class _Unobserved:
    def kube_request(self, method: str, code: str) -> None:
        return None

    def kube_write_waited(self, method: str, seconds: float) -> None:
        return None

    def watch_restart(self, resource: str, reason: str) -> None:
        return None


ERROR_CODE = "<error>"
"""The code of a request that got no HTTP answer, as client-go labels it."""
TOO_MANY_REQUESTS = 429
THROTTLED_RETRIES = 3
"""Times a write answered 429 is sent again, each after the budget's pause."""
RETRY_AFTER_DEFAULT, RETRY_AFTER_MOST = 1.0, 30.0
"""Seconds to pause on a 429 without a usable Retry-After, and the longest pause."""


class KubeClient:
    """A small typed facade over one :class:`Transport`, which it closes."""

    def __init__(
        self,
        api: Transport,
        *,
        timeout: float = 10.0,
        watch_timeout: float = 300.0,
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.watch_timeout = watch_timeout
        """Server-side length of one watch, spread up to twice that so watches renew apart."""
        self.field_manager = field_manager
        self._resources: dict[tuple[str, str], Resource] = dict(_KNOWN)
        self._events = EventSeries(self._post_event, self._count_event)
        self.observer: KubeObserver = _Unobserved()
        """Set by the service to its telemetry; nothing is counted otherwise."""
        self.clock = ServerClock()
        """kube-apiserver's wall clock, for what another process compares (lastActiveTime)."""
        self.writes: WriteBudget | None = None
        """The controller's writes wait for it (:mod:`metrics_adapter.kube.budget`); set by
        the service from --kube-api-qps and --kube-api-burst, unlimited otherwise."""
        self.fence: Callable[[], None] | None = None
        """Run right before each write is sent (after its wait for the budget): raises
        KubeFenced when the write is no longer this process's to make."""

    @classmethod
    async def connect(cls, kubeconfig: str | Path | None = None, **kwargs: Any) -> KubeClient:
        return cls(await connect(kubeconfig), **kwargs)

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # One request.

    def writes_free(self) -> bool:
        """Whether a write would be sent at once: no write is waiting for the budget."""
        return self.writes is None or self.writes.free()

    async def request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        write: Write | None = None,
    ) -> Obj:
        """One call and its JSON answer; raise KubeError naming ``subject`` on any failure.

        A ``write`` waits for the write budget first; one answered 429 pauses the budget for
        the answer's Retry-After and is sent again, up to :data:`THROTTLED_RETRIES` times."""
        for attempt in range(THROTTLED_RETRIES + 1):
            if write is not None and self.writes is not None:
                waited = await self.writes.take(write)
                self.observer.kube_write_waited(method, waited)
            if write is not None and self.fence is not None:
                self.fence()
            try:
                return await self._call(method, path, subject, query, body, content_type)
            except _Throttled as throttled:
                if write is None or self.writes is None or attempt == THROTTLED_RETRIES:
                    raise throttled.error from throttled.cause
                log.warning(
                    "%s: the apiserver is overloaded (429): every write waits %gs",
                    subject,
                    throttled.retry_after,
                )
                self.writes.pause(throttled.retry_after)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call(
        self,
        method: str,
        path: str,
        subject: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
    ) -> Obj:
        code = ERROR_CODE
        try:
            sent = self.clock.local()
            async with asyncio.timeout(self.timeout):
                answer, status, answered = await self.api.call(
                    method,
                    path,
                    query=query,
                    body=body,
                    content_type=content_type,
                    seconds=self.timeout,
                )
            code = str(status)
            self.clock.observe(answered.get("Date"), sent, self.clock.local())
        except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
            code = _answer_code(exc)
            error = self._error(subject, exc)
            if isinstance(exc, ApiError) and exc.status == TOO_MANY_REQUESTS:
                raise _Throttled(error, exc, _retry_after(exc)) from exc
            raise error from exc
        finally:
            self.observer.kube_request(method, code)
        return answer if isinstance(answer, dict) else {}

    def _error(self, subject: str, exc: BaseException) -> KubeError:
        if isinstance(exc, TimeoutError):
            return KubeUnreachable(subject, 0, "Timeout", f"no answer within {self.timeout:g}s")
        if not isinstance(exc, ApiError):
            return KubeUnreachable(subject, 0, "Unreachable", str(exc) or type(exc).__name__)
        return status_error(subject, _status(exc.status, exc.reason, exc.body))

    # Generic verbs.

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        subject = f"{resource.subject(namespace, name)} (get)"
        return await self.request("GET", resource.path(namespace, name), subject)

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        field_selector: str = "",
        label_selector: str = "",
        from_cache: bool = False,
    ) -> tuple[list[Obj], str]:
        """Every object (in pages of 500) and the list's resourceVersion. ``from_cache``
        reads kube-apiserver's watch cache (``resourceVersion=0``, one page): milliseconds
        instead of a quorum read from etcd, at the price of missing a write of the last
        few milliseconds."""
        items: list[Obj] = []
        query = [("limit", "500"), *_selectors(field_selector, label_selector)]
        query += [("resourceVersion", "0")] if from_cache else []
        token = ""
        while True:
            page = await self.request(
                "GET",
                resource.path(namespace),
                f"list {resource.subject(namespace)}",
                query=query + ([("continue", token)] if token else []),
            )
            for item in page.get("items") or []:  # listed items may lack apiVersion and kind
                items.append({"apiVersion": resource.api_version, "kind": resource.kind, **item})
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def patch(
        self,
        resource: Resource,
        name: str,
        namespace: str | None,
        body: Any,
        *,
        sub: str | None = None,
        content_type: str = MERGE_PATCH,
        write: Write = Write.OBJECT,
    ) -> Obj:
        subject = f"{resource.subject(namespace, name)} (patch{' ' + sub if sub else ''})"
        path = resource.path(namespace, name, sub)
        return await self.request(
            "PATCH", path, subject, body=body, content_type=content_type, write=write
        )

    async def apply(self, resource: Resource, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply of ``obj`` as our field manager, taking over conflicting fields."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), str(meta.get("name"))
        return await self.request(
            "PATCH",
            resource.path(namespace, name),
            f"{resource.subject(namespace, name)} (apply)",
            query=[("fieldManager", self.field_manager), ("force", "true")],
            body=dict(obj),
            content_type=APPLY_PATCH,
            write=Write.OBJECT,
        )

    async def create(self, resource: Resource, namespace: str, obj: Mapping[str, Any]) -> Obj:
        """Create ``obj`` (which may have a ``generateName``); returns it as stored."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        subject = f"{resource.subject(namespace, name or None)} (create)"
        if not name:
            subject = f"{resource.kind} in {namespace} (create)"
        return await self.request(
            "POST", resource.path(namespace), subject, body=dict(obj), write=Write.OBJECT
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str | None = None,
    ) -> bool:
        """Delete the object (its dependents per ``propagation``: ``Background``,
        ``Foreground``, ``Orphan``); ``False`` when it was already gone."""
        subject = f"{resource.subject(namespace, name)} (delete)"
        body = {"propagationPolicy": propagation} if propagation else None
        try:
            await self.request(
                "DELETE", resource.path(namespace, name), subject, body=body, write=Write.OBJECT
            )
        except KubeNotFound:
            return False
        return True

    # The controller's calls.

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        """The resource of a scale target's kind, from API discovery (cached)."""
        key = (api_version, kind)
        if key not in self._resources:
            group = Resource(api_version, kind, "").path()
            found = await self.request("GET", group, f"discovery of {api_version}")
            resources = found.get("resources") or []
            names = {str(r.get("name")) for r in resources}
            match = next(
                (r for r in resources if r.get("kind") == kind and "/" not in str(r.get("name"))),
                None,
            )
            if match is None or f"{match['name']}/scale" not in names:
                why = "no such kind" if match is None else "no /scale subresource"
                raise KubeNotFound(f"{kind} in {api_version}", 404, "NotFound", why)
            plural, namespaced = str(match["name"]), bool(match.get("namespaced"))
            self._resources[key] = Resource(api_version, kind, plural, namespaced)
        return self._resources[key]

    async def api_version_of(self, kind: str) -> str:
        """The group version serving ``kind`` with a ``/scale`` subresource, from discovery
        (each group's preferred version; core ``v1`` too), for a scale target that names no
        apiVersion. KubeNotFound when none does, or when more than one group does (the
        ScaledObject must say which). Remembered once found, as :meth:`resource_for`."""
        known = [v for (v, k) in self._resources if k == kind]
        if len(known) == 1:
            return known[0]
        groups = await self.request("GET", "/apis", "discovery of the API groups")
        versions = ["v1"] + [
            str((g.get("preferredVersion") or {}).get("groupVersion") or "")
            for g in groups.get("groups") or []
        ]
        found: list[str] = []
        for version in filter(None, versions):
            try:
                await self.resource_for(version, kind)
            except KubeNotFound:
                continue
            found.append(version)
        if len(found) != 1:
            why = "served by " + ", ".join(found) if found else "no group serves it with /scale"
            raise KubeNotFound(f"kind {kind}", 404, "NotFound", why)
        return found[0]

    async def get_scale(self, api_version: str, kind: str, namespace: str, name: str) -> Scale:
        resource = await self.resource_for(api_version, kind)
        path = resource.path(namespace, name, "scale")
        subject = f"{resource.subject(namespace, name)} (get scale)"
        return Scale.from_response(await self.request("GET", path, subject), subject)

    async def patch_scale(
        self, api_version: str, kind: str, namespace: str, name: str, replicas: int
    ) -> Scale:
        resource = await self.resource_for(api_version, kind)
        body = Scale.patch(replicas)
        answer = await self.patch(resource, name, namespace, body, sub="scale", write=Write.SCALE)
        return Scale.from_response(answer, f"{resource.subject(namespace, name)} (patch scale)")

    async def patch_scaled_object_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Obj:
        """Merge ``status`` into the ScaledObject's status (lists such as conditions are
        replaced whole); returns the ScaledObject."""
        return await self.patch_status(SCALED_OBJECTS, namespace, name, status)

    async def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Obj:
        """Merge ``status`` into the object's status subresource; returns the object."""
        body = {"status": dict(status)}
        return await self.patch(resource, name, namespace, body, sub="status")

    async def create_event(self, event: Event) -> None:
        """Record ``event``; a repetition of one recorded before is counted on it
        (:mod:`metrics_adapter.kube.events`)."""
        await self._events.record(event)

    async def _post_event(self, event: Event) -> Obj:
        path = EVENTS.path(event.namespace)
        return await self.request(
            "POST", path, f"{event.subject} (create)", body=event.to_json(), write=Write.EVENT
        )

    async def _count_event(self, namespace: str, name: str, body: dict[str, object]) -> Obj:
        return await self.patch(EVENTS, name, namespace, body, write=Write.EVENT)

    async def apply_hpa(self, hpa: autoscaling.HorizontalPodAutoscaler) -> Obj:
        return await self.apply(HPAS, hpa.to_json())

    async def get_hpa(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.get(HPAS, name, namespace)
        except KubeNotFound:
            return None

    async def delete_hpa(self, namespace: str, name: str) -> bool:
        return await self.delete(HPAS, name, namespace)

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        expiration_seconds: int,
        audiences: Sequence[str] = (),
    ) -> BoundToken:
        """A token of the ServiceAccount (``serviceaccounts/token``, KEDA's
        boundServiceAccountToken); the server may shorten ``expiration_seconds``."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        subject = f"{SERVICE_ACCOUNTS.subject(namespace, service_account)} (create token)"
        path = SERVICE_ACCOUNTS.path(namespace, service_account, "token")
        answer = await self.request("POST", path, subject, body=body)
        status = answer.get("status") or {}
        token = status.get("token")
        if not isinstance(token, str) or not token:
            raise KubeError(subject, 0, "BadResponse", "the TokenRequest has no status.token")
        return BoundToken(token, parse_time(status.get("expirationTimestamp")))

    # Watch.

    async def open_watch(
        self,
        resource: Resource,
        namespace: str | None,
        field_selector: str,
        version: str,
        label_selector: str = "",
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """One watch from ``version``: each event's type and object, ``BOOKMARK`` included,
        until the server ends it; an ``ERROR`` event is raised (410: KubeGone).
        Close it (``contextlib.aclosing``) if you stop early."""
        seconds = int(self.watch_timeout * (1 + random.random()))
        query = [("watch", "1"), ("allowWatchBookmarks", "true")]
        query += [("resourceVersion", version), ("timeoutSeconds", str(seconds))]
        query += _selectors(field_selector, label_selector)
        subject = f"watch {resource.subject(namespace)}"
        hung = seconds + 30  # the server ends the watch at ``seconds``
        limits = aiohttp.ClientTimeout(total=hung, sock_connect=self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.api.stream(resource.path(namespace), query, limits)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.observer.kube_request("WATCH", _answer_code(exc))
            raise self._error(subject, exc) from exc
        self.observer.kube_request("WATCH", str(response.status))
        try:
            if response.status != 200:
                body = await response.text()
                raise status_error(subject, _status(response.status, response.reason, body))
            while line := await response.content.readline():
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise status_error(subject, obj)
                yield str(event.get("type")), obj
        except TimeoutError as exc:
            raise KubeUnreachable(subject, 0, "Timeout", f"still open after {hung}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise KubeUnreachable(subject, 0, "Unreachable", str(exc) or repr(exc)) from exc
        except ValueError as exc:  # not JSON, or a line beyond aiohttp's buffer
            raise KubeError(subject, 0, "BadResponse", str(exc)) from exc
        finally:
            response.close()


class _Throttled(Exception):
    """A 429: the KubeError to raise if it is not sent again, and how long to wait first."""

    def __init__(self, error: KubeError, cause: ApiError, retry_after: float) -> None:
        super().__init__(str(error))
        self.error, self.cause, self.retry_after = error, cause, retry_after


def _retry_after(exc: ApiError) -> float:
    """The answer's Retry-After (whole seconds, as the apiserver sends it), within bounds."""
    try:
        header = exc.headers.get("Retry-After") if exc.headers else None
        seconds = float(header or RETRY_AFTER_DEFAULT)
    except (TypeError, ValueError):
        seconds = RETRY_AFTER_DEFAULT
    return min(max(seconds, 0.0), RETRY_AFTER_MOST)


def _answer_code(exc: BaseException) -> str:
    """The HTTP code a failed call was answered with, or :data:`ERROR_CODE` without one."""
    status = exc.status if isinstance(exc, ApiError) else None
    return str(status or ERROR_CODE)


def _selectors(field_selector: str, label_selector: str) -> list[tuple[str, str]]:
    return [
        (key, value)
        for key, value in (("fieldSelector", field_selector), ("labelSelector", label_selector))
        if value
    ]


def status_error(subject: str, status: Mapping[str, Any]) -> KubeError:
    """The KubeError for a Kubernetes ``Status`` (as the body of an answer or an ERROR event)."""
    code = int(status.get("code") or 0)
    cls = {404: KubeNotFound, 409: KubeConflict, 410: KubeGone}.get(code, KubeError)
    return cls(subject, code, str(status.get("reason") or ""), str(status.get("message") or ""))


def _status(code: int | None, reason: str | None, body: str | bytes | None) -> dict[str, Any]:
    """The ``Status`` in an error answer's body, else one made of its status line and text."""
    try:
        status = json.loads(body or "{}")
    except ValueError:
        status = None
    if not isinstance(status, dict) or "code" not in status:
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        status = {"message": text.strip()[:200]}
    return {"code": code, "reason": reason, **status}
