"""API errors: the branch of the exception tree (rooted in :mod:`scalers.errors`) that
becomes a Kubernetes ``Status`` at the one HTTP boundary, :mod:`metrics_adapter.app`."""

from __future__ import annotations

from typing import ClassVar

from scalers.errors import MetricsAdapterError


class APIError(MetricsAdapterError):
    """An answer to a client that is not a metric value."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"


class BadRequest(APIError):
    code, reason = 400, "BadRequest"


class Unauthorized(APIError):
    code, reason = 401, "Unauthorized"


class Forbidden(APIError):
    code, reason = 403, "Forbidden"


class NotFound(APIError):
    code, reason = 404, "NotFound"


class ServiceUnavailable(APIError):
    code, reason = 503, "ServiceUnavailable"
