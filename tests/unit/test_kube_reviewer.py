"""The reviews' wire shapes, and the counters of what they cost kube-apiserver."""

from __future__ import annotations

from typing import Any, cast

import pytest

from metrics_adapter.api.auth.identity import Attributes, User
from metrics_adapter.api.auth.kube_reviewer import ACCESS_REVIEWS, TOKEN_REVIEWS, KubeReviewer
from metrics_adapter.errors import KubeUnreachable
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.metrics.telemetry import Telemetry


class FakeKube:
    """KubeClient.request, answering from a table and keeping what was sent."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def request(self, method: str, path: str, subject: str, *, body: Any = None) -> Any:
        assert method == "POST"
        self.sent.append((path, body))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def reviewer(kube: FakeKube, telemetry: Telemetry) -> KubeReviewer:
    return KubeReviewer(cast(KubeClient, kube), telemetry.authn_reviews, telemetry.authz_reviews)


def count(telemetry: Telemetry, name: str, code: str) -> float:
    value = telemetry.registry.get_sample_value(name, {"code": code})
    return value or 0.0


async def test_a_metric_read_is_reviewed_as_list_on_the_metric_resource() -> None:
    telemetry = Telemetry()
    kube = FakeKube({ACCESS_REVIEWS: {"status": {"allowed": True}}})
    user = User.of("hpa", ["system:serviceaccounts"], "u-1", {"scopes": ["a", "b"]})
    attributes = Attributes("list", "/x", "external.metrics.k8s.io", "v1beta1", "ns", "s0-cron", "")
    assert await reviewer(kube, telemetry).review_access(user, attributes) == (True, "")
    [(path, body)] = kube.sent
    assert (path, body["kind"]) == (ACCESS_REVIEWS, "SubjectAccessReview")
    assert body["spec"] == {
        "user": "hpa",
        "groups": ["system:serviceaccounts"],
        "uid": "u-1",
        "extra": {"scopes": ["a", "b"]},
        "resourceAttributes": {
            "verb": "list",
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "resource": "s0-cron",
            "namespace": "ns",
            "name": "",
        },
    }
    assert count(telemetry, "apiserver_delegated_authz_request_total", "201") == 1


async def test_a_discovery_read_is_a_non_resource_review_and_a_denial_keeps_its_reason() -> None:
    telemetry = Telemetry()
    denied = {"status": {"allowed": False, "reason": "no RBAC policy matched"}}
    kube = FakeKube({ACCESS_REVIEWS: denied})
    answer = await reviewer(kube, telemetry).review_access(User.of("x"), Attributes("get", "/apis"))
    assert answer == (False, "no RBAC policy matched")
    assert kube.sent[0][1]["spec"]["nonResourceAttributes"] == {"verb": "get", "path": "/apis"}


async def test_a_token_review_gives_the_user_or_nobody_and_failures_are_counted() -> None:
    telemetry = Telemetry()
    accepted = {
        "status": {
            "authenticated": True,
            "user": {"username": "bob", "uid": "7", "groups": ["devs"], "extra": {"k": ["v"]}},
        }
    }
    kube = FakeKube({TOKEN_REVIEWS: accepted})
    assert await reviewer(kube, telemetry).review_token("t") == User.of(
        "bob", ["devs"], "7", {"k": ["v"]}
    )
    assert kube.sent[0][1]["spec"] == {"token": "t"}
    kube.answers[TOKEN_REVIEWS] = {"status": {"authenticated": False}}
    assert await reviewer(kube, telemetry).review_token("t") is None
    kube.answers[TOKEN_REVIEWS] = KubeUnreachable("TokenReview (create)", 0, "Timeout", "slow")
    with pytest.raises(KubeUnreachable):
        await reviewer(kube, telemetry).review_token("t")
    assert count(telemetry, "apiserver_delegated_authn_request_total", "201") == 2
    assert count(telemetry, "apiserver_delegated_authn_request_total", "0") == 1
