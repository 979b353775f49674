"""``rabbitmq``: parameters as KEDA reads them, the request they make, and each mode's value."""

from __future__ import annotations

import base64
import math
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scalers import rabbitmq
from scalers.base import Measurement, is_active, split
from scalers.clients import Clients, HttpIdentity
from scalers.errors import Problems, ScalerError, SourceResponseError, SourceUnreachable
from scalers.http1 import Target
from scalers.oauth2 import ClientCredentials
from scalers.params import TriggerInputs, parse_duration
from scalers.rabbitmq import RabbitMQScaler, aggregate, mask, reading
from scalers.rabbitmq_client import (
    AmqpQuery,
    ManagementQuery,
    QueueStats,
    matched_queues,
    queue_stats,
)

P = "triggers[0].metadata"
HTTP = "http://scaler:s3cret@rabbit:15672"
AMQP = "amqp://scaler:s3cret@rabbit:5672/%2F"
OAUTH = {"oauthTokenURI": "https://idp/token", "clientID": "keda", "clientSecret": "oauth-secret"}


def create(
    metadata: dict[str, str],
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[RabbitMQScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, env or {}, auth or {}, path=P)
    scaler = rabbitmq.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, RabbitMQScaler)
    return scaler, [str(p) for p in problems]


def built(
    metadata: dict[str, str],
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> RabbitMQScaler:
    scaler, problems = create({"queueName": "jobs", **metadata}, auth, env)
    assert problems == []
    assert scaler is not None
    return scaler


def http_query(scaler: RabbitMQScaler) -> ManagementQuery:
    assert isinstance(scaler.query, ManagementQuery)
    return scaler.query


def amqp_query(scaler: RabbitMQScaler) -> AmqpQuery:
    assert isinstance(scaler.query, AmqpQuery)
    return scaler.query


# Parameters.


def test_defaults_are_keda_s() -> None:
    scaler = built({"host": HTTP})
    assert (scaler.mode, scaler.target, scaler.activation_target) == ("QueueLength", 20.0, 0.0)
    assert scaler.value_label == "messages"
    meta = scaler.meta
    assert (meta.resolved_protocol, meta.operation, meta.page_size) == ("http", "sum", 100)
    assert not meta.use_regex and not meta.exclude_unacknowledged
    assert rabbitmq.KIND.keda_name == "rabbitMQScaler"


@pytest.mark.parametrize(
    ("metadata", "mode", "target"),
    [
        ({"mode": "QueueLength", "value": "7.5"}, "QueueLength", 7.5),
        ({"mode": "MessageRate", "value": "100"}, "MessageRate", 100.0),
        ({"queueLength": "12"}, "QueueLength", 12.0),
        # KEDA reads a zero as unset: nothing set at all, so the default.
        ({"value": "0"}, "QueueLength", 20.0),
        ({"mode": "DeliverGetRate", "value": "3"}, "DeliverGetRate", 3.0),
    ],
)
def test_mode_and_value(metadata: dict[str, str], mode: str, target: float) -> None:
    scaler = built({"host": HTTP, **metadata})
    assert (scaler.mode, scaler.target) == (mode, target)


@pytest.mark.parametrize(
    ("host", "protocol"),
    [
        ("amqp://rabbit", "amqp"),
        ("AMQPS://rabbit", "amqp"),
        ("http://rabbit:15672", "http"),
        ("https://rabbit", "http"),
    ],
)
def test_protocol_auto_follows_the_host_scheme(host: str, protocol: str) -> None:
    assert built({"host": host}).meta.resolved_protocol == protocol


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({}, f"{P}.host: is required"),
        (
            {"host": "ftp://u:pw@rabbit"},
            f'{P}.host: "ftp://***@rabbit" must start with amqp://, amqps://, http:// or https://',
        ),
        (
            {"host": "rabbit:5672"},
            f'{P}.host: "rabbit:5672" must start with amqp://, amqps://, http:// or https://',
        ),
        (
            {"host": HTTP, "protocol": "amqp"},
            f'{P}.host: "http://***@rabbit:15672" must start with amqp:// or amqps:// for '
            "protocol amqp",
        ),
        ({"host": "amqp://rabbit:99999"}, f'{P}.host: "amqp://rabbit:99999" has an invalid port'),
        ({"host": "amqp:///vhost"}, f'{P}.host: "amqp:///vhost" has no host name'),
        (
            {"host": HTTP, "protocol": "mqtt"},
            f'{P}.protocol: "mqtt" is not one of: auto, amqp, http',
        ),
        (
            {"host": HTTP, "mode": "Fast"},
            f'{P}.mode: "Fast" is not one of: QueueLength, '
            "MessageRate, DeliverGetRate, PublishedToDeliveredRatio, ExpectedQueueConsumptionTime",
        ),
        ({"host": HTTP, "value": "ten"}, f'{P}.value: "ten" is not a number'),
        (
            {"host": HTTP, "value": "5"},
            f"{P}.mode: is required with value (QueueLength, "
            "MessageRate, DeliverGetRate, PublishedToDeliveredRatio, ExpectedQueueConsumptionTime)",
        ),
        ({"host": HTTP, "mode": "MessageRate"}, f"{P}.value: is required with mode MessageRate"),
        (
            {"host": HTTP, "mode": "QueueLength", "value": "0"},
            f"{P}.value: is required with mode QueueLength",
        ),
        (
            {"host": HTTP, "queueLength": "5", "value": "5"},
            f"{P}.queueLength: is deprecated and cannot be combined with mode and value",
        ),
        (
            {"host": HTTP, "queueLength": "5", "mode": "QueueLength"},
            f"{P}.queueLength: is deprecated and cannot be combined with mode and value",
        ),
        (
            {"host": HTTP, "mode": "QueueLength", "value": "-5"},
            f'{P}.value: "-5" must be greater than 0',
        ),
        (
            {"host": AMQP, "mode": "MessageRate", "value": "5"},
            f"{P}.mode: MessageRate needs protocol http; AMQP reports only the message count",
        ),
        (
            {"host": AMQP, "useRegex": "true"},
            f"{P}.useRegex: true needs protocol http (the management API)",
        ),
        (
            {"host": AMQP, "excludeUnacknowledged": "true"},
            f"{P}.excludeUnacknowledged: true needs protocol http (AMQP counts ready only)",
        ),
        (
            {"host": AMQP, "mode": "QueueLength", "value": "5", "timeout": "5s"},
            f"{P}.timeout: is not supported with protocol amqp",
        ),
        (
            {"host": HTTP, "timeout": "soon"},
            f'{P}.timeout: "soon" is not a duration (30s, 1m30s) or milliseconds',
        ),
        (
            {"host": HTTP, "timeout": "-5s"},
            f'{P}.timeout: "-5s" is negative',
        ),
        ({"host": HTTP, "pageSize": "0"}, f'{P}.pageSize: "0" must be at least 1'),
        (
            {"host": HTTP, "useRegex": "yes please"},
            f'{P}.useRegex: "yes please" is not a boolean (expected true or false)',
        ),
    ],
)
def test_metadata_problems(metadata: dict[str, str], problem: str) -> None:
    scaler, problems = create({"queueName": "jobs", **metadata})
    assert scaler is None
    assert problems == [problem]


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ({"username": "u"}, "username: and password must be given together"),
        ({"password": "p"}, "username: and password must be given together"),
        ({"cert": "C"}, "cert: and key must be given together"),
        ({"key": "K"}, "cert: and key must be given together"),
        ({"tls": "on"}, 'tls: "on" is not one of: enable, disable'),
        (
            {"cert": "C", "key": "K", "keyPassword": "pw"},
            "keyPassword: does not decrypt key (from the authentication)",
        ),
        (
            {"oauthTokenURI": "http://idp/token"},
            "oauthTokenURI: clientID and clientSecret are required together for OAuth2",
        ),
        (
            OAUTH | {"username": "u", "password": "p"},
            "oauthTokenURI: OAuth2 cannot be combined with username/password or "
            "workloadIdentityResource",
        ),
        (
            OAUTH | {"endpointParams": "audience=a;b"},
            "endpointParams: is not a URL query (from the authentication): invalid semicolon",
        ),
        (
            {"workloadIdentityResource": "api://rabbit"},
            "workloadIdentityResource: Azure AD workload identity is not supported by "
            "metrics-adapter: it would need an Azure AD token for the pod's identity",
        ),
    ],
)
def test_authentication_problems(auth: dict[str, str], problem: str) -> None:
    scaler, problems = create({"queueName": "jobs", "host": HTTP}, auth)
    assert scaler is None
    assert len(problems) == 1
    assert problem in problems[0]


