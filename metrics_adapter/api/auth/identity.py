"""Who is asking and for what: the user an authenticator found, the attributes a request is
authorized on, and the trusted certificate authorities, all immutable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``(key, values)`` pairs, sorted, so that a User is hashable and a cache key."""
    proxied: bool = False
    """Named by the aggregator's front proxy, which authorized the request itself before
    forwarding it; never sent in a review."""

    @classmethod
    def of(
        cls,
        name: str,
        groups: Iterable[str] = (),
        uid: str = "",
        extra: Mapping[str, Iterable[str]] | None = None,
        *,
        proxied: bool = False,
    ) -> User:
        pairs = tuple(sorted((k, tuple(v)) for k, v in (extra or {}).items()))
        return cls(name, tuple(groups), uid, pairs, proxied)

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does, as kube-apiserver's RequestInfo names it: a resource request
    (``resource`` set) or a non-resource one (``path``)."""

    verb: str
    path: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""

    def describe(self) -> str:
        if not self.resource:
            return f'{self.verb} path "{self.path}"'
        where = f' in the namespace "{self.namespace}"' if self.namespace else ""
        return f'{self.verb} resource "{self.resource}" in API group "{self.group}"{where}'


@dataclass(frozen=True, slots=True)
class CaBundle:
    """Certificate authorities trusted for one purpose, by their DER bytes."""

    pem: bytes = b""
    ders: frozenset[bytes] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, pem: bytes, origin: str) -> CaBundle:
        """Every certificate of a PEM bundle; ValueError naming ``origin`` when there is none
        or one does not parse."""
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise ValueError(f"{origin}: not a PEM certificate bundle: {exc}") from exc
        ders = frozenset(c.public_bytes(serialization.Encoding.DER) for c in certs)
        return cls(pem, ders)

    def __bool__(self) -> bool:
        return bool(self.ders)

    def anchors(self, chain: list[bytes]) -> bool:
        """Whether a verified chain (leaf first, DER) goes through one of these authorities
        (OpenSSL stops at the first trusted one: an intermediate CA may be the anchor)."""
        return any(der in self.ders for der in chain[1:])


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    """Who may assert an identity in headers, and which headers (kube-apiserver's
    ``--requestheader-*`` flags, published in kube-system/extension-apiserver-authentication)."""

    ca: CaBundle = field(default_factory=CaBundle)
    allowed_names: tuple[str, ...] = ()
    """Common names the proxy's certificate may have; empty: any the CA signed."""
    username_headers: tuple[str, ...] = ("x-remote-user",)
    group_headers: tuple[str, ...] = ("x-remote-group",)
    extra_prefixes: tuple[str, ...] = ("x-remote-extra-",)
    uid_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Everything authentication trusts, replaced whole when a source changes."""

    client_ca: CaBundle = field(default_factory=CaBundle)
    requestheader: RequestHeaderConfig = field(default_factory=RequestHeaderConfig)

    @property
    def trusted_pem(self) -> bytes:
        """The authorities TLS must accept client certificates from."""
        return b"\n".join(p for p in (self.client_ca.pem, self.requestheader.ca.pem) if p)


def common_name_and_organizations(der: bytes) -> tuple[str, tuple[str, ...], dt.datetime]:
    """A certificate's CN, its O values (kube-apiserver's user name and groups), and when it
    expires."""
    cert = x509.load_der_x509_certificate(der)
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    name = str(cn[0].value) if cn else ""
    return name, tuple(str(o.value) for o in orgs), cert.not_valid_after_utc
