"""``rabbitmq``: queue length or message rates, read from the management API or over AMQP.

As KEDA's ``rabbitMQScaler``: ``protocol`` ``auto`` follows the host's scheme; ``http`` reads
``GET <host>/api/queues/<vhost>/<queue>`` (``messages``, or ``messages_ready`` with
``excludeUnacknowledged``; rates from ``message_stats``), ``amqp`` a passive
``queue.declare`` (ready messages only). ``useRegex`` sums, averages or takes the maximum
over the queues a regex matches. One request per queue serves every trigger on it: mode,
operation and ``excludeUnacknowledged`` are applied to the shared answer. Over HTTP the
login is the host's, authParams' ``username``/``password``, or an OAuth2 client credentials
token (:mod:`scalers.oauth2`, KEDA's ``oauthTokenURI``, ``clientID``, ``clientSecret``).
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, quote_plus, unquote, urlsplit

from scalers.base import Example, Measurement, Scaler, ScalerKind, normalize
from scalers.clients import HttpIdentity
from scalers.errors import ScalerError
from scalers.errors import quote as q
from scalers.oauth2 import ClientCredentials, parse_form
from scalers.params import Source, TriggerMetadata, param
from scalers.rabbitmq_client import AmqpQuery, AmqpServer, Answer, ManagementQuery, QueueStats
from scalers.tls_keys import decrypted_key
from scalers.wake import NoWake, Wake
from scalers.wake_rabbitmq import HTTP_ONLY, RabbitMQWatch

QUEUE_LENGTH = "QueueLength"
MESSAGE_RATE = "MessageRate"
DELIVER_GET_RATE = "DeliverGetRate"
PUBLISHED_TO_DELIVERED_RATIO = "PublishedToDeliveredRatio"
EXPECTED_QUEUE_CONSUMPTION_TIME = "ExpectedQueueConsumptionTime"
MODES = (
    QUEUE_LENGTH,
    MESSAGE_RATE,
    DELIVER_GET_RATE,
    PUBLISHED_TO_DELIVERED_RATIO,
    EXPECTED_QUEUE_CONSUMPTION_TIME,
)
OPERATIONS = ("sum", "avg", "max")
DEFAULT_VALUE = 20.0
SCHEMES = {"amqp": "amqp", "amqps": "amqp", "http": "http", "https": "http"}

_TRIGGER_AUTH = (Source.TRIGGER, Source.AUTH)
_AUTH_ENV = (Source.AUTH, Source.ENV)
_AUTH = (Source.AUTH,)


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    queue_name: str = param("queueName", doc="the queue, or a regex with useRegex")
    host: str = param(
        "host",
        order=(Source.TRIGGER, Source.AUTH, Source.ENV),
        doc="amqp(s)://user:pass@host:5672/vhost or http(s)://user:pass@host:15672/vhost",
        secret=True,  # the login is part of the URL
    )
    protocol: str = param(
        "protocol", order=_TRIGGER_AUTH, default="auto", enum=("auto", "amqp", "http")
    )
    mode: str | None = param("mode", optional=True, enum=MODES, doc="default QueueLength")
    value: float | None = param("value", optional=True, doc="the target; 20 when neither is set")
    queue_length: float | None = param(
        "queueLength", optional=True, doc="deprecated: mode QueueLength with value"
    )
    activation_value: float = param("activationValue", default="0")
    vhost_name: str | None = param("vhostName", order=_TRIGGER_AUTH, optional=True)
    use_regex: bool = param("useRegex", default="false")
    exclude_unacknowledged: bool = param("excludeUnacknowledged", default="false")
    page_size: int = param("pageSize", default="100", ge=1, doc="queues per regex request")
    operation: str = param("operation", default="sum", doc="sum, avg or max, with useRegex")
    timeout: timedelta | None = param(  # noqa: RUF009 (a frozen value)
        "timeout", optional=True, doc="30s, 500ms, or milliseconds"
    )
    username: str | None = param("username", order=_AUTH_ENV, optional=True)
    password: str | None = param("password", order=_AUTH_ENV, optional=True, secret=True)
    tls: str = param("tls", order=_AUTH, default="disable", enum=("enable", "disable"))
    ca: str | None = param("ca", order=_AUTH, optional=True)
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    oauth_token_uri: str | None = param("oauthTokenURI", order=_AUTH, optional=True)
    client_id: str | None = param("clientID", order=_AUTH, optional=True)
    client_secret: str | None = param("clientSecret", order=_AUTH, optional=True, secret=True)
    scopes: tuple[str, ...] | None = param(
        "scopes", aliases=("scope",), order=_AUTH, optional=True, doc="OAuth2, comma-separated"
    )
    endpoint_params: str | None = param(
        "endpointParams",
        order=_AUTH,
        optional=True,
        secret=True,  # may hold a client assertion
        doc="OAuth2: more token request fields, as a URL query (audience=rabbitmq)",
    )
    workload_identity_resource: str | None = param(
        "workloadIdentityResource", order=_AUTH, optional=True
    )

    @property
    def resolved_protocol(self) -> str | None:
        """``amqp`` or ``http``: ``auto`` follows the host's scheme, as in KEDA."""
        if self.protocol != "auto":
            return self.protocol
        return SCHEMES.get(urlsplit(self.host).scheme.lower())

    @property
    def trigger(self) -> tuple[str, float]:
        """The mode and target KEDA settles on (``queueLength`` and defaults included)."""
        if self.queue_length:
            return QUEUE_LENGTH, self.queue_length
        return self.mode or QUEUE_LENGTH, self.value or DEFAULT_VALUE

    @property
    def timeout_seconds(self) -> float | None:
        return self.timeout.total_seconds() if self.timeout else None

    def check(self) -> Iterator[tuple[str, str]]:
        """KEDA's ``Validate``; what KEDA finds only when it polls the management API (an
        unusable http host, an unknown ``operation``) fails the trigger then, here too."""
        protocol = self.resolved_protocol
        if protocol is None:
            shown = q(mask(self.host))
            yield "host", f"{shown} must start with amqp://, amqps://, http:// or https://"
        elif protocol == "amqp":  # KEDA connects when it creates the scaler
            yield from _amqp_host_problems(self.host)
        yield from self._check_trigger()
        if protocol == "amqp":
            if self.use_regex:
                yield "useRegex", "true needs protocol http (the management API)"
            if self.exclude_unacknowledged:
                yield "excludeUnacknowledged", "true needs protocol http (AMQP counts ready only)"
            if self.mode and self.timeout_seconds:  # KEDA checks it only with an explicit mode
                yield "timeout", "is not supported with protocol amqp"
        if bool(self.username) != bool(self.password):
            yield "username", "and password must be given together (from the authentication)"
        if bool(self.cert) != bool(self.key):
            yield "cert", "and key must be given together (from the authentication)"
        if self.key and self.key_password:
            try:
                decrypted_key(self.key, self.key_password)
            except (ValueError, TypeError) as exc:
                yield "keyPassword", f"does not decrypt key (from the authentication): {exc}"
        yield from self._check_identity(protocol)

    def _check_identity(self, protocol: str | None) -> Iterator[tuple[str, str]]:
        oauth = (self.oauth_token_uri, self.client_id, self.client_secret)
        if any(oauth):
            if not all(oauth):
                yield "oauthTokenURI", "clientID and clientSecret are required together for OAuth2"
            elif protocol == "amqp":
                yield "oauthTokenURI", "OAuth2 needs protocol http, not amqp"
            elif (self.username and self.password) or self.workload_identity_resource:
                yield (
                    "oauthTokenURI",
                    "OAuth2 cannot be combined with username/password or workloadIdentityResource",
                )
        if self.endpoint_params:  # KEDA parses it whenever it is given
            try:
                parse_form(self.endpoint_params)
            except ValueError as exc:
                yield "endpointParams", f"is not a URL query (from the authentication): {exc}"
        if self.workload_identity_resource:
            yield (
                "workloadIdentityResource",
                (
                    "Azure AD workload identity is not supported by metrics-adapter: it would need "
                    "an Azure AD token for the pod's identity"
                ),
            )

    def host_problem(self) -> str | None:
        """Why the management API at ``host`` cannot be requested: KEDA's request fails then,
        when it polls, and so does the trigger here (the object stays Ready)."""
        parts = urlsplit(self.host)
        shown = q(mask(self.host))
        if SCHEMES.get(parts.scheme.lower()) != "http":
            return f"host {shown} is not an http:// or https:// URL, which protocol http needs"
        try:
            _ = parts.port
        except ValueError:
            return f"host {shown} has an invalid port"
        return None if parts.hostname else f"host {shown} has no host name"

    def _check_trigger(self) -> Iterator[tuple[str, str]]:
        # KEDA's rules: a zero counts as unset; queueLength is the deprecated spelling.
        if self.queue_length and (self.mode or self.value):
            yield "queueLength", "is deprecated and cannot be combined with mode and value"
        elif self.value and not self.mode and not self.queue_length:
            yield "mode", f"is required with value ({', '.join(MODES)})"
        elif self.mode and not self.value and not self.queue_length:
            yield "value", f"is required with mode {self.mode}"
        for name, number in (("value", self.value), ("queueLength", self.queue_length)):
            if number is not None and number < 0:
                yield name, f"{q(f'{number:g}')} must be greater than 0"
        mode = self.trigger[0]
        if mode != QUEUE_LENGTH and self.resolved_protocol == "amqp":
            yield "mode", f"{mode} needs protocol http; AMQP reports only the message count"


