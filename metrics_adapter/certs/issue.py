"""Certificates the adapter makes itself: a CA, serving certificates it signs, self-signed."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metrics_adapter.config.settings import CA_CERT_DAYS, SERVING_CERT_DAYS

CA_VALIDITY = dt.timedelta(days=CA_CERT_DAYS)
SERVING_VALIDITY = dt.timedelta(days=SERVING_CERT_DAYS)
_BACKDATE = dt.timedelta(minutes=5)  # clock skew between us and the callers


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key (PKCS#8), both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @cached_property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        return self.cert.not_valid_before_utc

    @property
    def renew_at(self) -> dt.datetime:
        """Two thirds into its life, as kubelet and cert-manager renew."""
        return self.not_before + (self.not_after - self.not_before) * 2 / 3

    def problem(self) -> str:
        """Why this pair cannot serve, in words a user can act on; empty when it can."""
        try:
            cert = x509.load_pem_x509_certificates(self.cert_pem)[0]
        except ValueError:
            return "the certificate is not PEM (-----BEGIN CERTIFICATE-----)"
        try:
            key = serialization.load_pem_private_key(self.key_pem, password=None)
        except (ValueError, TypeError):
            return "the private key is not an unencrypted PEM key (-----BEGIN PRIVATE KEY-----)"
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if cert.public_key().public_bytes(der, public) != key.public_key().public_bytes(
            der, public
        ):
            return "the private key is not the certificate's"
        return ""

    def signed_by(self, ca: Pair) -> bool:
        try:
            self.cert.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def new_ca(
    common_name: str,
    validity: dt.timedelta = CA_VALIDITY,
    *,
    parent: Pair | None = None,
    path_length: int = 0,
) -> Pair:
    """A CA, self-signed or an intermediate under ``parent``; ``path_length`` CAs may
    follow it (0: it signs leaves only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer: ec.EllipticCurvePrivateKey = key
    issuer = name
    if parent is not None:
        signer, issuer = _ca_key(parent), parent.cert.subject
    cert = (
        _builder(name, issuer, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return Pair(_pem(cert), _key_pem(key))


def _ca_key(ca: Pair) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"the CA key is {type(key).__name__}, not an EC key this code signs with")
    return key


def issue_serving(
    ca: Pair, hosts: Sequence[str], validity: dt.timedelta = SERVING_VALIDITY
) -> Pair:
    """A serving certificate for ``hosts`` (DNS names or IP addresses) signed by ``ca``."""
    return issue(ca, hosts[0], hosts=hosts, usage="server", validity=validity)


def issue(
    ca: Pair,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    organizations: Sequence[str] = (),
    usage: Literal["server", "client"] = "client",
    validity: dt.timedelta = SERVING_VALIDITY,
) -> Pair:
    """A certificate signed by ``ca``: a server's for ``hosts``, or a client identity whose CN
    is the user and whose O values are the groups (as kube-apiserver reads them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = _ca_key(ca)
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject = x509.Name([*names, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    purpose = (
        ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    builder = (
        _builder(subject, ca.cert.subject, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
    return Pair(_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))


def self_signed(hosts: Sequence[str], validity: dt.timedelta = SERVING_VALIDITY) -> Pair:
    """One certificate that is its own CA, for standalone use."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"metrics-adapter@{hosts[0]}")])
    cert = (
        _builder(name, name, key.public_key(), validity)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pair(_pem(cert), _key_pem(key))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
    )


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,  # EC keys sign; they never encipher
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
