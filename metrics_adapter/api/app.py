"""The HTTP face: ``external.metrics.k8s.io/v1beta1`` answered from the MetricStore alone,
and beside it the validating admission webhook on KEDA's paths (:mod:`metrics_adapter.admission`).

Routes are thin; every error becomes a Kubernetes ``Status`` here, at the one boundary.
Answers are JSON whatever the client's ``Accept`` says (client-go asks for protobuf first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from metrics_adapter.admission.review import MAX_BODY as MAX_REVIEW
from metrics_adapter.admission.review import PATHS as ADMISSION_PATHS
from metrics_adapter.admission.webhook import AdmissionWebhook
from metrics_adapter.api import paths
from metrics_adapter.api.forward import FORWARDED, HOLDS_NOTHING, Forwarder, Reads, Route
from metrics_adapter.errors import (
    APIError,
    BadRequest,
    NotFound,
    RequestEntityTooLarge,
    api_error_for,
)
from metrics_adapter.kube import wire
from metrics_adapter.metrics.store import MetricStore

JSON = "application/json"


@dataclass
class Health:
    """What ``/readyz`` reports: objects loaded and the poller running."""

    loaded: bool = False
    poller_running: Callable[[], bool] = field(default=lambda: False)

    @property
    def ready(self) -> bool:
        return self.loaded and self.poller_running()


def _status(error: APIError, headers: Mapping[str, str] | None = None) -> Response:
    return Response(wire.status(error), error.code, headers, media_type=JSON)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes as it arrives: the gate checks the
    announced length, but an API served without the gate (standalone, open) must hold too."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestEntityTooLarge(f"a request body may have at most {limit} bytes")
    return bytes(body)


def create_app(
    store: MetricStore,
    health: Health,
    admission: AdmissionWebhook | None = None,
    forward: tuple[Route, Forwarder] | None = None,
) -> FastAPI:
    """The routes; with ``admission``, also the validating webhook on KEDA's paths; with
    ``forward``, a read of an object another replica owns is that replica's answer
    (:mod:`metrics_adapter.api.forward`), and a read forwarded to us is always ours."""
    reads = Reads(store, forward)
    # No slash redirects: a Location built from the client's Host header is not ours to send.
    app = FastAPI(
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        title="metrics-adapter",
        redirect_slashes=False,
    )

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> Response:
        return _status(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Routing's own answers: 404 for a path no route has, 405 (with its Allow header)
        for a method the path's route does not take."""
        if exc.status_code != NotFound.code:
            return _status(api_error_for(exc.status_code, str(exc.detail)), exc.headers)
        path = request.url.path
        return _status(NotFound(f"the server could not find the requested resource ({path})"))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        return _status(BadRequest(f"malformed request: {exc.errors()[0].get('msg', exc)}"))

    @app.get(f"{paths.NAMESPACES}{{namespace}}/{{metric}}")
    async def external_metric(
        request: Request, namespace: str, metric: str, labelSelector: str | None = None
    ) -> Response:
        scaled_object = wire.scaled_object_name(labelSelector)
        forwarded = FORWARDED in request.headers
        got = await reads.answer(
            namespace, scaled_object, metric, request.url.query, forwarded=forwarded
        )
        holds_nothing = {HOLDS_NOTHING: "true"} if forwarded and got.holds_nothing else None
        return Response(got.body, got.status, holds_nothing, media_type=JSON)

    @app.get(paths.GROUP_VERSION)
    async def resources() -> Response:
        return Response(wire.API_RESOURCE_LIST, media_type=JSON)

    @app.get(paths.GROUP)
    async def group() -> Response:
        return Response(wire.API_GROUP, media_type=JSON)

    @app.get(paths.APIS)
    async def groups() -> Response:
        return Response(wire.API_GROUP_LIST, media_type=JSON)

    @app.get(paths.HEALTHZ)
    @app.get(paths.LIVEZ)
    async def alive() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get(paths.READYZ)
    async def ready() -> Response:
        if health.ready:
            return Response(b"ok", media_type="text/plain")
        why = "objects not loaded" if not health.loaded else "poller not running"
        return Response(f"not ready: {why}".encode(), status_code=503, media_type="text/plain")

    if admission is not None:
        for path, kind in ADMISSION_PATHS.items():
            app.add_api_route(path, _validator(admission, kind), methods=["POST"])
    return app


def _validator(admission: AdmissionWebhook, kind: str) -> Callable[[Request], Awaitable[Response]]:
    async def validate(request: Request) -> Response:
        body = await _body(request, MAX_REVIEW)
        return Response(await admission.review(kind, body), media_type=JSON)

    validate.__name__ = f"validate_{kind}"
    return validate
