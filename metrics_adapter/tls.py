"""The serving certificate: given files, or a self-signed pair generated into ``--cert-dir``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

CERT_NAME, KEY_NAME = "apiserver.crt", "apiserver.key"  # kube-apiserver's names in --cert-dir
VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


def self_signed_pair(cert_dir: Path, hosts: list[str] | None = None) -> tuple[Path, Path]:
    """Reuse the pair in ``cert_dir`` while it is valid for 30 more days; else make one."""
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(dt.UTC):
            return cert_path, key_path
    cert_dir.mkdir(parents=True, exist_ok=True)
    names = hosts or ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"metrics-adapter@{names[0]}")])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a self-signed serving certificate", extra={"cert": str(cert_path)})
    return cert_path, key_path
