"""Authentication and authorization decisions, with a fake reviewer in place of kube-apiserver."""

from __future__ import annotations

import asyncio
import json

import pytest

from metrics_adapter.api.auth.authn import Authenticator
from metrics_adapter.api.auth.authz import ALLOW_TTL, DENY_TTL, DelegatingAuthorizer
from metrics_adapter.api.auth.identity import (
    AUTHENTICATED,
    Attributes,
    AuthConfig,
    CaBundle,
    RequestHeaderConfig,
    User,
)
from metrics_adapter.api.auth.middleware import attributes
from metrics_adapter.api.auth.reviews import RememberedAnswers
from metrics_adapter.api.auth.sources import from_config_map
from metrics_adapter.errors import (
    BadRequest,
    Forbidden,
    KubeUnreachable,
    ServiceUnavailable,
    Unauthorized,
)
from tests.support.pki import CertificateAuthority, KeyPair

FRONT_PROXY = CertificateAuthority("front-proxy-ca")
CLIENTS = CertificateAuthority("client-ca")
OTHER = CertificateAuthority("other-ca")
METRIC = Attributes(
    "list",
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s0-cron",
    "external.metrics.k8s.io",
    "v1beta1",
    "ns",
    "s0-cron",
)


def chain(pair: KeyPair, ca: CertificateAuthority) -> list[str]:
    return [pair.cert_pem.decode(), ca.pem.decode()]


def config(*, allowed: tuple[str, ...] = ("front-proxy-client",)) -> AuthConfig:
    return AuthConfig(
        CaBundle.parse(CLIENTS.pem, "client CA"),
        RequestHeaderConfig(
            CaBundle.parse(FRONT_PROXY.pem, "front-proxy CA"),
            allowed,
            ("X-Remote-User",),
            ("X-Remote-Group",),
            ("X-Remote-Extra-",),
        ),
    )


def headers(**values: str | list[str]) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in values.items():
        for v in [value] if isinstance(value, str) else value:
            out.append((key.replace("_", "-").lower().encode(), v.encode()))
    return out


HPA = [
    *headers(
        x_remote_user="system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        x_remote_group=["system:serviceaccounts", "system:authenticated"],
    ),
    (b"x-remote-extra-authentication.kubernetes.io%2fpod-name", b"kcm-0"),
]


class FakeReviewer:
    """kube-apiserver's reviews as a table, counting the calls."""

    def __init__(self) -> None:
        self.tokens: dict[str, User] = {}
        self.allowed: set[str] = set()
        self.token_calls = 0
        self.access_calls = 0
        self.fail = False
        self.delay = 0.0

    async def review_token(self, token: str) -> User | None:
        self.token_calls += 1
        if self.fail:
            raise KubeUnreachable("TokenReview (create)", 0, "Unreachable", "connection refused")
        return self.tokens.get(token)

    async def review_access(self, user: User, attributes: Attributes) -> tuple[bool, str]:
        self.access_calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise KubeUnreachable("SubjectAccessReview (create)", 0, "Unreachable", "refused")
        return user.name in self.allowed, "" if user.name in self.allowed else "no RBAC rule"


async def test_the_front_proxy_certificate_lets_headers_name_the_user() -> None:
    proxy = FRONT_PROXY.issue("front-proxy-client")
    user = await Authenticator(config()).authenticate(chain(proxy, FRONT_PROXY), HPA)
    assert user == User.of(
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ["system:serviceaccounts", "system:authenticated"],
        extra={"authentication.kubernetes.io/pod-name": ["kcm-0"]},
        proxied=True,
    )


async def test_identity_headers_without_the_front_proxy_certificate_are_refused() -> None:
    forged = headers(x_remote_user="system:admin", x_remote_group="system:masters")
    authn = Authenticator(config())
    with pytest.raises(Unauthorized):
        await authn.authenticate([], forged)
    client = CLIENTS.issue("front-proxy-client")  # the right name, the wrong CA
    user = await authn.authenticate(chain(client, CLIENTS), forged)
    assert user.name == "front-proxy-client"  # its own identity, never the headers'


async def test_a_front_proxy_name_not_allowed_is_refused_by_name() -> None:
    stranger = FRONT_PROXY.issue("someone-else")
    with pytest.raises(Unauthorized, match='CN "someone-else" is not one of') as refused:
        await Authenticator(config()).authenticate(chain(stranger, FRONT_PROXY), HPA)
    assert "front-proxy-client" in str(refused.value)


async def test_no_allowed_names_means_any_name_the_front_proxy_ca_signed() -> None:
    anyone = FRONT_PROXY.issue("aggregator")
    user = await Authenticator(config(allowed=())).authenticate(chain(anyone, FRONT_PROXY), HPA)
    assert user.name.endswith("horizontal-pod-autoscaler")


async def test_the_front_proxy_without_a_user_header_is_not_anyone() -> None:
    proxy = FRONT_PROXY.issue("front-proxy-client")
    with pytest.raises(Unauthorized):
        await Authenticator(config()).authenticate(chain(proxy, FRONT_PROXY), [])


