"""Authorization: kube-apiserver's SubjectAccessReview, with ``system:masters`` allowed
outright (as k8s.io/apiserver's delegating authorizer does) and every decision remembered.

How long depends on who asks. A direct caller's allowed decision lives as long as
k8s.io/apiserver's delegating authorizer keeps one (10 s), so removing its RoleBinding
stops it within that. A request the aggregator forwarded was authorized by kube-apiserver
itself just before, which refuses a revoked caller at once; ours is a second check, kept
longer so that the HPA's request rate never becomes a SubjectAccessReview rate."""

from __future__ import annotations

from typing import Protocol

from metrics_adapter.api.auth.identity import Attributes, User
from metrics_adapter.api.auth.reviews import RememberedAnswers, Reviewer
from metrics_adapter.errors import Forbidden, KubeError, ServiceUnavailable

ALLOW_TTL = 10.0
"""Seconds a direct caller's allowed decision is remembered: k8s.io/apiserver's default."""
DENY_TTL = 10.0
"""Seconds a denial is remembered: k8s.io/apiserver's default."""
PROXIED_ALLOW_TTL = 300.0
"""Seconds an allowed decision for a request the aggregator forwarded is remembered."""

Decision = tuple[bool, str, bool]
"""Allowed, kube-apiserver's reason, and whether the request came through the front proxy."""


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
        self,
        reviewer: Reviewer,
        *,
        allow_ttl: float = ALLOW_TTL,
        deny_ttl: float = DENY_TTL,
        proxied_allow_ttl: float = PROXIED_ALLOW_TTL,
    ) -> None:
        self.reviewer = reviewer

        def ttl(decision: Decision) -> float:
            allowed, _, proxied = decision
            if not allowed:
                return deny_ttl
            return proxied_allow_ttl if proxied else allow_ttl

        self.decisions: RememberedAnswers[tuple[User, Attributes], Decision] = RememberedAnswers(
            ttl
        )

    async def authorize(self, user: User, attributes: Attributes) -> None:
        if user.is_master:
            return
        reviewer = self.reviewer

        async def review() -> Decision:
            allowed, reason = await reviewer.review_access(user, attributes)
            return allowed, reason, user.proxied

        try:
            allowed, reason, _ = await self.decisions.get((user, attributes), review)
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
