"""The gRPC side of KEDA's external scaler protocol: channels, calls, and their failures.

One ``grpc.aio`` channel serves every trigger with the same scaler address and TLS identity
(:class:`Endpoint`, the :meth:`~scalers.clients.Clients.shared` key, as KEDA's connection
pool key). Every unary call has the clients' deadline; a failed call is a
:class:`~scalers.errors.ScalerError`, never a zero. The messages are those generated from
``scalers/protos/externalscaler.proto`` at install time; the calls are made by method path,
as the generated stub would, so that only the typed ``_pb2`` stubs are imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from scalers.clients import Clients
from scalers.errors import ScalerError, SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.protos import externalscaler_pb2 as pb

R = TypeVar("R", bound=Message)

SERVICE = "externalscaler.ExternalScaler"
CHANNEL_OPTIONS: tuple[tuple[str, object], ...] = (
    ("grpc.lb_policy_name", "round_robin"),  # KEDA's service config: every resolved address
    # grpc's default reconnect backoff grows to 120 s, and a call fails at once meanwhile:
    # a restarted scaler would stay "unavailable" for up to two polls of a 60 s interval.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A scaler's address and how we speak TLS to it: what makes two channels differ."""

    address: str
    tls: bool = False
    ca_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.address} (TLS)" if self.tls else self.address


@dataclass(frozen=True, slots=True)
class Ref:
    """KEDA's ``ScaledObjectRef``, hashable: who asks, with the trigger's metadata."""

    name: str
    namespace: str
    metadata: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Sorted ``(key, value)`` pairs: the scaler reads its own parameters from them."""

    @classmethod
    def of(cls, name: str, namespace: str, metadata: Mapping[str, str]) -> Ref:
        return cls(name, namespace, tuple(sorted(metadata.items())))

    def message(self) -> pb.ScaledObjectRef:
        return pb.ScaledObjectRef(
            name=self.name, namespace=self.namespace, scalerMetadata=dict(self.metadata)
        )

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def open_channel(endpoint: Endpoint) -> grpc.aio.Channel:
    """A channel to ``endpoint``; it connects on first use and reconnects by itself."""
    if not endpoint.tls:
        return grpc.aio.insecure_channel(endpoint.address, options=CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(endpoint.ca_pem),
        private_key=_pem(endpoint.key_pem),
        certificate_chain=_pem(endpoint.cert_pem),
    )
    return grpc.aio.secure_channel(endpoint.address, credentials, options=CHANNEL_OPTIONS)


def _pem(text: str | None) -> bytes | None:
    return text.encode() if text else None


async def _close(channel: grpc.aio.Channel) -> None:
    await channel.close()


async def shared_channel(clients: Clients, endpoint: Endpoint) -> grpc.aio.Channel:
    return await clients.shared(endpoint, lambda: _opened(endpoint), _close)


async def _opened(endpoint: Endpoint) -> grpc.aio.Channel:
    return open_channel(endpoint)


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


async def call(
    clients: Clients,
    endpoint: Endpoint,
    name: str,
    request: Message,
    answer: Callable[[bytes], R],
    what: str,
) -> R:
    """One unary call ``name`` within the clients' deadline, on the endpoint's shared
    channel; ``what`` (without secrets) starts every error message."""
    channel = await shared_channel(clients, endpoint)
    stub = channel.unary_unary(
        method(name), request_serializer=_serialize, response_deserializer=answer
    )
    try:
        response: R = await stub(request, timeout=clients.timeout)
    except grpc.aio.AioRpcError as exc:
        raise call_error(exc, what, clients.timeout) from None
    return response


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def call_error(exc: grpc.aio.AioRpcError, what: str, timeout: float) -> ScalerError:
    """A failed call as a ScalerError: the status code decides which, its details say why."""
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return SourceTimeout(f"{what}: no answer within {timeout:g}s")
    if code == grpc.StatusCode.UNAVAILABLE:
        if "CERTIFICATE_VERIFY_FAILED" in details:
            details += " (is caCert the CA that signed the scaler's certificate?)"
        return SourceUnreachable(f"{what}: unavailable: {details}")
    return SourceResponseError(f"{what}: {code.name}: {details}")
