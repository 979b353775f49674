"""Where a Redis trigger's server is and how to authenticate: KEDA's ``redisConnectionInfo``,
which every list and stream trigger type shares, with the Sentinel part only its types use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from scalers.clients import HttpIdentity
from scalers.errors import quote
from scalers.params import Source, TriggerMetadata, param
from scalers.tls_keys import decrypted_key

_AUTH = (Source.AUTH,)
_TRIGGER_AUTH_ENV = (Source.TRIGGER, Source.AUTH, Source.ENV)
_TRIGGER_ENV_AUTH = (Source.TRIGGER, Source.ENV, Source.AUTH)


@dataclass(frozen=True)
class ConnectionFields(TriggerMetadata):
    """KEDA's ``redisConnectionInfo`` with ``databaseIndex`` and the two TLS switches: names,
    aliases and source order as its tags say (``address;addresses``, ``Cert;cert``).

    A type's metadata lists its own fields first and this after
    (``class Metadata(ListFields, ConnectionFields)``), which ``metrics-adapter triggers``
    shows in that order."""

    address: tuple[str, ...] | None = param(
        "address",
        aliases=("addresses",),
        order=_TRIGGER_AUTH_ENV,
        optional=True,
        doc="host:port (the first of a list)",
    )
    host: tuple[str, ...] | None = param(
        "host", aliases=("hosts",), order=_TRIGGER_ENV_AUTH, optional=True, doc="with port"
    )
    port: tuple[str, ...] | None = param(
        "port", aliases=("ports",), order=_TRIGGER_ENV_AUTH, optional=True, doc="with host"
    )
    database_index: int = param("databaseIndex", default="0", ge=0)
    username: str | None = param("username", order=_TRIGGER_ENV_AUTH, optional=True)
    password: str | None = param("password", order=_TRIGGER_ENV_AUTH, optional=True, secret=True)
    enable_tls: bool | None = param("enableTLS", optional=True)
    unsafe_ssl: bool = param("unsafeSsl", default="false", doc="with TLS: skip verification")
    tls: str | None = param("tls", order=_AUTH, optional=True, enum=("enable", "disable"))
    ca: str | None = param("ca", order=_AUTH, optional=True, doc="PEM")
    cert: str | None = param(
        "Cert", aliases=("cert",), order=_AUTH, optional=True, doc="PEM, with key"
    )
    key: str | None = param("key", order=_AUTH, optional=True, doc="PEM, with cert", secret=True)
    key_password: str | None = param("keyPassword", order=_AUTH, optional=True, secret=True)

    every_address: ClassVar[bool] = False
    """Whether every address is used (cluster nodes, sentinels), so each must be host:port;
    one server uses only the first."""

    @property
    def uses_tls(self) -> bool:
        return bool(self.enable_tls) or self.tls == "enable"

    @property
    def addresses(self) -> tuple[str, ...]:
        """KEDA's: ``address`` first, then each ``host`` joined with its ``port``."""
        joined: tuple[str, ...] = ()
        if self.host and self.port and len(self.host) == len(self.port):
            joined = tuple(join_host_port(h, p) for h, p in zip(self.host, self.port, strict=True))
        return (*(self.address or ()), *joined)

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """The addresses used, split; valid once :meth:`check` passed."""
        used = self.addresses if self.every_address else self.addresses[:1]
        return tuple(split_address(a) for a in used)

    def tls_identity(self) -> HttpIdentity | None:
        if not self.uses_tls:
            return None
        key = self.key
        if key and self.key_password:
            key = decrypted_key(key, self.key_password)
        return HttpIdentity(
            verify=not self.unsafe_ssl, ca_pem=self.ca, cert_pem=self.cert, key_pem=key
        )

    def check(self) -> Iterator[tuple[str, str]]:
        if self.host and self.port and len(self.host) != len(self.port):
            yield (
                "host",
                f"and port must list as many entries: {len(self.host)} and {len(self.port)}",
            )
        elif not self.addresses:
            if self.host and not self.port:
                yield "port", "is required with host"
            elif self.port and not self.host:
                yield "host", "is required with port"
            else:
                yield "address", "is required (host:port), or host and port"
        else:  # KEDA connects to the first (or to each) when it creates the scaler
            used = self.addresses if self.every_address else self.addresses[:1]
            for address in used:
                try:
                    split_address(address)
                except ValueError as exc:
                    yield "address" if self.address else "port", str(exc)
        if self.enable_tls is not None and self.tls is not None:
            yield "tls", "cannot be set in the authentication when enableTLS is set in the trigger"
        if self.uses_tls:
            if self.cert and not self.key:
                yield "key", "must be provided with cert (from the authentication)"
            if self.key and not self.cert:
                yield "cert", "must be provided with key (from the authentication)"
            if self.key and self.key_password:
                try:
                    decrypted_key(self.key, self.key_password)
                except (ValueError, TypeError) as exc:
                    yield "keyPassword", f"does not decrypt key: {exc}"


@dataclass(frozen=True)
class SentinelFields(TriggerMetadata):
    """The Sentinel part of ``redisConnectionInfo``. ``sentinelMaster`` is optional to KEDA,
    but no master has an empty name: here it is required, so the mistake shows at parse time
    instead of at every poll."""

    sentinel_username: str | None = param(
        "sentinelUsername", order=_TRIGGER_AUTH_ENV, optional=True
    )
    sentinel_password: str | None = param(
        "sentinelPassword", order=_TRIGGER_AUTH_ENV, optional=True, secret=True
    )
    sentinel_master: str = param(
        "sentinelMaster", order=_TRIGGER_AUTH_ENV, doc="the name the sentinels monitor"
    )


def join_host_port(host: str, port: str) -> str:
    """Go's ``net.JoinHostPort``: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{quote(address)} is not host:port")
    return host, int(port)