async def test_a_client_certificate_is_its_cn_and_organizations() -> None:
    alice = CLIENTS.issue("alice", organizations=["team-a", "team-b"])
    user = await Authenticator(config()).authenticate(chain(alice, CLIENTS), [])
    assert (user.name, user.groups) == ("alice", ("team-a", "team-b", AUTHENTICATED))


async def test_a_certificate_from_an_authority_trusted_no_more_is_refused() -> None:
    alice = CLIENTS.issue("alice")
    authn = Authenticator(config())
    assert (await authn.authenticate(chain(alice, CLIENTS), [])).name == "alice"
    authn.update(AuthConfig(CaBundle.parse(OTHER.pem, "rotated client CA")))
    with pytest.raises(Unauthorized, match="not signed by a trusted authority"):
        await authn.authenticate(chain(alice, CLIENTS), [])


async def test_bearer_tokens_are_reviewed_once_per_ttl_and_never_kept_in_clear() -> None:
    reviewer = FakeReviewer()
    reviewer.tokens["t0k3n"] = User.of("bob", ["devs"])
    authn = Authenticator(config(), reviewer)
    bearer = headers(authorization="Bearer t0k3n")
    users = await asyncio.gather(*(authn.authenticate([], bearer) for _ in range(50)))
    assert {u.name for u in users} == {"bob"}
    assert reviewer.token_calls == 1
    with pytest.raises(Unauthorized, match="not accepted by TokenReview"):
        await authn.authenticate([], headers(authorization="Bearer wrong"))
    assert not any(b"t0k3n" in key for key in authn.tokens._answers)


async def test_a_token_review_that_fails_is_unavailable_not_unauthorized() -> None:
    reviewer = FakeReviewer()
    reviewer.fail = True
    with pytest.raises(ServiceUnavailable, match="cannot review the bearer token"):
        await Authenticator(config(), reviewer).authenticate([], headers(authorization="Bearer x"))


async def test_masters_are_allowed_without_a_round_trip() -> None:
    reviewer = FakeReviewer()
    await DelegatingAuthorizer(reviewer).authorize(User.of("admin", ["system:masters"]), METRIC)
    assert reviewer.access_calls == 0


async def test_decisions_are_remembered_so_the_hpa_rate_is_not_a_review_rate() -> None:
    reviewer = FakeReviewer()
    reviewer.delay = 0.01
    reviewer.allowed.add("hpa")
    authz = DelegatingAuthorizer(reviewer)
    hpa = User.of("hpa", ["system:serviceaccounts"])
    await asyncio.gather(*(authz.authorize(hpa, METRIC) for _ in range(200)))
    for _ in range(100):
        await authz.authorize(hpa, METRIC)
    assert reviewer.access_calls == 1


async def test_a_direct_caller_is_asked_again_sooner_than_a_forwarded_request() -> None:
    reviewer = FakeReviewer()
    reviewer.allowed.add("hpa")
    authz = DelegatingAuthorizer(reviewer, allow_ttl=0, proxied_allow_ttl=300)
    for _ in range(3):
        await authz.authorize(User.of("hpa"), METRIC)
    assert reviewer.access_calls == 3  # allow_ttl 0: a direct caller is reviewed each time
    for _ in range(3):
        await authz.authorize(User.of("hpa", proxied=True), METRIC)
    assert reviewer.access_calls == 4  # the aggregator authorized it: remembered
    assert (ALLOW_TTL, DENY_TTL) == (10.0, 10.0)  # k8s.io/apiserver's delegating defaults


async def test_a_denial_names_the_user_and_what_was_refused_and_is_remembered_apart() -> None:
    reviewer = FakeReviewer()
    authz = DelegatingAuthorizer(reviewer, allow_ttl=300, deny_ttl=0)
    nobody = User.of("nobody")
    for _ in range(2):
        with pytest.raises(Forbidden) as refused:
            await authz.authorize(nobody, METRIC)
    assert reviewer.access_calls == 2  # deny_ttl 0: denials are asked again
    assert str(refused.value) == (
        's0-cron.external.metrics.k8s.io is forbidden: User "nobody" cannot list resource '
        '"s0-cron" in API group "external.metrics.k8s.io" in the namespace "ns": no RBAC rule'
    )


async def test_an_authorizer_that_cannot_ask_answers_unavailable_and_remembers_nothing() -> None:
    reviewer = FakeReviewer()
    reviewer.fail = True
    authz = DelegatingAuthorizer(reviewer)
    with pytest.raises(ServiceUnavailable, match="cannot authorize the request"):
        await authz.authorize(User.of("hpa"), METRIC)
    reviewer.fail = False
    reviewer.allowed.add("hpa")
    await authz.authorize(User.of("hpa"), METRIC)
    assert reviewer.access_calls == 2


