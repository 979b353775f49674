"""Authorization: kube-apiserver's SubjectAccessReview, with ``system:masters`` allowed
outright (as k8s.io/apiserver's delegating authorizer does) and every decision remembered,
so that the HPA's request rate never becomes a SubjectAccessReview rate."""

from __future__ import annotations

from typing import Protocol

from metrics_adapter.api.auth.identity import Attributes, User
from metrics_adapter.api.auth.reviews import RememberedAnswers, Reviewer
from metrics_adapter.errors import Forbidden, KubeError, ServiceUnavailable

ALLOW_TTL = 300.0
DENY_TTL = 30.0


class Authorizer(Protocol):
    async def authorize(self, user: User, attributes: Attributes) -> None:
        """Return when ``user`` may; raise Forbidden when not, ServiceUnavailable when it
        cannot be known now."""


class AnyAuthenticated:
    """No Kubernetes API to ask (standalone with client CAs): authenticated is enough."""

    async def authorize(self, user: User, attributes: Attributes) -> None:
        return None


class DelegatingAuthorizer:
    def __init__(
        self, reviewer: Reviewer, *, allow_ttl: float = ALLOW_TTL, deny_ttl: float = DENY_TTL
    ) -> None:
        self.reviewer = reviewer
        self.decisions: RememberedAnswers[tuple[User, Attributes], tuple[bool, str]] = (
            RememberedAnswers(lambda d: allow_ttl if d[0] else deny_ttl)
        )

    async def authorize(self, user: User, attributes: Attributes) -> None:
        if user.is_master:
            return
        reviewer = self.reviewer
        try:
            allowed, reason = await self.decisions.get(
                (user, attributes), lambda: reviewer.review_access(user, attributes)
            )
        except KubeError as exc:
            raise ServiceUnavailable(f"cannot authorize the request: {exc}") from exc
        if not allowed:
            raise Forbidden(forbidden_message(user, attributes, reason))


def forbidden_message(user: User, attributes: Attributes, reason: str) -> str:
    """kube-apiserver's wording, so the message reads the same from either server."""
    what = f"{attributes.resource}.{attributes.group}" if attributes.resource else "forbidden"
    text = f'User "{user.name}" cannot {attributes.describe()}'
    text = f"{what} is forbidden: {text}" if attributes.resource else f"forbidden: {text}"
    return f"{text}: {reason}" if reason else text