def test_oauth2_is_refused_with_amqp_as_in_keda() -> None:
    scaler, problems = create({"queueName": "jobs", "host": AMQP}, OAUTH)
    assert scaler is None
    assert problems == [f"{P}.oauthTokenURI: OAuth2 needs protocol http, not amqp"]


def test_oauth2_with_workload_identity_is_refused_as_in_keda() -> None:
    _, problems = create(
        {"queueName": "jobs", "host": HTTP}, OAUTH | {"workloadIdentityResource": "x"}
    )
    assert any("OAuth2 cannot be combined" in p for p in problems)


def test_oauth2_reaches_the_query_instead_of_the_host_s_login() -> None:
    """KEDA's oauth2.Transport sets the header after net/http has put the URL's login
    there: the bearer wins, the login is not sent."""
    auth = OAUTH | {"scope": "rabbitmq.read:*/*, rabbitmq.tag:monitoring"}
    auth |= {"endpointParams": "audience=rabbitmq&resource=a+b"}
    query = http_query(built({"host": HTTP, "unsafeSsl": "true"}, auth))
    assert query.authorization is None
    assert query.oauth == ClientCredentials(
        "https://idp/token",
        "keda",
        "oauth-secret",
        scopes=("rabbitmq.read:*/*", "rabbitmq.tag:monitoring"),
        endpoint_params=(("audience", "rabbitmq"), ("resource", "a b")),
        identity=HttpIdentity(verify=False),
    )
    assert "oauth-secret" not in repr(query) and "audience" not in repr(query)
    scopes = http_query(built({"host": HTTP}, OAUTH | {"scopes": "a,b"})).oauth
    assert scopes is not None and scopes.scopes == ("a", "b")
    # Triggers with one identity provider and client share the query, so the token too.
    assert (
        built({"host": HTTP}, OAUTH).query
        == built({"host": HTTP, "value": "5", "mode": "QueueLength"}, OAUTH).query
    )