async def test_remembered_answers_share_one_failure_among_concurrent_askers() -> None:
    answers: RememberedAnswers[str, int] = RememberedAnswers(lambda _: 60)
    started = asyncio.Event()

    async def failing() -> int:
        started.set()
        await asyncio.sleep(0.01)
        raise KubeUnreachable("x", 0, "Unreachable", "down")

    first = asyncio.create_task(answers.get("k", failing))
    await started.wait()
    second = asyncio.create_task(answers.get("k", failing))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, KubeUnreachable) for r in results)
    assert (answers.calls, len(answers)) == (1, 0)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s0-cron",
            Attributes(
                "list",
                "",
                "external.metrics.k8s.io",
                "v1beta1",
                "ns",
                "s0-cron",
            ),
        ),
        (
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m/x",
            Attributes(
                "get",
                "",
                "external.metrics.k8s.io",
                "v1beta1",
                "ns",
                "m",
                "x",
            ),
        ),
        (
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1",
            Attributes("get", "/apis/external.metrics.k8s.io/v1beta1"),
        ),
        ("GET", "/apis", Attributes("get", "/apis")),
        ("POST", "/openapi/v2", Attributes("post", "/openapi/v2")),
    ],
)
def test_request_attributes_as_kube_apiserver_names_them(
    method: str, path: str, expected: Attributes
) -> None:
    assert attributes(method, path) == expected


def test_names_longer_than_kubernetes_allows_are_refused_before_any_review() -> None:
    base = "/apis/external.metrics.k8s.io/v1beta1/namespaces"
    with pytest.raises(BadRequest, match="namespace in the path is longer than 63"):
        attributes("GET", f"{base}/{'n' * 64}/m")
    with pytest.raises(BadRequest, match="resource in the path is longer than 253"):
        attributes("GET", f"{base}/ns/{'m' * 254}")
    with pytest.raises(BadRequest, match="path is longer than 1024"):
        attributes("GET", "/" + "p" * 1024)
    assert attributes("GET", f"{base}/{'n' * 63}/{'m' * 253}").resource == "m" * 253


async def test_the_front_proxy_without_a_user_is_told_so() -> None:
    proxy = FRONT_PROXY.issue("front-proxy-client")
    with pytest.raises(
        Unauthorized, match=r"front proxy's request names no user \(X-Remote-User\)"
    ):
        await Authenticator(config()).authenticate(chain(proxy, FRONT_PROXY), [])


def test_the_published_authentication_config_map_is_read() -> None:
    parsed = from_config_map(
        {
            "client-ca-file": CLIENTS.pem.decode(),
            "requestheader-client-ca-file": FRONT_PROXY.pem.decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        }
    )
    assert parsed == config()


def test_a_malformed_config_map_names_the_key_and_value() -> None:
    with pytest.raises(ValueError, match="requestheader-allowed-names: 'front-proxy' is not a"):
        from_config_map({"requestheader-allowed-names": "front-proxy"})
    with pytest.raises(ValueError, match="client-ca-file: not a PEM certificate bundle"):
        from_config_map({"client-ca-file": "garbage"})
    assert json.loads('["a"]') == ["a"]


async def test_remembered_answers_expire_and_stay_bounded() -> None:
    answers: RememberedAnswers[int, int] = RememberedAnswers(lambda v: 0.05 if v else 60, 8)

    async def ask(value: int) -> int:
        return value

    assert await answers.get(1, lambda: ask(1)) == 1
    assert await answers.get(1, lambda: ask(2)) == 1  # remembered
    await asyncio.sleep(0.06)
    assert await answers.get(1, lambda: ask(3)) == 3  # expired, asked again
    for key in range(2, 40):
        await answers.get(key, lambda: ask(0))
    assert len(answers) <= 8
    assert answers.calls == 40
    assert await answers.get(39, lambda: ask(5)) == 0  # the newest are kept


async def test_a_cancelled_asker_does_not_cancel_the_question_for_the_others() -> None:
    answers: RememberedAnswers[str, int] = RememberedAnswers(lambda _: 60)
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 7

    first = asyncio.create_task(answers.get("k", slow))
    second = asyncio.create_task(answers.get("k", slow))
    await asyncio.sleep(0)
    first.cancel()  # the HPA's connection went away
    await asyncio.sleep(0)
    release.set()
    assert await second == 7
    assert first.cancelled() and answers.calls == 1
    assert await answers.get("k", slow) == 7  # and it was remembered


async def test_identity_headers_follow_the_configured_order_and_skip_empty_values() -> None:
    rh = RequestHeaderConfig(
        CaBundle.parse(FRONT_PROXY.pem, "front-proxy CA"),
        (),
        ("X-Remote-User", "X-Other-User"),
        ("X-Remote-Group",),
    )
    proxy = FRONT_PROXY.issue("front-proxy-client")
    sent = [
        (b"x-other-user", b"second"),
        (b"x-remote-user", b""),
        (b"x-remote-user", b"first"),
        (b"x-remote-group", b""),
        (b"x-remote-group", b"g"),
    ]
    user = await Authenticator(AuthConfig(requestheader=rh)).authenticate(
        chain(proxy, FRONT_PROXY), sent
    )
    assert (user.name, user.groups) == ("first", ("g",))


def test_a_non_resource_head_is_reviewed_as_head() -> None:
    assert attributes("HEAD", "/apis").verb == "head"
