"""The client credentials token source, against a scripted token endpoint at the seam
(:meth:`Clients.post`); the real exchange with RabbitMQ is in tests/integration/rabbitmq."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from scalers.clients import Clients, HttpIdentity
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.oauth2 import ClientCredentials, TokenSource, parse_form, shown_url

URL = "https://idp.example/realms/r/token"
CREDENTIALS = ClientCredentials(URL, "keda client", "s3cret/+", scopes=("rabbitmq.read:*/*",))

Answer = httpx.Response | Exception | Callable[[dict[str, str]], httpx.Response]


class TokenEndpoint(Clients):
    """Answers token requests from a script and records what was sent."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[tuple[dict[str, str], dict[str, str]]] = []
        self.gate: asyncio.Event | None = None

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
    ) -> httpx.Response:
        assert url == URL
        form = dict(parse_qsl(content.decode(), keep_blank_values=True))
        self.sent.append((form, headers))
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer(form)


def token(access: str = "tok-1", **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"access_token": access, "token_type": "bearer", **extra})


def refused(status: int = 401, error: str = "invalid_client") -> httpx.Response:
    return httpx.Response(status, json={"error": error, "error_description": "bad credentials"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def basic(headers: dict[str, str]) -> str:
    return base64.b64decode(headers["authorization"].removeprefix("Basic ")).decode()


# The request.


async def test_the_request_is_x_oauth2_s_with_the_secret_in_basic_auth_first() -> None:
    clients = TokenEndpoint(token())
    extra = (("audience", "rabbitmq"), ("resource", "a b"), ("resource", "c"))
    credentials = ClientCredentials(URL, "keda client", "s3cret/+", ("a", "b"), extra)
    assert await TokenSource(credentials).authorization(clients) == "Bearer tok-1"
    [(form, headers)] = clients.sent
    assert form == {
        "grant_type": "client_credentials",
        "scope": "a b",
        "audience": "rabbitmq",
        "resource": "c",  # parse_qsl keeps the last; both were sent
    }
    assert basic(headers) == "keda+client:s3cret%2F%2B"  # each part query-escaped, as Go's
    assert headers["content-type"] == "application/x-www-form-urlencoded"


async def test_a_refused_basic_login_is_retried_in_the_form_and_that_style_kept() -> None:
    def only_in_form(form: dict[str, str]) -> httpx.Response:
        if form.get("client_secret") != "s3cret/+":
            return refused()
        return token(form["client_id"], expires_in=1)

    clients, clock = TokenEndpoint(only_in_form), Clock()
    source = TokenSource(CREDENTIALS, clock)
    assert await source.authorization(clients) == "Bearer keda client"
    clock.now += 1
    assert await source.authorization(clients) == "Bearer keda client"  # expired: fetched
    styles = ["authorization" in headers for _, headers in clients.sent]
    assert styles == [True, False, False]
    assert source.requests == 3


async def test_a_grant_type_may_be_replaced_but_not_the_scope() -> None:
    clients = TokenEndpoint(token())
    replaced = ClientCredentials(URL, "c", "s", endpoint_params=(("grant_type", "custom"),))
    await TokenSource(replaced).authorization(clients)
    assert clients.sent[0][0]["grant_type"] == "custom"
    clash = ClientCredentials(URL, "c", "s", ("a",), (("scope", "b"),))
    with pytest.raises(SourceResponseError, match='endpointParams cannot set "scope"'):
        await TokenSource(clash).authorization(clients)


# The cache.


@pytest.mark.parametrize(
    ("expires_in", "renewed_after"),
    [(3600, 3590.0), ("120", 110.0), (16, 8.0), (2, 1.0)],
)
async def test_a_token_is_renewed_shortly_before_it_expires(
    expires_in: object, renewed_after: float
) -> None:
    clock = Clock()
    clients = TokenEndpoint(token("old", expires_in=expires_in), token("new"))
    source = TokenSource(CREDENTIALS, clock)
    assert await source.authorization(clients) == "Bearer old"
    clock.now += renewed_after - 0.01
    assert await source.authorization(clients) == "Bearer old"
    clock.now += 0.01
    assert await source.authorization(clients) == "Bearer new"
    clock.now += 10**9  # no expires_in: never renewed, as x/oauth2
    assert await source.authorization(clients) == "Bearer new"
    assert source.requests == 2


async def test_equal_credentials_share_one_token_and_another_secret_does_not() -> None:
    clients = TokenEndpoint(lambda form: token(f"tok-{len(clients.sent)}"))
    same = ClientCredentials(URL, "keda client", "s3cret/+", scopes=("rabbitmq.read:*/*",))
    assert await CREDENTIALS.authorization(clients) == "Bearer tok-1"
    assert await same.authorization(clients) == "Bearer tok-1"
    other = ClientCredentials(URL, "keda client", "other", scopes=("rabbitmq.read:*/*",))
    assert await other.authorization(clients) == "Bearer tok-2"
    await clients.aclose()


async def test_concurrent_callers_share_one_request() -> None:
    clients = TokenEndpoint(token())
    clients.gate = asyncio.Event()
    source = TokenSource(CREDENTIALS)
    calls = [asyncio.create_task(source.authorization(clients)) for _ in range(5)]
    await asyncio.sleep(0)
    clients.gate.set()
    assert await asyncio.gather(*calls) == ["Bearer tok-1"] * 5
    assert source.requests == 1


async def test_a_failed_renewal_is_an_error_and_the_next_call_tries_again() -> None:
    clients = TokenEndpoint(refused(400, "invalid_scope"), refused(400, "invalid_scope"), token())
    source = TokenSource(CREDENTIALS)
    with pytest.raises(SourceResponseError, match="invalid_scope"):
        await source.authorization(clients)
    assert await source.authorization(clients) == "Bearer tok-1"


async def test_a_failed_renewal_keeps_the_current_token_until_it_expires() -> None:
    clock = Clock()
    outage = SourceUnreachable("connection refused")
    clients = TokenEndpoint(token("old", expires_in=60), outage, outage, token("new"))
    source = TokenSource(CREDENTIALS, clock)
    assert await source.authorization(clients) == "Bearer old"
    clock.now += 55  # due (10 s before), not expired: served on
    assert await source.authorization(clients) == "Bearer old"
    clock.now += 5  # expired: the failure is the trigger's
    with pytest.raises(SourceUnreachable, match="connection refused"):
        await source.authorization(clients)
    assert await source.authorization(clients) == "Bearer new"
    assert source.requests == 4


# The answer.


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (refused(), "refused: HTTP 401: invalid_client: bad credentials"),
        (httpx.Response(503, text="busy"), "refused: HTTP 503: 'busy'"),
        (httpx.Response(500), "refused: HTTP 500: (empty answer)"),
        (httpx.Response(200, json={"error": "access_denied"}), "refused: HTTP 200: access_denied"),
        (httpx.Response(200, json={"token_type": "bearer"}), "the answer has no access_token"),
        (
            httpx.Response(
                200, content=b"<p>tok-secret</p>", headers={"content-type": "text/html"}
            ),
            "the answer is not a JSON object",
        ),
        (token(expires_in=1.5), "expires_in 1.5 is not a whole number of seconds"),
        (httpx.Response(200, json={"access_token": 7}), "access_token in the answer is not a"),
    ],
)
async def test_a_bad_answer_is_an_error_naming_the_token_url(
    answer: httpx.Response, message: str
) -> None:
    with pytest.raises(SourceResponseError) as info:
        await TokenSource(CREDENTIALS).authorization(TokenEndpoint(answer))
    text = str(info.value)
    assert text.startswith(f'OAuth2 token from {URL} for client "keda client": ')
    assert message in text
    assert "s3cret" not in text and "tok-secret" not in text


