"""The service's branches of the exception tree (rooted in :mod:`scalers.errors`).

``APIError``: answers to our clients, each becoming a Kubernetes ``Status`` at the one HTTP
boundary, :mod:`metrics_adapter.api.app` (or the auth middleware). ``StartupError``: settings the
process cannot serve with. ``KubeError``: calls the adapter makes to the Kubernetes API that
failed, raised by :mod:`metrics_adapter.kube.client`. ``AuthSourceError``: a read of an
authentication source that failed; it becomes a binding problem of the objects that need it.
The classes::

    APIError                   500 InternalError; each class its own code and reason
    ├── BadRequest             400
    ├── Unauthorized           401
    ├── Forbidden              403
    ├── NotFound               404
    ├── MethodNotAllowed       405
    ├── RequestEntityTooLarge  413
    ├── TooManyRequests        429: past --max-requests-inflight
    └── ServiceUnavailable     503

    KubeError                  code and reason from the server's Status; code 0: no answer
    ├── KubeUnreachable        connection refused, TLS, or no answer within the timeout
    ├── KubeNotFound           404
    ├── KubeConflict           409: stale resourceVersion, or already exists
    └── KubeGone               410: resourceVersion expired; re-list

    AuthSourceError            an authentication source (a file, a bound token, Vault, AWS
                               Secrets Manager) could not be read; the message names it
"""

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


class MethodNotAllowed(APIError):
    code, reason = 405, "MethodNotAllowed"


class RequestEntityTooLarge(APIError):
    code, reason = 413, "RequestEntityTooLarge"


class TooManyRequests(APIError):
    code, reason = 429, "TooManyRequests"


class ServiceUnavailable(APIError):
    code, reason = 503, "ServiceUnavailable"


def api_error_for(code: int, message: str) -> APIError:
    """The answer of HTTP status ``code``, as its class above; a status none of them has
    (the framework answers only 400, 404 and 405 itself) is our fault: InternalError."""
    by_code = {cls.code: cls for cls in APIError.__subclasses__()}
    return by_code.get(code, APIError)(message)


class NothingHeld:
    """Mixed into an answer that says only that this replica holds nothing for the read yet
    (the object is not reconciled here yet, or not polled once): during a hand-over, the
    replica that forwarded it may serve the value it had instead."""


class NoValueYet(ServiceUnavailable, NothingHeld):
    pass


class UnknownObject(NotFound, NothingHeld):
    pass


class StartupError(MetricsAdapterError):
    """The process cannot serve as configured: a certificate or CA file that does not load,
    a flag that needs a cluster without one. The message names the file or flag."""


class KubeError(MetricsAdapterError):
    """A call to the Kubernetes API failed; the message names the object and the call."""

    def __init__(self, subject: str, code: int, reason: str, message: str) -> None:
        self.subject = subject
        self.code = code
        self.reason = reason
        self.message = message
        status = f"{code} {reason}" if code else reason
        super().__init__(f"{subject}: {status}: {message}" if message else f"{subject}: {status}")


class KubeUnreachable(KubeError):
    """No HTTP answer at all: connection refused, TLS failure, or the call timed out."""


class KubeNotFound(KubeError):
    pass


class KubeConflict(KubeError):
    pass


class KubeFenced(KubeError):
    """A write this replica decided on but may no longer send: the object is another
    replica's now (metrics_adapter.control.ownership)."""


class KubeGone(KubeError):
    pass


class AuthSourceError(MetricsAdapterError):
    """A TriggerAuthentication's source could not be read: the message names the source (its
    address and path, never a secret) and why, e.g. ``Vault http://vault:8200 secret/data/app:
    403 permission denied``."""