def _amqp_host_problems(host: str) -> Iterator[tuple[str, str]]:
    parts = urlsplit(host)
    shown = q(mask(host))
    if SCHEMES.get(parts.scheme.lower()) != "amqp":
        yield "host", f"{shown} must start with amqp:// or amqps:// for protocol amqp"
        return
    try:
        _ = parts.port
    except ValueError:
        yield "host", f"{shown} has an invalid port"
        return
    if not parts.hostname:
        yield "host", f"{shown} has no host name"


def mask(url: str) -> str:
    """``amqp://user:pass@host`` → ``amqp://***@host``, for messages. Everything up to the
    last ``@`` goes: a password with an unescaped ``/`` must not show either."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


@dataclass(frozen=True, kw_only=True)
class RabbitMQScaler(Scaler[Answer]):
    meta: Metadata
    query: ManagementQuery | AmqpQuery
    mode: str
    """The mode KEDA settles on (``queueLength`` and the defaults included)."""

    def measure(self, answer: Answer) -> float | Measurement:
        """The mode's value; activation compares KEDA's rule for the mode, which for rates
        also looks at the message count (see :func:`reading`)."""
        if isinstance(answer, QueueStats):
            stats = answer
        elif self.meta.operation in OPERATIONS:
            stats = aggregate(answer, self.meta.operation)
        else:  # KEDA too finds out when it aggregates what the regex matched
            raise ScalerError(
                f"operation {q(self.meta.operation)} is not one of: {', '.join(OPERATIONS)}"
            )
        count = stats.ready if self.meta.exclude_unacknowledged else stats.messages
        value, activity = reading(self.mode, count, stats, self.meta.activation_value)
        return value if activity == value else Measurement(value, activity)

    def wake(self) -> Wake | NoWake:
        """Passive declares of the queue over AMQP (:mod:`scalers.wake_rabbitmq`), on a
        connection of the trigger's server, vhost and login."""
        if isinstance(self.query, AmqpQuery):
            return Wake(RabbitMQWatch(self.query.server), self.query.queue)
        return NoWake(HTTP_ONLY)


