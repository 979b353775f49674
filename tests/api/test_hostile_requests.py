"""Hostile requests to the metrics API behind its gate, as a socket would deliver them.

Whatever a client sends (paths, selectors, query strings, headers, methods, identities), the
answer is a Kubernetes ``Status`` with a 4xx/503 code or a value, never a 500 nor an escaped
exception, and the store keeps answering the HPA correctly afterwards; memory retained per
request stays bounded.

Requests are parsed by h11 (as uvicorn's protocol does, with the production event-size limit)
and the ASGI scope built from the parsed event the way uvicorn builds it: an in-process client
such as httpx re-quotes paths and queries, and would hide the raw percent-encodings and bytes a
real client can send. What h11 itself refuses never reaches the app (see
``test_oversized_requests.py``) and is skipped here.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import string
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import h11
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message

from metrics_adapter.api.app import Health, create_app
from metrics_adapter.api.auth.authn import Authenticator
from metrics_adapter.api.auth.authz import ALLOW_TTL, DENY_TTL, DelegatingAuthorizer
from metrics_adapter.api.auth.identity import (
    MASTERS,
    Attributes,
    AuthConfig,
    CaBundle,
    RequestHeaderConfig,
    User,
)
from metrics_adapter.api.auth.middleware import AuthMiddleware
from metrics_adapter.api.auth.reviews import RememberedAnswers
from metrics_adapter.api.request_metrics import RequestMetrics
from metrics_adapter.errors import APIError, BadRequest
from metrics_adapter.kube.wire import SCALED_OBJECT_LABEL, scaled_object_name
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import ObjectRef
from tests.support.pki import CertificateAuthority, KeyPair

BASE = "/apis/external.metrics.k8s.io/v1beta1"
NAMESPACE, NAME, METRIC = "event-demo", "echo-worker", "s0-nats-jetstream-JOBS"
GOOD_PATH = f"{BASE}/namespaces/{NAMESPACE}/{METRIC}"
GOOD_QUERY = "labelSelector=" + quote(f"{SCALED_OBJECT_LABEL}={NAME}", safe="")
WHEN = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
ALLOWED = frozenset({200, 400, 401, 403, 404, 405, 413, 503})
"""405 included: the app answers a method no route has with a MethodNotAllowed Status."""
MAX_EVENT = 65536
"""uvicorn_servers' h11_max_incomplete_event_size."""
TOKEN = "token-of-the-hpa"
READERS = "readers"
PROBES = frozenset({"/healthz", "/livez", "/readyz"})

PROXY_CA = CertificateAuthority("front-proxy-ca")
CLIENT_CA = CertificateAuthority("client-ca")


def chain(ca: CertificateAuthority, pair: KeyPair) -> tuple[str, ...]:
    """A verified chain as ClientCertProtocol puts it in the scope: PEM, leaf first, CA last."""
    return (pair.cert_pem.decode(), ca.pem.decode())


IDENTITIES: dict[str, tuple[str, ...]] = {
    "none": (),
    "front-proxy": chain(PROXY_CA, PROXY_CA.issue("front-proxy-client")),
    "proxy-with-another-name": chain(PROXY_CA, PROXY_CA.issue("somebody-else")),
    "reader-certificate": chain(CLIENT_CA, CLIENT_CA.issue("hpa", organizations=[READERS])),
    "stranger-certificate": chain(CLIENT_CA, CLIENT_CA.issue("stranger")),
    "master-certificate": chain(CLIENT_CA, CLIENT_CA.issue("root", organizations=[MASTERS])),
}
HPA_HEADERS = [(b"x-remote-user", b"hpa"), (b"x-remote-group", READERS.encode())]


