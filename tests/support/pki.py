"""Throwaway certificate authorities: server and client certificates, keys, TLS contexts.

:class:`CertificateAuthority` issues :class:`KeyPair` s (P-256, valid a week) for any host or
client identity; :func:`make_pki` is the common case on disk: one server pair for 127.0.0.1 and
one client pair.
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from metrics_adapter.certs.issue import Pair, issue, new_ca

VALIDITY = dt.timedelta(days=7)
KEY_PASSWORD = "k3y-pa55"
"""The password of :attr:`Pki.client_key_encrypted_pem`."""


@dataclass(frozen=True)
class KeyPair(Pair):
    """A certificate and its private key (PKCS#8), both PEM, with file helpers for tests."""

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return cert, key

    @classmethod
    def read(cls, directory: Path, stem: str) -> KeyPair:
        """The pair :meth:`write` wrote."""
        return cls(
            (directory / f"{stem}.crt").read_bytes(), (directory / f"{stem}.key").read_bytes()
        )

    def encrypted_key_pem(self, password: str) -> bytes:
        """The private key, encrypted with ``password``."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )


class CertificateAuthority:
    """A throwaway CA (P-256, valid a week) that issues server and client certificates, with
    the adapter's own issuing code (:mod:`metrics_adapter.certs.issue`)."""

    def __init__(
        self, common_name: str, *, parent: CertificateAuthority | None = None, depth: int = 0
    ) -> None:
        """A root, or an intermediate under ``parent``; ``depth`` CAs may follow it."""
        self.pair: Pair = new_ca(
            common_name,
            validity=VALIDITY,
            parent=parent.pair if parent else None,
            path_length=depth,
        )
        self.cert = self.pair.cert
        self.name = self.cert.subject

    @property
    def pem(self) -> bytes:
        return self.pair.cert_pem

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        hosts: Sequence[str] = (),
        usage: Literal["server", "client"] = "client",
    ) -> KeyPair:
        """A certificate for ``hosts`` (DNS names or IPs) or a client identity (CN, O)."""
        pair = issue(
            self.pair,
            common_name,
            hosts=hosts,
            organizations=organizations,
            usage=usage,
            validity=VALIDITY,
        )
        return KeyPair(pair.cert_pem, pair.key_pem)


def signing_keys() -> tuple[bytes, bytes]:
    """A bare P-256 key pair as (private PKCS#8, public SubjectPublicKeyInfo) PEM, such as
    kube-apiserver's ServiceAccount token signing key."""
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _key_pem(key), public


def client_context(ca_pem: bytes, pair: KeyPair | None = None) -> ssl.SSLContext:
    """TLS that trusts ``ca_pem`` and presents ``pair`` as the client certificate."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if pair is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = pair.write(Path(tmp), "client")
            context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted_pem: str

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()

    @property
    def client_cert_pem(self) -> str:
        return self.client_cert.read_text()

    @property
    def client_key_pem(self) -> str:
        return self.client_key.read_text()


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed."""
    ca = CertificateAuthority("metrics-adapter test CA")
    server = ca.issue("127.0.0.1", hosts=["127.0.0.1", "localhost"], usage="server")
    client = ca.issue("scaler")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca.pem)
    server_cert, server_key = server.write(directory, "server")
    client_cert, client_key = client.write(directory, "client")
    return Pki(
        ca=directory / "ca.crt",
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        client_key_encrypted_pem=client.encrypted_key_pem(KEY_PASSWORD).decode(),
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
