"""The API port's TLS: one live SSLContext whose certificate and trusted client CAs change
in place, and a uvicorn protocol that hands the verified client chain to the application.

Changing a live context is safe here: handshakes run on the event loop thread, each new
connection copies the context's certificate when it starts, and open connections keep theirs,
so a rotation drops no request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from metrics_adapter.certs.issue import Pair, self_signed

log = logging.getLogger(__name__)

CERT_NAME, KEY_NAME = "apiserver.crt", "apiserver.key"  # kube-apiserver's names in --cert-dir
_ENCODING_PEM = 1  # _ssl.ENCODING_PEM, which the ssl module does not re-export before 3.13


class ServingTLS:
    """The SSLContext uvicorn serves with."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        """A private directory: OpenSSL loads keys from files only."""
        self.context = _context()
        self.pair: Pair | None = None
        """What new connections are served; nothing until :meth:`set_pair`."""
        self._trusted: set[bytes] = set()

    def set_pair(self, pair: Pair, origin: str) -> None:
        """Serve ``pair`` to every new connection; ValueError naming ``origin`` if it is not a
        usable certificate and key, in which case nothing changes."""
        if problem := pair.problem():
            raise ValueError(f"{origin}: {problem}")
        name = self._stage(pair, origin)
        try:
            _context().load_cert_chain(name)  # check first: a bad pair must not half-load
            self.context.load_cert_chain(name)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"{origin}: not a usable certificate and key: {exc}") from exc
        finally:
            os.unlink(name)
        if self.pair is not None and pair != self.pair:
            log.info(
                "serving a new certificate",
                extra={"origin": origin, "not_after": pair.not_after.isoformat()},
            )
        self.pair = pair

    def _stage(self, pair: Pair, origin: str) -> str:
        """The pair in a private file for OpenSSL to load; ValueError naming the directory
        when it cannot be written (a full /tmp), in which case nothing changes."""
        name = ""
        try:
            private_dir(self.scratch)
            fd, name = tempfile.mkstemp(dir=self.scratch, prefix=".serving-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(pair.cert_pem.rstrip(b"\n") + b"\n" + pair.key_pem)
        except OSError as exc:
            if name:
                with contextlib.suppress(OSError):
                    os.unlink(name)
            raise ValueError(
                f"{origin}: cannot stage it for OpenSSL in {self.scratch} (--cert-dir): "
                f"{exc.strerror or exc}"
            ) from exc
        return name

    def trust_clients(self, pem: bytes) -> None:
        """Accept client certificates from these CAs too. Trust is only ever added to the
        context; authentication decides per request which CA is trusted now."""
        new = {c for c in _split(pem) if c not in self._trusted}
        if not new:
            return
        self.context.load_verify_locations(cadata=b"".join(sorted(new)).decode())
        self.context.verify_mode = ssl.CERT_OPTIONAL
        self._trusted |= new


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A trusted intermediate CA is an anchor of its own, as in Go's x509 verification.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # No session resumption: a resumed session has no verified chain to show the gate.
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    return context


def _split(pem: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----"
    return [part.strip() + b"\n" + end + b"\n" for part in pem.split(end)[:-1]]


class ClientCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, putting the verified client chain (PEM, leaf first) in the
    scope as the ASGI TLS extension does: ``scope["extensions"]["tls"]["client_cert_chain"]``.
    Released uvicorn does not, and kube-apiserver's front proxy is known by its certificate."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.getpeercert(binary_form=True) is None:
            return
        chain = verified_chain(ssl_object)
        if chain:
            self.app = _with_tls(self.app, {"client_cert_chain": chain})


def verified_chain(ssl_object: ssl.SSLObject) -> list[str]:
    """The chain OpenSSL verified, leaf first, ending in the trusted CA; PEM."""
    get: Callable[[], Any] | None = getattr(ssl_object, "get_verified_chain", None)
    if get is None:  # public from Python 3.13; the same method, private, since 3.10
        get = ssl_object._sslobj.get_verified_chain  # type: ignore[attr-defined]
    return [cert.public_bytes(_ENCODING_PEM) for cert in get() or ()]


def _with_tls(app: ASGIApp, tls: dict[str, Any]) -> ASGIApp:
    async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("extensions", {})["tls"] = tls
        await app(scope, receive, send)

    return with_tls


def private_dir(path: Path) -> Path:
    """``path``, a directory of ours that no one else may write: keys are read from it.
    Created with mode 0700; one of ours with a looser mode is tightened; anyone else's is
    refused (a shared /tmp must not let another user plant a certificate)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ValueError(
            f"{path}: owned by uid {info.st_uid}, not by us ({os.getuid()}): "
            "choose another --cert-dir"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def self_signed_pair(cert_dir: Path, hosts: list[str] | None = None) -> tuple[Path, Path]:
    """Reuse the pair in ``cert_dir`` while it is not due for renewal; else make one."""
    cert_path, key_path = private_dir(cert_dir) / CERT_NAME, cert_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        kept = Pair(cert_path.read_bytes(), key_path.read_bytes())
        if kept.renew_at > dt.datetime.now(dt.UTC):
            return cert_path, key_path
    pair = self_signed(hosts or ["localhost", "127.0.0.1", "::1", socket.gethostname()])
    key_path.unlink(missing_ok=True)  # a new file: no mode or link inherited from an old one
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pair.key_pem)
    cert_path.write_bytes(pair.cert_pem)
    log.info("generated a self-signed serving certificate", extra={"cert": str(cert_path)})
    return cert_path, key_path
