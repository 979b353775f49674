"""Self-managed certificates: a CA and a serving certificate for ``<service>.<namespace>.svc``,
kept in a Secret that every replica shares, the CA written into the APIService's caBundle,
both renewed two thirds into their life.

Replicas need no leader for this: the Secret is created and replaced with optimistic
concurrency, and the replica that loses a race loads what the winner wrote. When the CA itself
is renewed, the caBundle carries the new and the old CA until the old one expires, so the
aggregator trusts whichever certificate a replica still serves.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from metrics_adapter.certs.issue import Pair, issue_serving, new_ca
from metrics_adapter.errors import KubeConflict, KubeError, KubeNotFound
from metrics_adapter.kube_client import SECRETS, KubeClient, Resource

log = logging.getLogger(__name__)

APISERVICES = Resource("apiregistration.k8s.io/v1", "APIService", "apiservices", False)
CHECK_EVERY = 300.0
"""How often the Secret is re-read, to pick up a renewal made by another replica."""
RETRY_AFTER = 10.0


@dataclass(frozen=True)
class Stored:
    """The Secret's certificates: the signing CA, older CAs still trusted, the serving pair."""

    ca: Pair
    older_cas: tuple[bytes, ...]
    serving: Pair
    resource_version: str = ""

    @property
    def ca_bundle(self) -> bytes:
        return b"".join((self.ca.cert_pem, *self.older_cas))

    def data(self) -> dict[str, str]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {
            "ca.crt": b64(self.ca_bundle),
            "ca.key": b64(self.ca.key_pem),
            "tls.crt": b64(self.serving.cert_pem),
            "tls.key": b64(self.serving.key_pem),
        }

    @classmethod
    def parse(cls, secret: Mapping[str, Any], origin: str) -> Stored:
        data = secret.get("data") or {}
        try:
            raw = {k: base64.b64decode(data[k]) for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
            cas = x509.load_pem_x509_certificates(raw["ca.crt"])
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"{origin}: not a certificate Secret this adapter wrote: {exc}"
            ) from exc
        pems = [c.public_bytes(serialization.Encoding.PEM) for c in cas]
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        return cls(
            Pair(pems[0], raw["ca.key"]),
            tuple(pems[1:]),
            Pair(raw["tls.crt"], raw["tls.key"]),
            version,
        )


class SelfManaged:
    """Keeps the Secret, the APIService's caBundle and the serving pair current."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        secret: str,
        service: str,
        apiservice: str | None,
        serve: Callable[[Pair], None],
        *,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.secret = secret
        self.service = service
        self.apiservice = apiservice
        self.serve = serve
        self.check_every = check_every
        self.current: Stored | None = None

    @property
    def origin(self) -> str:
        return f"Secret {self.namespace}/{self.secret}"

    @property
    def hosts(self) -> list[str]:
        svc, ns = self.service, self.namespace
        return [f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", f"{svc}.{ns}", svc]

    async def ensure(self) -> Stored:
        """The certificates to serve now, creating or renewing them as needed."""
        now = dt.datetime.now(dt.UTC)
        for _ in range(5):
            stored, version = await self._read()
            wanted = self._renewed(stored, now)
            if wanted is stored:
                break
            try:
                stored = await self._write(wanted, version)
            except KubeConflict:
                log.info("%s changed under us (another replica); reading it again", self.origin)
                continue
            break
        else:
            raise KubeConflict(self.origin, 409, "Conflict", "kept changing while we renewed it")
        assert stored is not None
        if self.current is None or stored.serving != self.current.serving:
            self.serve(stored.serving)
        self.current = stored
        await self._publish_ca(stored)
        return stored

    async def run(self) -> None:
        while True:
            assert self.current is not None
            due = min(self.current.serving.renew_at, self.current.ca.renew_at)
            wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
            await asyncio.sleep(max(1.0, min(self.check_every, wait)))
            try:
                await self.ensure()
            except (KubeError, ValueError) as exc:
                log.error("certificates: %s; retrying in %gs", exc, RETRY_AFTER)
                await asyncio.sleep(RETRY_AFTER)

    def _renewed(self, stored: Stored | None, now: dt.datetime) -> Stored:
        """``stored`` itself when it is good for now; else what should replace it."""
        if stored is not None and stored.ca.renew_at > now:
            if stored.serving.renew_at > now and stored.serving.signed_by(stored.ca):
                return stored
            log.info("renewing the serving certificate in %s", self.origin)
            return Stored(stored.ca, stored.older_cas, issue_serving(stored.ca, self.hosts))
        ca = new_ca(f"metrics-adapter-ca@{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}")
        older: tuple[bytes, ...] = ()
        if stored is not None:
            log.info(
                "renewing the CA in %s; the old one stays trusted until it expires", self.origin
            )
            older = tuple(
                pem
                for pem in (stored.ca.cert_pem, *stored.older_cas)
                if x509.load_pem_x509_certificate(pem).not_valid_after_utc > now
            )
        return Stored(ca, older, issue_serving(ca, self.hosts))

    async def _read(self) -> tuple[Stored | None, str]:
        """What the Secret holds (``None``: nothing usable) and its resourceVersion (empty:
        there is no Secret)."""
        try:
            secret = await self.kube.get(SECRETS, self.secret, self.namespace)
        except KubeNotFound:
            return None, ""
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        try:
            return Stored.parse(secret, self.origin), version
        except ValueError as exc:
            log.warning("%s; replacing it", exc)
            return None, version

    async def _write(self, stored: Stored, version: str) -> Stored:
        """Create the Secret (no ``version``) or replace the one at ``version``."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": self.secret,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "metrics-adapter"},
            },
            "data": stored.data(),
        }
        if not version:
            answer = await self.kube.request(
                "POST", SECRETS.path(self.namespace), f"{self.origin} (create)", body=body
            )
        else:
            body["metadata"]["resourceVersion"] = version
            answer = await self.kube.request(
                "PUT",
                SECRETS.path(self.namespace, self.secret),
                f"{self.origin} (update)",
                body=body,
            )
        log.info("wrote %s", self.origin, extra={"not_after": stored.serving.not_after.isoformat()})
        return Stored.parse(answer, self.origin)

    async def _publish_ca(self, stored: Stored) -> None:
        if self.apiservice is None:
            return
        bundle = base64.b64encode(stored.ca_bundle).decode()
        try:
            current = await self.kube.get(APISERVICES, self.apiservice)
        except KubeNotFound:
            log.warning(
                "APIService %s does not exist yet; its caBundle is set once it does",
                self.apiservice,
            )
            return
        if (current.get("spec") or {}).get("caBundle") == bundle:
            return
        # caBundle and insecureSkipTLSVerify exclude each other: the CA replaces the skip.
        patch = {"spec": {"caBundle": bundle, "insecureSkipTLSVerify": None}}
        await self.kube.patch(APISERVICES, self.apiservice, None, patch)
        log.info("wrote the CA into APIService %s caBundle", self.apiservice)
