"""``artemis-queue``: the message count of an ActiveMQ Artemis queue, read through the
broker's web console (Jolokia).

As KEDA's ``artemisScaler``: ``GET http://<managementEndpoint>/console/jolokia/read/
org.apache.activemq.artemis:broker="<brokerName>",component=addresses,
address="<brokerAddress>",subcomponent=queues,routing-type="anycast",queue="<queueName>"/
MessageCount`` (every message in the queue, those being delivered included), with basic
auth and ``Origin: http://<managementEndpoint>`` unless ``corsHeader`` says otherwise: the
console's Jolokia policy refuses origins it does not list (:mod:`scalers.jolokia`). A
``restApiTemplate`` replaces the whole URL; the names are then taken from it, quotes and
all, as KEDA takes them (its metric name is ``artemis-"<queue>"``). Note KEDA's default
``activationQueueLength`` of 10: a queue is active only above 10 messages.

Where we differ from KEDA v2.20.2 on purpose: a template is read the same whether its
quotes are written ``"`` or ``%22`` (KEDA reads only the first, and panics on the second),
and one that is not an http(s) URL naming the three properties is refused with a message;
``queueLength`` must be above 0; ``ca`` is trusted without a client pair too (KEDA builds
its TLS settings only when ``cert`` and ``key`` are given); a ``value`` of ``null`` is an
error, not a zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import HttpIdentity
from scalers.jolokia import (
    JolokiaRead,
    ParsedTemplate,
    default_origin,
    parse_template,
    without_login,
)
from scalers.params import Source, TriggerMetadata, param
from scalers.tls_keys import decrypted_key

DEFAULT_TEMPLATE = (
    'http://{endpoint}/console/jolokia/read/org.apache.activemq.artemis:broker="{broker}",'
    'component=addresses,address="{address}",subcomponent=queues,routing-type="anycast",'
    'queue="{queue}"/MessageCount'
)
_LOGIN = (Source.AUTH, Source.TRIGGER, Source.ENV)
_AUTH = (Source.AUTH,)
_FROM_TEMPLATE = (("address", "brokerAddress"), ("queue", "queueName"), ("broker", "brokerName"))


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    management_endpoint: str | None = param(
        "managementEndpoint", optional=True, doc="host:port of the web console"
    )
    queue_name: str | None = param("queueName", optional=True)
    broker_name: str | None = param("brokerName", optional=True)
    broker_address: str | None = param("brokerAddress", optional=True, doc="the queue's address")
    username: str = param("username", order=_LOGIN)
    password: str = param("password", order=_LOGIN, secret=True)
    rest_api_template: str | None = param(
        "restApiTemplate",
        optional=True,
        secret=True,  # a URL may carry a login
        doc="the whole read URL instead of the four parameters above",
    )
    queue_length: int = param("queueLength", default="10", gt=0, target=True)
    activation_queue_length: int = param("activationQueueLength", default="10")
    cors_header: str | None = param(
        "corsHeader", optional=True, doc="the Origin sent; default http://<managementEndpoint>"
    )
    unsafe_ssl: bool = param("unsafeSsl", default="false")
    ca: str | None = param("ca", order=_AUTH, optional=True)
    cert: str | None = param("cert", order=_AUTH, optional=True)
    key: str | None = param("key", order=_AUTH, optional=True, secret=True)
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)

    @property
    def parsed(self) -> ParsedTemplate | str | None:
        """The ``restApiTemplate`` as KEDA parses it, its problem, or ``None`` without one."""
        if not self.rest_api_template:
            return None
        return parse_template(self.rest_api_template, drop='""')

    @property
    def names(self) -> tuple[str, str, str, str]:
        """``(managementEndpoint, brokerName, brokerAddress, queueName)``, from the template
        if there is one."""
        parsed = self.parsed
        if isinstance(parsed, ParsedTemplate):
            props = parsed.properties
            return (
                parsed.host,
                props.get("broker", ""),
                props.get("address", ""),
                props.get("queue", ""),
            )
        return (
            self.management_endpoint or "",
            self.broker_name or "",
            self.broker_address or "",
            self.queue_name or "",
        )

    def check(self) -> Iterator[tuple[str, str]]:
        """KEDA's ``Validate``: the template's MBean or the four parameters, and a whole
        client pair."""
        parsed = self.parsed
        if isinstance(parsed, str):
            yield "restApiTemplate", parsed
        elif parsed is not None:
            for key, name in _FROM_TEMPLATE:
                if not parsed.properties.get(key):
                    yield "restApiTemplate", f'has no {key}="..." ({name}) in its MBean name'
        else:
            for name, value in (
                ("managementEndpoint", self.management_endpoint),
                ("queueName", self.queue_name),
                ("brokerName", self.broker_name),
                ("brokerAddress", self.broker_address),
            ):
                if not value:
                    yield name, "is required unless restApiTemplate is given"
        if bool(self.cert) != bool(self.key):
            yield "cert", "and key must be given together (from the authentication)"
        if self.key and self.key_password:
            try:
                decrypted_key(self.key, self.key_password)
            except (ValueError, TypeError) as exc:
                yield "keyPassword", f"does not decrypt key (from the authentication): {exc}"

    def identity(self) -> HttpIdentity:
        key = self.key
        if key and self.key_password:
            with contextlib.suppress(ValueError, TypeError):  # check() refused what cannot open
                key = decrypted_key(key, self.key_password)
        pair = bool(self.cert and key)
        return HttpIdentity(
            verify=not self.unsafe_ssl,
            ca_pem=self.ca,
            cert_pem=self.cert if pair else None,
            key_pem=key if pair else None,
        )


@dataclass(frozen=True, kw_only=True)
class ArtemisScaler(Scaler[int]):
    meta: Metadata
    query: JolokiaRead

    def measure(self, answer: int) -> float:
        return float(answer)


def build(meta: Metadata) -> ArtemisScaler:
    endpoint, broker, address, queue = meta.names
    parsed = meta.parsed  # checked: a template is parsed by now
    url = (
        meta.rest_api_template
        if meta.rest_api_template and isinstance(parsed, ParsedTemplate)
        else DEFAULT_TEMPLATE.format(endpoint=endpoint, broker=broker, address=address, queue=queue)
    )
    query = JolokiaRead(
        without_login(url),
        meta.username,
        meta.password,
        meta.cors_header or default_origin(endpoint),
        meta.identity(),
        hint="check brokerName, brokerAddress and queueName: the queue may not exist yet",
    )
    return ArtemisScaler(
        meta=meta,
        query=query,
        metric_name=normalize(f"artemis-{queue}"),
        target=float(meta.queue_length),
        activation_target=float(meta.activation_queue_length),
        value_label="message count",
    )


KIND = ScalerKind(
    type_name="artemis-queue",
    keda_name="artemisScaler",
    metadata=Metadata,
    build=build,
    summary="The MessageCount of an ActiveMQ Artemis queue, read through the web console's "
    "Jolokia API.",
    example=Example(
        {
            "managementEndpoint": "artemis-activemq.default.svc:8161",
            "queueName": "orders",
            "brokerName": "artemis-activemq",
            "brokerAddress": "orders",
            "queueLength": "50",
        },
        {"username": "admin", "password": "artemis-password"},
        source="managementEndpoint",
    ),
)
