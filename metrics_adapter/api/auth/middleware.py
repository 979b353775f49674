"""The gate in front of every route: the body's size; then, but for the health checks and the
admission webhook, who is asking and whether they may."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from metrics_adapter.admission.review import MAX_BODY as MAX_REVIEW
from metrics_adapter.api import paths
from metrics_adapter.api.auth.authn import Authenticator
from metrics_adapter.api.auth.authz import Authorizer
from metrics_adapter.api.auth.identity import Attributes
from metrics_adapter.api.status import send_status
from metrics_adapter.errors import (
    APIError,
    BadRequest,
    RequestEntityTooLarge,
    ServiceUnavailable,
    Unauthorized,
)

log = logging.getLogger(__name__)

OPEN_PATHS = paths.PROBES | paths.ADMISSION
"""Answered without authentication. The probes: the kubelet asks them. The admission
webhook: kube-apiserver calls webhooks without client credentials unless its admission
configuration is given a kubeconfig per webhook, which clusters seldom have (nor managed
control planes allow); like KEDA's webhook server, ours cannot require one. What an anonymous
caller gets is the decision on an object it sends (docs/security.md)."""
MAX_BODY = 64 * 1024
"""The metrics API's routes are GETs: a larger body is refused before anyone reads it."""

MAX_NAMESPACE, MAX_NAME, MAX_PATH = 63, 253, 1024
"""A DNS label, a DNS subdomain (metric names included), and any other path."""

PUBLIC: dict[type[APIError], APIError] = {
    Unauthorized: Unauthorized("Unauthorized"),
    ServiceUnavailable: ServiceUnavailable(
        "the request cannot be authenticated or authorized now; the adapter's log says why"
    ),
}
_RESOURCE_VERBS = {
    "GET": ("get", "list"),
    "HEAD": ("get", "list"),
    "POST": ("create", "create"),
    "PUT": ("update", "update"),
    "PATCH": ("patch", "patch"),
    "DELETE": ("delete", "deletecollection"),
}


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, authorizer: Authorizer) -> None:
        self.app = app
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            limit = MAX_REVIEW if scope["path"] in paths.ADMISSION else MAX_BODY
            _refuse_large(scope["headers"], limit)
            if scope["path"] not in OPEN_PATHS:
                user = await self.authenticator.authenticate(_chain(scope), scope["headers"])
                await self.authorizer.authorize(user, attributes(scope["method"], scope["path"]))
        except (Unauthorized, ServiceUnavailable) as error:
            # The reason stays in our log: an unauthenticated caller learns no more than
            # kube-apiserver would tell it (no CA names, no API server address).
            level = logging.INFO if isinstance(error, Unauthorized) else logging.WARNING
            log.log(level, "refused %s %s: %s", scope["method"], scope["path"], error)
            await send_status(send, PUBLIC[type(error)])
            return
        except APIError as error:
            log.debug("refused %s %s: %s", scope["method"], scope["path"], error)
            await send_status(send, error)
            return
        await self.app(scope, receive, send)


def attributes(method: str, path: str) -> Attributes:
    """What a request does, as kube-apiserver's RequestInfo would say: a resource under
    ``/apis/<group>/<version>/`` or else a non-resource path.

    Decisions are remembered by these attributes, so their size is bounded here: names longer
    than Kubernetes allows are refused before anyone is asked, and a resource request does
    not keep its path (the review does not send it)."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource, name = rest[0], "/".join(rest[1:])
        for what, value, limit in (
            ("namespace", namespace, MAX_NAMESPACE),
            ("resource", resource, MAX_NAME),
            ("name", name, MAX_NAME),
            ("group", group, MAX_NAME),
            ("version", version, MAX_NAMESPACE),
        ):
            if len(value) > limit:
                raise BadRequest(f"the {what} in the path is longer than {limit} characters")
        one, many = _RESOURCE_VERBS.get(method, (method.lower(), method.lower()))
        return Attributes(one if name else many, "", group, version, namespace, resource, name)
    if len(path) > MAX_PATH:
        raise BadRequest(f"the path is longer than {MAX_PATH} characters")
    return Attributes(method.lower(), path)


def _chain(scope: Scope) -> list[str]:
    tls: dict[str, Any] = (scope.get("extensions") or {}).get("tls") or {}
    return tls.get("client_cert_chain") or []


def _refuse_large(headers: list[tuple[bytes, bytes]], limit: int) -> None:
    for key, value in headers:
        if key == b"content-length":
            try:
                size = int(value)
            except ValueError:
                raise BadRequest(f"malformed Content-Length {value!r}") from None
            if size > limit:
                raise RequestEntityTooLarge(
                    f"a request body may have at most {limit} bytes, not {size}"
                )
        elif key == b"transfer-encoding":
            raise RequestEntityTooLarge("chunked request bodies are not accepted")
