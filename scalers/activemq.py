"""``activemq``: the size of an ActiveMQ Classic queue, read from the broker's Jolokia agent.

As KEDA's ``activeMQScaler``: ``GET http://<managementEndpoint>/api/jolokia/read/
org.apache.activemq:type=Broker,brokerName=<brokerName>,destinationType=Queue,
destinationName=<destinationName>/QueueSize`` (messages not yet acknowledged, in flight
included), with basic auth and ``Origin: http://<managementEndpoint>`` unless
``corsHeader`` says otherwise (:mod:`scalers.jolokia`). A ``restAPITemplate`` replaces the
whole URL; ``brokerName`` and ``destinationName`` are then taken from it, as in KEDA.

Where we differ from KEDA v2.20.2 on purpose: a ``restAPITemplate`` that is not an
http(s) URL naming an MBean with both properties is refused with a message where KEDA may
panic; ``targetQueueSize`` must be above 0 (the HPA refuses a zero target anyway); values
are put into the default URL as given, where KEDA's ``html/template`` would HTML-escape
``&``, ``+`` or quotes in them; ``Content-Type: application/json``, which KEDA sets on a GET
without a body, is not sent; and a ``value`` of ``null`` is an error, not a zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.jolokia import (
    JolokiaRead,
    ParsedTemplate,
    default_origin,
    parse_template,
    without_login,
)
from scalers.params import Source, TriggerMetadata, param

DEFAULT_TEMPLATE = (
    "http://{endpoint}/api/jolokia/read/org.apache.activemq:type=Broker,brokerName={broker},"
    "destinationType=Queue,destinationName={destination}/QueueSize"
)
_LOGIN = (Source.AUTH, Source.ENV, Source.TRIGGER)


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    management_endpoint: str | None = param(
        "managementEndpoint", optional=True, doc="host:port of the Jolokia agent"
    )
    destination_name: str | None = param("destinationName", optional=True, doc="the queue")
    broker_name: str | None = param("brokerName", optional=True)
    username: str = param("username", order=_LOGIN)
    password: str = param("password", order=_LOGIN, secret=True)
    cors_header: str | None = param(
        "corsHeader", optional=True, doc="the Origin sent; default http://<managementEndpoint>"
    )
    rest_api_template: str | None = param(
        "restAPITemplate",
        optional=True,
        secret=True,  # a URL may carry a login
        doc="the whole read URL instead of managementEndpoint, brokerName and destinationName",
    )
    target_queue_size: int = param("targetQueueSize", default="10", gt=0, target=True)
    activation_target_queue_size: int = param("activationTargetQueueSize", default="0")

    @property
    def parsed(self) -> ParsedTemplate | str | None:
        """The ``restAPITemplate`` as KEDA parses it, its problem, or ``None`` without one."""
        return parse_template(self.rest_api_template) if self.rest_api_template else None

    @property
    def names(self) -> tuple[str, str, str]:
        """``(managementEndpoint, brokerName, destinationName)``: from the template if any."""
        parsed = self.parsed
        if isinstance(parsed, ParsedTemplate):
            props = parsed.properties
            return parsed.host, props.get("brokerName", ""), props.get("destinationName", "")
        return self.management_endpoint or "", self.broker_name or "", self.destination_name or ""

    def check(self) -> Iterator[tuple[str, str]]:
        """KEDA's ``Validate``: the template's MBean, or the three parameters, must be given."""
        parsed = self.parsed
        if isinstance(parsed, str):
            yield "restAPITemplate", parsed
        elif parsed is not None:
            for key in ("destinationName", "brokerName"):
                if not parsed.properties.get(key):
                    yield "restAPITemplate", f"has no {key}=... in its MBean name"
        else:
            for name, value in (
                ("managementEndpoint", self.management_endpoint),
                ("destinationName", self.destination_name),
                ("brokerName", self.broker_name),
            ):
                if not value:
                    yield name, "is required unless restAPITemplate is given"


@dataclass(frozen=True, kw_only=True)
class ActiveMQScaler(Scaler[int]):
    meta: Metadata
    query: JolokiaRead

    def measure(self, answer: int) -> float:
        return float(answer)


def build(meta: Metadata) -> ActiveMQScaler:
    endpoint, broker, destination = meta.names
    parsed = meta.parsed  # checked: a template is parsed by now
    url = (
        meta.rest_api_template
        if meta.rest_api_template and isinstance(parsed, ParsedTemplate)
        else DEFAULT_TEMPLATE.format(endpoint=endpoint, broker=broker, destination=destination)
    )
    query = JolokiaRead(
        without_login(url),
        meta.username,
        meta.password,
        meta.cors_header or default_origin(endpoint),
        hint="check brokerName and destinationName: the queue may not exist yet",
    )
    return ActiveMQScaler(
        meta=meta,
        query=query,
        metric_name=normalize(f"activemq-{destination}"),
        target=float(meta.target_queue_size),
        activation_target=float(meta.activation_target_queue_size),
        value_label="queue size",
    )


KIND = ScalerKind(
    type_name="activemq",
    keda_name="activeMQScaler",
    metadata=Metadata,
    build=build,
    summary="The QueueSize of an ActiveMQ Classic queue, read through the broker's Jolokia API.",
    example=Example(
        {
            "managementEndpoint": "activemq.default.svc:8161",
            "destinationName": "orders",
            "brokerName": "localhost",
            "targetQueueSize": "50",
        },
        {"username": "admin", "password": "activemq-password"},
        source="managementEndpoint",
    ),
)