_LABELS = {
    QUEUE_LENGTH: "messages",
    MESSAGE_RATE: "publish rate",
    DELIVER_GET_RATE: "deliver/get rate",
    PUBLISHED_TO_DELIVERED_RATIO: "published/delivered ratio",
    EXPECTED_QUEUE_CONSUMPTION_TIME: "expected consumption seconds",
}


def reading(mode: str, count: int, stats: QueueStats, activation: float) -> tuple[float, float]:
    """One mode's value and the number KEDA's activity rule amounts to, compared ``>``
    ``activation``: "rate or count above it" is their maximum above it, and a queue that
    is published to (or holds messages) but never consumed has an infinite ratio or ETA."""
    publish, deliver = stats.publish_rate, stats.deliver_get_rate
    if mode == QUEUE_LENGTH:
        return float(count), float(count)
    if mode == MESSAGE_RATE:
        return publish, max(publish, float(count))
    if mode == DELIVER_GET_RATE:
        return deliver, deliver
    if mode == PUBLISHED_TO_DELIVERED_RATIO:
        if publish > 0 and deliver == 0:
            return activation, math.inf
        ratio = publish / deliver if publish > 0 else 0.0
        return ratio, ratio
    # ExpectedQueueConsumptionTime, with KEDA #8033: an empty queue takes no time.
    if count == 0:
        return 0.0, 0.0
    if deliver == 0:
        return activation, math.inf
    eta = (publish - deliver) / deliver + count / deliver
    return eta, eta


def aggregate(queues: tuple[QueueStats, ...], operation: str) -> QueueStats:
    """KEDA's composed queue: counts and rates summed, averaged (counts in whole
    messages, as Go's integer division) or maximised; no queue matched is all zeros."""
    if not queues:
        return QueueStats(0, 0)
    messages = [s.messages for s in queues]
    ready = [s.ready for s in queues]
    publish = [s.publish_rate for s in queues]
    deliver = [s.deliver_get_rate for s in queues]
    if operation == "max":
        return QueueStats(max(messages), max(ready), max(publish), max(deliver))
    summed = QueueStats(sum(messages), sum(ready), sum(publish), sum(deliver))
    if operation == "sum":
        return summed
    n = len(queues)
    return QueueStats(
        summed.messages // n,
        summed.ready // n,
        summed.publish_rate / n,
        summed.deliver_get_rate / n,
    )


