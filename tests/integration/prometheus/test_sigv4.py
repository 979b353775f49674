"""SigV4 for Amazon Managed Prometheus, verified the way AWS does it: a gateway on loopback in
front of the real Prometheus recomputes each request's signature with botocore's ``SigV4Auth``
(from the keys it knows and the request's own X-Amz-Date, over the query as AWS canonicalises
it), answers 403 on a mismatch as AMP would, and forwards what verifies. An unsigned trigger's
request is unchanged."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scalers import prometheus as prometheus_scaler
from scalers.errors import SourceResponseError
from tests.support.prometheus import PrometheusServer
from tests.support.servers import serving
from tests.support.triggers import build
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
KEYS = {"awsAccessKeyID": "AKIAAMPTEST", "awsSecretAccessKey": "amp-secret-key"}
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class Gateway:
    """What AMP's front door checks; ``secrets`` maps an access key to (secret, token)."""

    secrets: Mapping[str, tuple[str, str | None]]
    verified: list[Request] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def problem(self, request: Request) -> str | None:
        found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
        if found is None:
            return "no SigV4 Authorization header"
        if (found["service"], found["region"]) != ("aps", REGION):
            return f"signed for {found['service']} in {found['region']}"
        if found["key"] not in self.secrets:
            return "unknown access key"
        secret, token = self.secrets[found["key"]]
        if request.headers.get("x-amz-security-token") != token:
            return "wrong or missing X-Amz-Security-Token"
        # AWS decodes the query and encodes it again (RFC 3986) before it signs.
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        url += "?" + urlencode(sorted(pairs), quote_via=quote, safe="-_.~")
        headers = {name: request.headers[name] for name in found["signed"].split(";")}
        signed = AWSRequest(method=request.method, url=url, headers=headers)
        signed.context["timestamp"] = request.headers["x-amz-date"]
        signer = SigV4Auth(Credentials(found["key"], secret, token), "aps", REGION)
        canonical = signer.canonical_request(signed)
        expected = signer.signature(signer.string_to_sign(signed, canonical), signed)
        return None if expected == found["signature"] else "signature mismatch"


@pytest.fixture
async def gateway(prometheus: PrometheusServer) -> AsyncIterator[tuple[str, Gateway]]:
    checks = Gateway({KEYS["awsAccessKeyID"]: (KEYS["awsSecretAccessKey"], None)})
    upstream = httpx.AsyncClient(base_url=prometheus.url, trust_env=False)

    async def forward(request: Request) -> Response:
        problem = checks.problem(request)
        if problem is not None:
            checks.refused.append(problem)
            return JSONResponse({"message": problem}, status_code=403)
        checks.verified.append(request)
        answer = await upstream.get(f"{request.url.path}?{request.url.query}")
        return Response(answer.content, answer.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", forward)])
    try:
        async with serving(app) as url:
            yield url, checks
    finally:
        await upstream.aclose()


def scaler(
    server: str, metadata: dict[str, str], auth: dict[str, str] | None = None
) -> prometheus_scaler.PrometheusScaler:
    fields = {"serverAddress": server, "threshold": "10", **metadata}
    return build(prometheus_scaler.KIND, prometheus_scaler.PrometheusScaler, fields, auth)


async def test_static_keys_sign_each_query_as_aws_verifies_it(
    gateway: tuple[str, Gateway],
) -> None:
    url, checks = gateway
    # Spaces, quotes, braces, a pipe and a tilde: the query AWS re-encodes before it signs.
    query = 'sum(queue_depth{queue=~"jobs|mail"}) + 0 * count(up{job!~"x y~"})'
    s = scaler(url, {"query": query, "awsRegion": REGION, "queryParameters": "k=a b"}, KEYS)
    assert await measure(s) == 49
    assert await measure(s) == 49  # signed again, at its own time
    assert checks.refused == []
    assert len(checks.verified) == 2


async def test_a_session_token_is_sent_and_signed(gateway: tuple[str, Gateway]) -> None:
    url, checks = gateway
    checks.secrets = {"ASIATEMP": ("temp-secret", "temp-session-token")}
    keys = {
        "awsAccessKeyID": "ASIATEMP",
        "awsSecretAccessKey": "temp-secret",
        "awsSessionToken": "temp-session-token",
    }
    s = scaler(url, {"query": "sum(queue_depth)", "awsRegion": REGION}, keys)
    assert await measure(s) == 49
    assert "x-amz-security-token" in checks.verified[0].headers["authorization"]


async def test_the_adapter_s_own_keys_sign_for_identity_owner_operator(
    gateway: tuple[str, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, checks = gateway
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["awsAccessKeyID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["awsSecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    meta = {"query": "vector(5)", "awsRegion": REGION, "identityOwner": "operator"}
    assert await measure(scaler(url, meta)) == 5
    assert checks.refused == []


async def test_a_wrong_secret_is_refused_and_an_error_not_a_zero(
    gateway: tuple[str, Gateway],
) -> None:
    url, checks = gateway
    wrong = {**KEYS, "awsSecretAccessKey": "not-the-secret"}
    s = scaler(url, {"query": "vector(5)", "awsRegion": REGION}, wrong)
    with pytest.raises(SourceResponseError, match="403"):
        await measure(s)
    assert checks.refused == ["signature mismatch"]
    wrong_region = scaler(url, {"query": "vector(5)", "awsRegion": "us-east-1"}, KEYS)
    with pytest.raises(SourceResponseError, match="403"):
        await measure(wrong_region)
    assert checks.refused[-1] == "signed for aps in us-east-1"


async def test_an_unsigned_trigger_s_request_is_unchanged(prometheus: PrometheusServer) -> None:
    seen: list[Request] = []
    upstream = httpx.AsyncClient(base_url=prometheus.url, trust_env=False)

    async def forward(request: Request) -> Response:
        seen.append(request)
        answer = await upstream.get(f"{request.url.path}?{request.url.query}")
        return Response(answer.content, answer.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", forward)])
    try:
        async with serving(app) as url:
            # awsRegion alone finds no AWS identity, as in KEDA: nothing is signed.
            meta = {"query": "sum(queue_depth) + 0 * vector(1)", "awsRegion": REGION}
            assert await measure(scaler(url, meta)) == 49
    finally:
        await upstream.aclose()
    (request,) = seen
    assert not [h for h in request.headers if h.startswith("x-amz") or h == "authorization"]
    assert request.url.query.startswith("query=sum%28queue_depth%29+%2B+0+%2A+vector%281%29&")