async def test_an_unreachable_endpoint_is_not_retried_in_the_other_style() -> None:
    clients = TokenEndpoint(SourceTimeout(f"POST {URL}: no answer within 3s"))
    source = TokenSource(CREDENTIALS)
    with pytest.raises(SourceTimeout, match=f"^OAuth2 token from {URL} .*: POST {URL}: no answer"):
        await source.authorization(clients)
    assert source.requests == 1
    clients = TokenEndpoint(SourceUnreachable("connection refused"))
    with pytest.raises(SourceUnreachable, match="connection refused"):
        await TokenSource(CREDENTIALS).authorization(clients)


async def test_a_form_answer_and_token_types() -> None:
    form = httpx.Response(
        200,
        content=b"access_token=a%2Bb&token_type=mac&expires_in=soon",
        headers={"content-type": "text/plain; charset=utf-8"},
    )
    assert await TokenSource(CREDENTIALS).authorization(TokenEndpoint(form)) == "MAC a+b"
    custom = token(token_type="DPoP")
    assert await TokenSource(CREDENTIALS).authorization(TokenEndpoint(custom)) == "DPoP tok-1"
    plain = httpx.Response(200, json={"access_token": "t"})
    assert await TokenSource(CREDENTIALS).authorization(TokenEndpoint(plain)) == "Bearer t"


def test_no_repr_shows_the_secret_or_the_token() -> None:
    credentials = ClientCredentials(
        URL, "c", "s3cret", endpoint_params=(("client_assertion", "jwt-secret"),)
    )
    source = TokenSource(credentials)
    assert "s3cret" not in repr(credentials) and "jwt-secret" not in repr(credentials)
    assert "s3cret" not in credentials.describe()
    assert "tok" not in repr(source.__dict__.get("_token"))


# Parsing endpointParams as Go's url.ParseQuery.


def test_parse_form() -> None:
    assert parse_form("audience=rabbitmq&resource=a+b&x=%2F&&flag") == [
        ("audience", "rabbitmq"),
        ("resource", "a b"),
        ("x", "/"),
        ("flag", ""),
    ]
    with pytest.raises(ValueError, match="invalid URL escape"):
        parse_form("a=%zz")
    with pytest.raises(ValueError, match="invalid semicolon separator"):
        parse_form("a=1;b=2")
    assert parse_form("a=%zz&b=1", strict=False) == [("b", "1")]


def test_shown_url_hides_a_login() -> None:
    assert shown_url("https://u:p@idp/token") == "https://***@idp/token"
    assert shown_url(URL) == URL