class OAuthRabbit(Clients):
    """A token endpoint and a management API at the seam, recording the headers."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
    ) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 300})

    async def get_bytes(
        self,
        url: str,
        *,
        headers: dict[str, str],
        identity: HttpIdentity,
        shown: str | None = None,
        sent: Target | None = None,
    ) -> bytes:
        self.seen.append(headers["authorization"])
        return b'{"name": "jobs", "messages": 4, "messages_ready": 3}'


async def test_the_management_api_is_asked_with_the_bearer_token() -> None:
    clients = OAuthRabbit()
    query = built({"host": "http://rabbit:15672"}, OAUTH).query
    assert await query.run(clients) == QueueStats(4, 3)
    assert await query.run(clients) == QueueStats(4, 3)
    assert clients.seen == ["Bearer tok", "Bearer tok"]
    await clients.aclose()


def test_a_timeout_over_amqp_is_refused_only_with_an_explicit_mode() -> None:
    """KEDA's quirk: its AMQP timeout check sits after the default-mode and queueLength
    returns, so only ``mode`` with ``value`` reaches it; elsewhere the timeout is unused."""
    assert built({"host": AMQP, "timeout": "5s"}).meta.timeout_seconds == 5.0
    assert built({"host": AMQP, "queueLength": "5", "timeout": "5s"}).meta.mode is None
    assert built({"host": AMQP, "mode": "QueueLength", "value": "5", "timeout": "0"})


def test_operation_is_only_checked_with_a_regex() -> None:
    # KEDA applies the operation only to a regex's queues; elsewhere it is ignored.
    assert built({"host": HTTP, "operation": "median"}).meta.operation == "median"


def test_an_unknown_operation_fails_the_regex_trigger_when_it_reads_the_queues() -> None:
    """KEDA accepts any ``operation`` and fails when it aggregates the matched queues."""
    scaler = built({"host": HTTP, "useRegex": "true", "operation": "median"})
    with pytest.raises(ScalerError, match=r'operation "median" is not one of: sum, avg, max'):
        scaler.measure(QUEUES)


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        (
            {"host": AMQP, "protocol": "http"},
            'host "amqp://***@rabbit:5672/%2F" is not an http:// or https:// URL, '
            "which protocol http needs",
        ),
        ({"host": "http://rabbit:99999"}, 'host "http://rabbit:99999" has an invalid port'),
        ({"host": "http:///api"}, 'host "http:///api" has no host name'),
    ],
)
async def test_a_management_url_keda_cannot_request_fails_the_trigger_when_polled(
    metadata: dict[str, str], problem: str
) -> None:
    """KEDA requests the management API only when it polls: the object is accepted and the
    trigger fails, naming the host without its password."""
    scaler = built(metadata)
    with pytest.raises(SourceUnreachable) as info:
        await scaler.query.run(Clients())
    assert str(info.value).endswith(problem)
    assert "s3cret" not in str(info.value)


def test_an_encrypted_client_key_is_decrypted_with_its_password() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()
    scaler = built({"host": HTTP}, {"tls": "enable", "cert": "C", "key": pem, "keyPassword": "pw"})
    identity = http_query(scaler).identity
    assert identity.key_pem is not None and "ENCRYPTED" not in identity.key_pem
    assert "BEGIN PRIVATE KEY" in identity.key_pem


def test_every_problem_is_reported_at_once() -> None:
    _, problems = create(
        {
            "queueName": "jobs",
            "host": AMQP,
            "mode": "MessageRate",
            "value": "5",
            "useRegex": "true",
            "timeout": "1s",
        },
        {"username": "only"},
    )
    assert problems == [
        f"{P}.mode: MessageRate needs protocol http; AMQP reports only the message count",
        f"{P}.useRegex: true needs protocol http (the management API)",
        f"{P}.timeout: is not supported with protocol amqp",
        f"{P}.username: and password must be given together (from the authentication)",
    ]
    _, problems = create({"value": "x", "pageSize": "-1"})
    assert problems == [
        f"{P}.queueName: is required",
        f"{P}.host: is required",
        f'{P}.value: "x" is not a number',
        f'{P}.pageSize: "-1" must be at least 1',
    ]


def test_no_problem_message_shows_the_password() -> None:
    for host in (
        "ftp://scaler:s3cret@rabbit",
        "amqp://scaler:s3cret@rabbit:0x1",
        "amqp://scaler:s3/cret@rabbit",
    ):
        _, problems = create({"queueName": "jobs", "host": host})
        assert problems
        assert not any("cret" in p or "scaler" in p for p in problems)


@pytest.mark.parametrize(
    ("metadata", "auth", "env", "host"),
    [
        ({"host": HTTP}, {"host": "http://auth"}, {}, HTTP),
        ({}, {"host": "http://auth"}, {"RMQ": "http://env"}, "http://auth"),
        ({"hostFromEnv": "RMQ"}, {}, {"RMQ": "http://env"}, "http://env"),
    ],
)
def test_host_sources_in_keda_order(
    metadata: dict[str, str], auth: dict[str, str], env: dict[str, str], host: str
) -> None:
    assert built(metadata, auth, env).meta.host == host


def test_protocol_and_vhost_may_come_from_the_authentication() -> None:
    scaler = built({"host": "https://rabbit"}, {"protocol": "http", "vhostName": "tenant"})
    assert http_query(scaler).vhost == "tenant"
    assert built({"host": HTTP, "protocol": "http"}, {"protocol": "amqp"}).meta.protocol == "http"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1500", 1.5),
        ("0", 0.0),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("+2s", 2.0),
        ("250us", 0.00025),
        ("1.5", None),
        ("5 s", None),
        ("s", None),
        ("", None),
        ("-1s", -1.0),
        ("-5", -0.005),
        ("+5", 0.005),
        ("10x", None),
        ("9" * 30, None),  # past int64: ParseInt refuses it (once an OverflowError here)
        ("9" * 5000, None),  # past what int() converts
        ("1" + "0" * 400 + "s", None),  # past what a Duration holds
        ("99999999999h", None),
    ],
)
def test_parse_duration_like_keda(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_timeout_reaches_the_query() -> None:
    assert http_query(built({"host": HTTP, "timeout": "1500"})).timeout == 1.5
    assert http_query(built({"host": HTTP, "timeout": "0"})).timeout is None


# Metric names.


@pytest.mark.parametrize(
    ("queue", "name"),
    [
        ("jobs", "rabbitmq-jobs"),
        ("orders.high", "rabbitmq-orders-high"),
        ("tenant/jobs", "rabbitmq-tenant-2Fjobs"),
        ("with space", "rabbitmq-with+space"),
        ("a:b~c_d", "rabbitmq-a-3Ab~c_d"),
        ("ü", "rabbitmq--C3-BC"),
        ("^jobs-.*$", "rabbitmq--5Ejobs---2A-24"),
    ],
)
def test_metric_name_is_keda_s_query_escaped_and_normalized(queue: str, name: str) -> None:
    assert built({"host": HTTP, "queueName": queue}).metric_name == name


# The request.


@pytest.mark.parametrize(
    ("host", "vhost_name", "url"),
    [
        ("http://rabbit:15672", None, "http://rabbit:15672/api/queues/%2F/jobs"),
        ("http://rabbit:15672/", None, "http://rabbit:15672/api/queues/%2F/jobs"),
        ("http://rabbit:15672/%2F", None, "http://rabbit:15672/api/queues/%2F/jobs"),
        ("http://rabbit:15672/tenant", None, "http://rabbit:15672/api/queues/tenant/jobs"),
        ("http://rabbit/mgmt/tenant", None, "http://rabbit/mgmt/api/queues/tenant/jobs"),
        ("http://rabbit:15672/tenant", "other", "http://rabbit:15672/api/queues/other/jobs"),
        ("http://rabbit:15672", "a/b c", "http://rabbit:15672/api/queues/a%2Fb%20c/jobs"),
        ("HTTPS://u:p@Rabbit:443", None, "https://Rabbit:443/api/queues/%2F/jobs"),
    ],
)
def test_management_url(host: str, vhost_name: str | None, url: str) -> None:
    metadata = {"host": host, **({"vhostName": vhost_name} if vhost_name else {})}
    assert http_query(built(metadata)).url == url


def test_regex_url_asks_one_page() -> None:
    query = http_query(built({"host": HTTP, "queueName": "^jobs-.+$", "useRegex": "true"}))
    assert query.url == (
        "http://rabbit:15672/api/queues/%2F?page=1&use_regex=true&pagination=false"
        "&name=%5Ejobs-.%2B%24&page_size=100"
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_go_in_a_header_never_in_the_url_or_a_repr() -> None:
    query = http_query(built({"host": "http://us%40er:p%3Ass@rabbit:15672"}))
    assert query.authorization == basic("us@er", "p:ss")
    assert "@" not in query.url and "p:ss" not in repr(query) and "Basic" not in repr(query)
    assert http_query(built({"host": "http://rabbit"})).authorization is None
    # Go's net/http sends a user without a password with an empty one.
    assert http_query(built({"host": "http://u@rabbit"})).authorization == basic("u", "")


def test_username_and_password_from_the_authentication_replace_the_host_s() -> None:
    auth = {"username": "svc", "password": "pw"}
    assert http_query(built({"host": HTTP}, auth)).authorization == basic("svc", "pw")
    server = amqp_query(built({"host": AMQP}, auth)).server
    assert (server.username, server.password) == ("svc", "pw")
    env = built(
        {"host": HTTP, "usernameFromEnv": "U", "passwordFromEnv": "W"},
        {},
        {"U": "envuser", "W": "envpw"},
    )
    assert http_query(env).authorization == basic("envuser", "envpw")


@pytest.mark.parametrize(
    ("host", "vhost_name", "vhost", "login"),
    [
        ("amqp://rabbit", None, "/", ("guest", "guest")),
        ("amqp://rabbit/", None, "/", ("guest", "guest")),
        ("amqp://u:hunter2@rabbit:5672/%2F", None, "/", ("u", "hunter2")),
        ("amqp://u@rabbit/tenant", None, "tenant", ("u", "guest")),
        ("amqps://u:p%40ss@rabbit/tenant", "other", "other", ("u", "p@ss")),
    ],
)
def test_amqp_server(host: str, vhost_name: str | None, vhost: str, login: tuple[str, str]) -> None:
    metadata = {"host": host, **({"vhostName": vhost_name} if vhost_name else {})}
    query = amqp_query(built(metadata))
    assert query.server.vhost == vhost
    assert (query.server.username, query.server.password) == login
    assert "@" not in query.describe() and login[1] not in repr(query)


def test_amqp_url_quotes_the_login_and_vhost() -> None:
    server = amqp_query(built({"host": "amqp://u:p%2Fw@rabbit:5672/a%2Fb"})).server
    assert server.url == "amqp://u:p%2Fw@rabbit:5672/a%2Fb"
    assert server.display == "amqp://rabbit:5672/a%2Fb"
    assert server.vhost == "a/b"


def test_tls_settings() -> None:
    plain = http_query(built({"host": "https://rabbit", "unsafeSsl": "true"}))
    assert plain.identity.verify is False and plain.identity.ca_pem is None
    auth = {"tls": "enable", "ca": "CA", "cert": "CERT", "key": "KEY"}
    pinned = http_query(built({"host": "https://rabbit"}, auth)).identity
    assert (pinned.ca_pem, pinned.cert_pem, pinned.key_pem, pinned.verify) == (
        "CA",
        "CERT",
        "KEY",
        True,
    )
    server = amqp_query(built({"host": "amqps://rabbit"}, auth)).server
    assert server.tls is not None and server.tls.ca_pem == "CA"
    assert amqp_query(built({"host": "amqps://rabbit"})).server.tls is None


def test_triggers_on_one_queue_share_one_query() -> None:
    """Mode, operation, activation and excludeUnacknowledged are read from one answer."""
    same = [
        built({"host": HTTP}),
        built({"host": HTTP, "mode": "MessageRate", "value": "50", "activationValue": "2"}),
        built({"host": HTTP, "excludeUnacknowledged": "true", "pageSize": "7"}),
        built({"host": HTTP, "protocol": "http", "operation": "max"}),
    ]
    assert len({s.query for s in same}) == 1
    different = [
        built({"host": HTTP, "queueName": "other"}),
        built({"host": "http://other:pw@rabbit:15672"}),
        built({"host": HTTP + "/tenant"}),
        built({"host": HTTP, "useRegex": "true"}),
        built({"host": HTTP, "useRegex": "true", "pageSize": "7"}),
        built({"host": HTTP, "timeout": "1s"}),
        built({"host": AMQP}),
    ]
    assert len({s.query for s in [same[0], *different]}) == 1 + len(different)
    amqp = [built({"host": AMQP}), built({"host": AMQP, "activationValue": "3"})]
    assert len({s.query for s in amqp}) == 1


def test_no_repr_shows_a_secret() -> None:
    auth = {"username": "svc", "password": "pw-secret", "tls": "enable", "cert": "C"}
    for host in (HTTP, AMQP):
        scaler = built({"host": host}, auth | {"key": "KEY-secret"})
        text = repr(scaler)
        assert "s3cret" not in text and "pw-secret" not in text and "KEY-secret" not in text
    oauth = built({"host": HTTP}, OAUTH | {"endpointParams": "client_assertion=jwt-secret"})
    assert "oauth-secret" not in repr(oauth) and "jwt-secret" not in repr(oauth)


def test_mask() -> None:
    assert mask("amqp://u:p@h:5672/v") == "amqp://***@h:5672/v"
    assert mask("http://u:pa/ss@h/v") == "http://***@h/v"
    assert mask("no scheme") == "no scheme"


# Values.

STATS = QueueStats(messages=12, ready=9, publish_rate=4.5, deliver_get_rate=1.5)


@pytest.mark.parametrize(
    ("metadata", "stats", "value", "active"),
    [
        ({}, STATS, 12.0, True),
        ({"excludeUnacknowledged": "true"}, STATS, 9.0, True),
        ({"activationValue": "12"}, STATS, 12.0, False),
        ({}, QueueStats(0, 0), 0.0, False),
        ({"mode": "MessageRate", "value": "10"}, STATS, 4.5, True),
        # Active on the backlog even without publishing, as KEDA.
        ({"mode": "MessageRate", "value": "10", "activationValue": "5"}, STATS, 4.5, True),
        ({"mode": "MessageRate", "value": "10", "activationValue": "20"}, STATS, 4.5, False),
        ({"mode": "MessageRate", "value": "10"}, QueueStats(3, 3), 0.0, True),
        ({"mode": "MessageRate", "value": "10"}, QueueStats(0, 0), 0.0, False),
        ({"mode": "DeliverGetRate", "value": "10"}, STATS, 1.5, True),
        ({"mode": "DeliverGetRate", "value": "10", "activationValue": "2"}, STATS, 1.5, False),
        ({"mode": "PublishedToDeliveredRatio", "value": "1"}, STATS, 3.0, True),
        (
            {"mode": "PublishedToDeliveredRatio", "value": "1", "activationValue": "0.5"},
            QueueStats(5, 5, 2.0, 0.0),
            0.5,
            True,
        ),
        ({"mode": "PublishedToDeliveredRatio", "value": "1"}, QueueStats(5, 5), 0.0, False),
        ({"mode": "ExpectedQueueConsumptionTime", "value": "60"}, STATS, 10.0, True),
        (
            {"mode": "ExpectedQueueConsumptionTime", "value": "60", "activationValue": "30"},
            QueueStats(4, 4, 0.0, 0.0),
            30.0,
            True,
        ),
        # KEDA #8033: an empty idle queue is 0 and inactive, so it can scale to zero.
        (
            {"mode": "ExpectedQueueConsumptionTime", "value": "60", "activationValue": "30"},
            QueueStats(0, 0),
            0.0,
            False,
        ),
    ],
)
def test_value_and_activity_per_mode(
    metadata: dict[str, str], stats: QueueStats, value: float, active: bool
) -> None:
    scaler = built({"host": HTTP, **metadata})
    measured, activity = split(scaler.measure(stats))
    assert measured == pytest.approx(value)
    assert is_active(activity, scaler.activation_target) is active


QUEUES = (QueueStats(2, 2, 1.0, 0.0), QueueStats(5, 4, 0.0, 2.0), QueueStats(10, 1, 3.5, 0.5))


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("sum", QueueStats(17, 7, 4.5, 2.5)),
        # Go's integer division for counts: 17 // 3, 7 // 3.
        ("avg", QueueStats(5, 2, 1.5, 2.5 / 3)),
        ("max", QueueStats(10, 4, 3.5, 2.0)),
    ],
)
def test_aggregate_over_regex_matches(operation: str, expected: QueueStats) -> None:
    assert aggregate(QUEUES, operation) == pytest.approx(expected)
    scaler = built({"host": HTTP, "useRegex": "true", "operation": operation})
    assert scaler.measure(QUEUES) == expected.messages


def test_no_queue_matched_is_zero_as_in_keda() -> None:
    scaler = built({"host": HTTP, "useRegex": "true"})
    assert scaler.measure(()) == 0.0
    assert not is_active(0.0, scaler.activation_target)


@pytest.mark.parametrize(
    ("mode", "count", "stats", "expected"),
    [
        ("QueueLength", 3, STATS, (3.0, 3.0)),
        # "rate above, or count above": the larger of the two is above.
        ("MessageRate", 12, STATS, (4.5, 12.0)),
        ("MessageRate", 2, STATS, (4.5, 4.5)),
        # Published to, never consumed: the ratio and the ETA are infinite.
        ("PublishedToDeliveredRatio", 5, QueueStats(5, 5, 2.0, 0.0), (7.0, math.inf)),
        ("ExpectedQueueConsumptionTime", 5, QueueStats(5, 5), (7.0, math.inf)),
    ],
)
def test_reading_is_value_and_the_number_activation_compares(
    mode: str, count: int, stats: QueueStats, expected: tuple[float, float]
) -> None:
    assert reading(mode, count, stats, 7.0) == expected


def test_measure_returns_a_measurement_only_where_activity_differs() -> None:
    assert built({"host": HTTP}).measure(STATS) == 12.0
    rate = built({"host": HTTP, "mode": "MessageRate", "value": "10"})
    assert rate.measure(STATS) == Measurement(4.5, 12.0)


# Answers.

QUEUE: dict[str, Any] = {
    "name": "jobs",
    "vhost": "/",
    "messages": 12,
    "messages_ready": 9,
    "messages_unacknowledged": 3,
    "message_stats": {
        "publish": 40,
        "publish_details": {"rate": 4.5},
        "deliver_get_details": {"rate": 1.5},
    },
}


def test_queue_stats_reads_the_management_answer() -> None:
    assert queue_stats(QUEUE, "q") == STATS


def test_absent_counts_and_rates_are_zero_as_in_keda() -> None:
    # A new queue's first answer, measured on RabbitMQ 3.10: no messages*, no message_stats.
    assert queue_stats({"name": "jobs", "vhost": "/"}, "q") == QueueStats(0, 0)
    assert queue_stats({**QUEUE, "message_stats": {"publish": 1}}, "q").publish_rate == 0.0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "q: the answer is not a RabbitMQ queue object"),
        ({"status": "ok"}, "q: the answer is not a RabbitMQ queue object"),
        ({**QUEUE, "messages": "12"}, 'q: messages is "12", not a message count'),
        ({**QUEUE, "messages": True}, "q: messages is true, not a message count"),
        ({**QUEUE, "messages_ready": -1}, "q: messages_ready is -1, not a message count"),
        ({**QUEUE, "message_stats": []}, "q: message_stats is not an object"),
        (
            {**QUEUE, "message_stats": {"publish_details": {"rate": "fast"}}},
            'q: message_stats.publish_details.rate is "fast", not a rate',
        ),
    ],
)
def test_garbage_is_an_error_never_a_zero(answer: Any, message: str) -> None:
    with pytest.raises(SourceResponseError) as info:
        queue_stats(answer, "q")
    assert str(info.value) == message


def test_regex_page() -> None:
    page = {"items": [QUEUE, {**QUEUE, "name": "jobs2"}], "page_count": 1}
    assert matched_queues(page, "r", 100) == (STATS, STATS)
    assert matched_queues({"items": [], "page_count": 0}, "r", 100) == ()
    with pytest.raises(
        SourceResponseError,
        match=r"r: the regex matches more queues than one "
        r"page holds \(pageSize 2, 3 pages\); raise pageSize",
    ):
        matched_queues({"items": [QUEUE, QUEUE], "page_count": 3}, "r", 2)
    with pytest.raises(SourceResponseError, match="r: the answer has no list of queues"):
        matched_queues(QUEUE, "r", 100)