class Reviewer:
    """kube-apiserver's TokenReview and SubjectAccessReview at the Reviewer seam: one token
    is valid, and the group ``readers`` may get and list."""

    def __init__(self) -> None:
        self.access_reviews = 0

    async def review_token(self, token: str) -> User | None:
        return User.of("token-user", [READERS]) if token == TOKEN else None

    async def review_access(self, user: User, attributes: Attributes) -> tuple[bool, str]:
        self.access_reviews += 1
        allowed = READERS in user.groups and attributes.verb in ("get", "list")
        return allowed, "" if allowed else "no RBAC policy matched"


def populated_store() -> MetricStore:
    """A value, a failing metric, a metric never polled, and an object that did not parse."""
    store = MetricStore()
    ref = ObjectRef(NAMESPACE, NAME)
    store.register(ref, [METRIC, "s1-metric-api-depth", "s2-cron-x"])
    store.record_value(ref, METRIC, 50, True, WHEN)
    store.record_error(ref, "s1-metric-api-depth", "GET http://api: boom")
    store.register(ObjectRef(NAMESPACE, "fresh"), ["s0-cron-y"])
    store.mark_broken(ObjectRef(NAMESPACE, "broken"), "triggers[0].type: is required")
    return store


@dataclass
class Stack:
    """The production middleware order (uvicorn_servers): metrics, then the gate, then routes."""

    app: ASGIApp
    store: MetricStore
    authorizer: DelegatingAuthorizer
    authenticator: Authenticator


