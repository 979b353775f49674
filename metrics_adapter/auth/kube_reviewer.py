"""TokenReview and SubjectAccessReview, asked of kube-apiserver (RBAC: system:auth-delegator)."""

from __future__ import annotations

from typing import Any

from metrics_adapter.auth.identity import Attributes, User
from metrics_adapter.kube_client import KubeClient

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class KubeReviewer:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def review_token(self, token: str) -> User | None:
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        answer = await self.kube.request("POST", TOKEN_REVIEWS, "TokenReview (create)", body=review)
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
        answer = await self.kube.request(
            "POST", ACCESS_REVIEWS, "SubjectAccessReview (create)", body=review
        )
        status = answer.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied"), str(
            status.get("reason") or status.get("evaluationError") or ""
        )