def build(meta: Metadata) -> RabbitMQScaler:
    mode, target = meta.trigger
    return RabbitMQScaler(
        meta=meta,
        query=_query(meta),
        mode=mode,
        # KEDA: NormalizeString("rabbitmq-" + url.QueryEscape(queueName)).
        metric_name=normalize(f"rabbitmq-{quote_plus(meta.queue_name, safe='')}"),
        target=target,
        activation_target=meta.activation_value,
        value_label=_LABELS[mode],
    )


def _query(meta: Metadata) -> ManagementQuery | AmqpQuery:
    parts = urlsplit(meta.host)
    username, password = _login(meta, parts.username, parts.password)
    netloc = parts.netloc.rpartition("@")[2]
    key = meta.key
    if key and meta.key_password:
        with contextlib.suppress(ValueError, TypeError):  # check() refused what cannot open
            key = decrypted_key(key, meta.key_password)
    tls = HttpIdentity(verify=not meta.unsafe_ssl, ca_pem=meta.ca, cert_pem=meta.cert, key_pem=key)
    if meta.resolved_protocol == "amqp":
        vhost = meta.vhost_name or _amqp_vhost(parts.path)
        server = AmqpServer(
            parts.scheme.lower(),
            netloc,
            vhost,
            username if username is not None else "guest",
            password if password is not None else "guest",
            tls if meta.tls == "enable" else None,
        )
        return AmqpQuery(server, meta.queue_name)
    prefix, vhost_segment = _http_path(parts.path, meta.vhost_name)
    identity = tls if meta.tls == "enable" else HttpIdentity(verify=not meta.unsafe_ssl)
    oauth = _oauth(meta, identity)
    authorization = None
    if username is not None and oauth is None:  # KEDA's bearer replaces the host's login
        pair = f"{username}:{password or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    return ManagementQuery(
        base_url=f"{parts.scheme.lower()}://{netloc}{prefix}",
        vhost=vhost_segment,
        queue=meta.queue_name,
        regex=meta.use_regex,
        page_size=meta.page_size if meta.use_regex else 0,
        timeout=meta.timeout_seconds or None,
        authorization=authorization,
        oauth=oauth,
        identity=identity,
        problem=meta.host_problem(),
    )


def _oauth(meta: Metadata, identity: HttpIdentity) -> ClientCredentials | None:
    """KEDA's client credentials, fetched with the management API's TLS settings (one
    transport serves both in KEDA); ``unsafeSsl`` holds for both here, where KEDA's OAuth2
    client ignores it unless ``tls`` is ``enable``."""
    if not (meta.oauth_token_uri and meta.client_id and meta.client_secret):
        return None
    params: tuple[tuple[str, str], ...] = ()
    if meta.endpoint_params:
        with contextlib.suppress(ValueError):  # check() refused what does not parse
            params = tuple(parse_form(meta.endpoint_params))
    return ClientCredentials(
        token_url=meta.oauth_token_uri,
        client_id=meta.client_id,
        client_secret=meta.client_secret,
        scopes=meta.scopes or (),
        endpoint_params=params,
        identity=identity,
    )


def _login(meta: Metadata, user: str | None, password: str | None) -> tuple[str | None, str | None]:
    """The host's userinfo, replaced by authParams username/password when both are set."""
    if meta.username and meta.password:
        return meta.username, meta.password
    return (
        unquote(user) if user is not None else None,
        unquote(password) if password is not None else None,
    )


def _amqp_vhost(path: str) -> str:
    """The vhost of an AMQP URI: the path without its slash, ``/`` when empty."""
    return unquote(path[1:]) if len(path) > 1 else "/"


def _http_path(path: str, vhost_name: str | None) -> tuple[str, str]:
    """KEDA's split of the management URL: the last path segment is the vhost, the rest a
    prefix before ``/api``; ``vhostName`` overrides the vhost, the default vhost is ``%2F``."""
    segments = path.split("/")
    prefix = "/".join(s for s in segments[:-1] if s)
    vhost = quote(vhost_name, safe="") if vhost_name else segments[-1]
    return (f"/{prefix}" if prefix else ""), vhost or "%2F"


KIND = ScalerKind(
    type_name="rabbitmq",
    keda_name="rabbitMQScaler",
    metadata=Metadata,
    build=build,
    summary="Messages or message rates of a RabbitMQ queue (management API or AMQP).",
    example=Example(
        {"queueName": "jobs", "mode": "QueueLength", "value": "20"},
        {"host": "amqp://workers:rabbit-password@rabbitmq.default.svc:5672/jobs"},
        source="host",
    ),
)