def stack(cache: int | None = None) -> Stack:
    """The gated app over :func:`populated_store`; ``cache`` shrinks the remembered answers
    from their production size (10,000) so that a test can fill them many times over."""
    store = populated_store()
    config = AuthConfig(
        client_ca=CaBundle.parse(CLIENT_CA.pem, "client CA"),
        requestheader=RequestHeaderConfig(
            ca=CaBundle.parse(PROXY_CA.pem, "request-header CA"),
            allowed_names=("front-proxy-client",),
        ),
    )
    reviewer = Reviewer()
    authenticator = Authenticator(config, reviewer)
    authorizer = DelegatingAuthorizer(reviewer)
    if cache is not None:
        authenticator.tokens = RememberedAnswers(
            lambda user: 60.0 if user is not None else 10.0, cache
        )
        authorizer.decisions = RememberedAnswers(lambda d: ALLOW_TTL if d[0] else DENY_TTL, cache)
    routes = create_app(store, Health(loaded=True, poller_running=lambda: True))
    app = RequestMetrics(AuthMiddleware(routes, authenticator, authorizer), Telemetry())
    return Stack(app, store, authorizer, authenticator)


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def request_bytes(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"host: adapter"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def parse(raw: bytes) -> h11.Request | None:
    """The request as uvicorn's h11 protocol reads it; ``None`` when h11 refuses it."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_EVENT)
    conn.receive_data(raw)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    return event if isinstance(event, h11.Request) else None


async def call(app: ASGIApp, event: h11.Request, client_chain: Sequence[str]) -> Answer:
    """Run one request through ``app`` with the scope uvicorn (and ClientCertProtocol) build."""
    raw_path, _, query_string = event.target.partition(b"?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": event.http_version.decode("ascii"),
        "server": ("127.0.0.1", 6443),
        "client": ("127.0.0.1", 50000),
        "scheme": "https",
        "method": event.method.decode("ascii"),
        "root_path": "",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": query_string,
        "headers": [(key.lower(), value) for key, value in event.headers],
        "state": {},
    }
    if client_chain:
        scope["extensions"] = {"tls": {"client_cert_chain": list(client_chain)}}
    sent: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the answer is sent
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *rest = sent
    assert start["type"] == "http.response.start", sent
    assert all(m["type"] == "http.response.body" for m in rest), sent
    assert not rest[-1].get("more_body", False), "the response was never finished"
    return Answer(
        start["status"],
        dict(start.get("headers", [])),
        b"".join(m.get("body", b"") for m in rest),
    )


async def send_raw(
    app: ASGIApp,
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    identity: str = "front-proxy",
) -> Answer | None:
    event = parse(request_bytes(method, target, headers))
    if event is None:
        return None
    return await call(app, event, IDENTITIES[identity])


def check_well_formed(answer: Answer, path: str) -> None:
    """No 500, and a body a Kubernetes client can read."""
    assert answer.status in ALLOWED, answer
    if path in PROBES and answer.status in (200, 503):
        assert answer.headers[b"content-type"].startswith(b"text/plain"), answer
        return
    assert answer.headers[b"content-type"] == b"application/json", answer
    body = json.loads(answer.body)
    if answer.status == 200:
        assert body["kind"] in (
            "ExternalMetricValueList",
            "APIResourceList",
            "APIGroup",
            "APIGroupList",
        ), body
        return
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    assert body["code"] == answer.status, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["reason"], str) and body["reason"], body


async def check_still_serving(s: Stack) -> None:
    """The HPA's own request still gets the stored value, byte for byte."""
    target = f"{GOOD_PATH}?{GOOD_QUERY}".encode()
    answer = await send_raw(s.app, b"GET", target, HPA_HEADERS)
    assert answer is not None
    assert answer.status == 200, answer
    assert answer.body == s.store.answer(NAMESPACE, NAME, METRIC)


# Strategies: only what h11 lets through a socket, so that nothing is rejected for grammar.

_VCHAR = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_TCHAR = st.sampled_from("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_FIELD_BYTE = st.sampled_from([b for b in range(1, 256) if bytes([b]) not in b" \t\n\r\x0b\x0c"])


def _long(alphabet: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.sampled_from(alphabet), st.integers(low, high))


segments = st.one_of(
    st.sampled_from([NAMESPACE, NAME, METRIC, "s2-cron-x", "fresh", "broken", "namespaces"]),
    st.sampled_from([".", "..", "%2e%2e", "%2F", "a%2Fb", "%00", "%ff%fe", "%", "%zz", "~"]),
    st.text(_VCHAR, min_size=1, max_size=60),  # raw: may hold %, ?, #, / and ;
    st.text(min_size=1, max_size=60).map(lambda s: quote(s, safe="")),  # any unicode, NUL, /
    _long("a-Z.%é", 1_000, 20_000).map(lambda s: quote(s, safe="%")),
)

_LABEL_VALUES = st.one_of(
    st.sampled_from([NAME, "fresh", "broken", "", "a" * 63, "a" * 64, "-x", "x-", "a b", "é"]),
    st.text(max_size=8),
)
_LABEL_KEYS = st.one_of(
    st.sampled_from(
        [
            SCALED_OBJECT_LABEL,
            SCALED_OBJECT_LABEL.upper(),
            "scaledobject.keda.sh/",
            "/name",
            "app",
            "a" * 64,
            "x.y/" + "b" * 63,
            "-bad",
            "k8s.io/a_b.c",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def near_valid_selectors(draw: st.DrawFn) -> str:
    """Selectors built from labels.Parse's grammar, each part possibly a little wrong."""
    terms = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(_LABEL_KEYS)
        form = draw(st.sampled_from(["equality", "set", "exists", "absent"]))
        if form == "equality":
            op = draw(st.sampled_from(["=", "==", "!=", "=!", "===", ""]))
            term = f"{key}{op}{draw(_LABEL_VALUES)}"
        elif form == "set":
            values = draw(st.lists(_LABEL_VALUES, max_size=4))
            op = draw(st.sampled_from([" in ", " notin ", "in", " in", " IN "]))
            opened, closed = draw(st.sampled_from([("(", ")"), ("(", ""), ("", ")"), ("((", ")")]))
            term = f"{key}{op}{opened}{','.join(values)}{closed}"
        elif form == "exists":
            term = key
        else:
            term = f"!{draw(st.sampled_from(['', ' ']))}{key}"
        space = draw(st.sampled_from(["", " ", "\t", "   "]))
        terms.append(f"{space}{term}{space}")
    return draw(st.sampled_from([",", ", ", ",,", " , "])).join(terms)


selectors = st.one_of(
    near_valid_selectors(),
    st.text(max_size=80),
    _long(" ,(=!a", 100, 5_000),
)

query_strings = st.one_of(
    selectors.map(lambda s: "labelSelector=" + quote(s, safe="")),
    st.text(_VCHAR, max_size=200),  # raw, as a client may send it
    st.lists(selectors.map(lambda s: quote(s, safe="")), max_size=3).map(
        lambda values: "&".join(f"labelSelector={v}" for v in values)
    ),
    st.builds(lambda q: f"{GOOD_QUERY}&{q}", st.text(_VCHAR, max_size=100)),
)

header_names = st.one_of(
    st.sampled_from(
        [
            b"x-remote-user",
            b"X-Remote-User",
            b"x-remote-group",
            b"x-remote-uid",
            b"x-remote-extra-",
            b"x-remote-extra-scopes",
            b"x-remote-extra-%zz",
            b"x-remote-extra-a%2Fb",
            b"X-Remote-Extra-%C3%A9%00",
            b"authorization",
            b"content-length",
            b"transfer-encoding",
            b"host",
            b"accept",
        ]
    ),
    st.text(_TCHAR, min_size=1, max_size=40).map(str.encode),
)
_field_content = st.lists(_FIELD_BYTE, min_size=1, max_size=40).map(bytes)
header_values = st.one_of(
    st.sampled_from(
        [
            b"",
            b"hpa",
            READERS.encode(),
            MASTERS.encode(),
            b"Bearer " + TOKEN.encode(),
            b"Bearer",
            b"bearer  x",
            b"Basic YTpi",
            b"chunked",
            b"10000000000",
            b"-1",
            b"1_000",
            b"9" * 5_000,
            b"0x10",
        ]
    ),
    st.lists(_field_content, min_size=1, max_size=4).map(b" ".join),
    _long("gé\x7f\x01", 1_000, 20_000).map(lambda s: s.encode("latin-1")),
)
header_lists = st.one_of(
    st.lists(st.tuples(header_names, header_values), max_size=20),
    st.lists(header_values, max_size=400).map(lambda vs: [(b"x-remote-group", v) for v in vs]),
)
methods = st.one_of(
    st.just("GET"),
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]),
    st.text(_TCHAR, min_size=1, max_size=20),
).map(str.encode)
paths = st.one_of(
    st.tuples(segments, segments).map(lambda p: f"{BASE}/namespaces/{p[0]}/{p[1]}"),
    st.lists(segments, max_size=8).map(lambda p: "/" + "/".join(p)),
    st.sampled_from([BASE, "/apis", "/apis/external.metrics.k8s.io", "/healthz", "/", "*"]),
    st.sampled_from([f"{BASE}/namespaces/{NAMESPACE}", f"{GOOD_PATH}/extra", f"{BASE}/"]),
)

hostile = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def served() -> Stack:
    """One stack for the module: like a running server, it sees every example in turn."""
    return stack()


@settings(hostile, max_examples=400)
@given(
    method=methods,
    path=paths,
    query=st.none() | query_strings,
    headers=header_lists,
    identity=st.just("front-proxy") | st.sampled_from(sorted(IDENTITIES)),
    as_the_hpa=st.booleans(),
)
@example(
    method=b"GET",
    path=GOOD_PATH,
    query=GOOD_QUERY,
    headers=[(b"content-length", b"9" * 5_000)],
    identity="none",
    as_the_hpa=False,
)
async def test_any_request_gets_a_status_or_a_value(
    served: Stack,
    method: bytes,
    path: str,
    query: str | None,
    headers: list[tuple[bytes, bytes]],
    identity: str,
    as_the_hpa: bool,
) -> None:
    """``as_the_hpa``: the headers follow the HPA's own identity headers, so that more
    requests get past the gate to the routes."""
    target = path.encode() if query is None else f"{path}?{query}".encode()
    headers = [*HPA_HEADERS, *headers] if as_the_hpa else headers
    answer = await send_raw(served.app, method, target, headers, identity)
    assume(answer is not None)  # h11 refused it: the app never sees it
    assert answer is not None
    event(f"status {answer.status}")
    check_well_formed(answer, unquote(path))
    await check_still_serving(served)


@hostile
@given(selector=selectors, metric=st.sampled_from([METRIC, "s1-metric-api-depth", "s0-cron-y"]))
@example(selector=" " * 4_095 + "=", metric=METRIC)
@example(selector=f"{SCALED_OBJECT_LABEL} in (broken)", metric=METRIC)
async def test_selectors_are_answered_as_the_parser_and_store_decide(
    served: Stack, selector: str, metric: str
) -> None:
    """The query string reaches the selector parser unchanged, whatever it holds."""
    target = f"{BASE}/namespaces/{NAMESPACE}/{metric}?labelSelector={quote(selector, safe='')}"
    answer = await send_raw(served.app, b"GET", target.encode(), HPA_HEADERS)
    assert answer is not None
    check_well_formed(answer, "")
    code, expected = oracle(served.store, selector, metric)
    body = answer.body if answer.status == 200 else json.loads(answer.body)["reason"]
    assert (answer.status, body) == (code, expected)


def oracle(store: MetricStore, selector: str, metric: str) -> tuple[int, bytes | str]:
    """What the selector parser and the store say, without HTTP: the code and the value, or
    the Status reason."""
    try:
        return 200, store.answer(NAMESPACE, scaled_object_name(selector), metric)
    except APIError as error:
        return error.code, error.reason


def _first_user(headers: Sequence[tuple[bytes, bytes]]) -> str:
    return next((v.decode("latin-1") for k, v in headers if k == b"x-remote-user" and v), "")


@hostile
@given(
    user=st.none() | header_values,
    groups=st.lists(header_values, max_size=300),
    extras=st.lists(st.tuples(header_names, header_values), max_size=20),
)
async def test_front_proxy_identities_decide_401_403_or_200(
    served: Stack,
    user: bytes | None,
    groups: list[bytes],
    extras: list[tuple[bytes, bytes]],
) -> None:
    """The front proxy may assert any identity: no identity is 401, one that may not read is
    403 (naming the user), a reader or a master gets the value."""
    headers = [(b"x-remote-group", g) for g in groups]
    headers += [(b"x-remote-extra-" + k, v) for k, v in extras]
    if user is not None:
        headers.insert(len(headers) // 2, (b"x-remote-user", user))
    target = f"{GOOD_PATH}?{GOOD_QUERY}".encode()
    answer = await send_raw(served.app, b"GET", target, headers)
    assume(answer is not None)
    assert answer is not None
    check_well_formed(answer, GOOD_PATH)
    name = _first_user(headers)
    group_names = {g.decode("latin-1") for g in groups}
    if not name:
        assert answer.status == 401, answer
    elif group_names & {READERS, MASTERS}:
        assert answer.status == 200, answer
    else:
        assert answer.status == 403, answer
        assert f'User "{name}"' in json.loads(answer.body)["message"], answer


async def test_a_front_proxy_request_without_a_user_says_why() -> None:
    answer = await send_raw(stack().app, b"GET", f"{GOOD_PATH}?{GOOD_QUERY}".encode())
    assert answer is not None and answer.status == 401
    assert "not signed by a trusted authority" not in json.loads(answer.body)["message"]


async def test_a_trailing_slash_is_answered_not_redirected() -> None:
    answer = await send_raw(stack().app, b"GET", f"{BASE}/".encode(), HPA_HEADERS)
    assert answer is not None
    assert answer.status == 404 and b"location" not in answer.headers, answer
    check_well_formed(answer, "")


def test_the_oracle_agrees_with_the_parser_on_a_plain_selector() -> None:
    """The selector test above uses the parser as its oracle; pin it to one known answer."""
    assert scaled_object_name(f"{SCALED_OBJECT_LABEL}={NAME}") == NAME
    with pytest.raises(BadRequest):
        scaled_object_name("a=b=c")


# Memory: nothing keyed by what a client sends may grow with the number of requests.

MiB = 1024 * 1024


def _word(rng: random.Random, length: int = 12) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=length))


async def distinct_requests(s: Stack, rng: random.Random, count: int) -> set[int]:
    """``count`` requests, each new in what a cache could be keyed by: metric, selector,
    namespace, user, groups, extra, token, query."""
    codes = set()
    for i in range(count):
        word = _word(rng)
        identity, headers = "front-proxy", HPA_HEADERS
        target = f"{BASE}/namespaces/{NAMESPACE}/s0-{word}?{GOOD_QUERY}"
        if i % 5 == 1:
            target = f"{GOOD_PATH}?labelSelector={quote(f'{SCALED_OBJECT_LABEL}={word}')}"
        elif i % 5 == 2:
            target = f"{GOOD_PATH}?{GOOD_QUERY}"
            headers = [
                (b"x-remote-user", word.encode()),
                (b"x-remote-group", READERS.encode()),
                (b"x-remote-group", f"g-{word}".encode()),
                (f"x-remote-extra-{word}".encode(), word.encode()),
            ]
        elif i % 5 == 3:
            identity, headers = "none", [(b"authorization", f"Bearer {word}".encode())]
            target = f"{BASE}/namespaces/ns-{word}/{METRIC}?{GOOD_QUERY}"
        elif i % 5 == 4:
            identity, headers = "stranger-certificate", []
            target = f"{GOOD_PATH}?{GOOD_QUERY}&{word}={word}"
        answer = await send_raw(s.app, b"GET", target.encode(), headers, identity)
        assert answer is not None
        codes.add(answer.status)
    return codes


def retained(snapshot: tracemalloc.Snapshot) -> str:
    top = snapshot.statistics("lineno")[:8]
    return "\n".join(str(stat) for stat in top)


async def test_distinct_requests_retain_bounded_memory() -> None:
    """20,000 requests, each new in every name it carries: once the remembered answers are
    full (shrunk to 100 so that 10,000 requests turn them over many times), another 5,000
    retain nothing. Any cache keyed by a client's input that kept as little as 128 bytes per
    request of one kind would retain more than the bound."""
    cache = 100
    s = stack(cache)
    rng = random.Random(20_000)
    await distinct_requests(s, rng, 10_000)
    gc.collect()
    tracemalloc.start()
    try:
        await distinct_requests(s, rng, 5_000)
        gc.collect()
        full, _ = tracemalloc.get_traced_memory()
        codes = await distinct_requests(s, rng, 5_000)
        gc.collect()
        later, _ = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert codes == {200, 401, 403, 404}, codes
    growth = later - full
    assert growth < 128 * 1024, f"{growth / 1024:.0f} KiB retained:\n{retained(snapshot)}"
    assert len(s.authorizer.decisions) <= cache
    assert len(s.authenticator.tokens) <= cache
    await check_still_serving(s)


async def test_remembered_decisions_do_not_grow_with_path_length() -> None:
    """A principal with no access at all sends 200 requests with 30 KiB metric names (refused
    before any review), then 200 denied ones with names as long as Kubernetes allows."""
    s = stack()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(200):
            target = f"{BASE}/namespaces/{NAMESPACE}/{i}-{'x' * 30_000}?{GOOD_QUERY}"
            answer = await send_raw(s.app, b"GET", target.encode(), [], "stranger-certificate")
            assert answer is not None and answer.status == 400
            target = f"{BASE}/namespaces/{NAMESPACE}/{i:03}-{'x' * 249}?{GOOD_QUERY}"
            answer = await send_raw(s.app, b"GET", target.encode(), [], "stranger-certificate")
            assert answer is not None and answer.status == 403
        gc.collect()
        growth, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert growth < 1 * MiB, f"{growth / MiB:.1f} MiB retained by 200 denied requests"
