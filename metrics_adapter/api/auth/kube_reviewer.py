"""TokenReview and SubjectAccessReview, asked of kube-apiserver (RBAC: system:auth-delegator)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from metrics_adapter.api.auth.identity import Attributes, User
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.client import KubeClient, Obj

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class KubeReviewer:
    def __init__(self, kube: KubeClient, tokens: Counter, access: Counter) -> None:
        self.kube = kube
        self.tokens = tokens
        """Counts TokenReviews by code: ``apiserver_delegated_authn_request_total``."""
        self.access = access
        """Counts SubjectAccessReviews by code: ``apiserver_delegated_authz_request_total``."""

    async def review_token(self, token: str) -> User | None:
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        answer = await self._create(TOKEN_REVIEWS, "TokenReview", review, self.tokens)
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        return User.of(
            str(user.get("username") or ""),
            user.get("groups") or (),
            str(user.get("uid") or ""),
            user.get("extra") or {},
        )

    async def review_access(self, user: User, attributes: Attributes) -> tuple[bool, str]:
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        if attributes.resource:
            spec["resourceAttributes"] = {
                "verb": attributes.verb,
                "group": attributes.group,
                "version": attributes.version,
                "resource": attributes.resource,
                "namespace": attributes.namespace,
                "name": attributes.name,
            }
        else:
            spec["nonResourceAttributes"] = {"verb": attributes.verb, "path": attributes.path}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        answer = await self._create(ACCESS_REVIEWS, "SubjectAccessReview", review, self.access)
        status = answer.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied"), str(
            status.get("reason") or status.get("evaluationError") or ""
        )

    async def _create(self, path: str, kind: str, review: Obj, counter: Counter) -> Obj:
        try:
            answer = await self.kube.request("POST", path, f"{kind} (create)", body=review)
        except KubeError as exc:
            counter.labels(str(exc.code)).inc()
            raise
        counter.labels("201").inc()
        return answer
