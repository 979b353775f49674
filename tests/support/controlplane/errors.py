"""What goes wrong with the control plane: a component, or a request the cluster refused."""

from __future__ import annotations

from typing import Any

import httpx


class ControlPlaneError(RuntimeError):
    """A component would not start, or the cluster refused a request."""


class KubeError(ControlPlaneError):
    """A Kubernetes API error response, with its ``Status`` reason and message."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        try:
            self.status: dict[str, Any] = response.json()
        except ValueError:
            self.status = {"message": response.text}
        self.reason = str(self.status.get("reason", ""))
        self.message = str(self.status.get("message", response.text))
        request = response.request
        super().__init__(f"{request.method} {request.url.path}: {self.status_code} {self.message}")


def raise_for(response: httpx.Response) -> None:
    """Raise :class:`KubeError` for a 4xx or 5xx response."""
    if response.status_code >= 400:
        raise KubeError(response)
