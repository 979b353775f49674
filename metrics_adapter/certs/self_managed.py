"""Self-managed certificates: a CA and a serving certificate for ``<service>.<namespace>.svc``,
kept in a Secret that every replica shares, the CA written into the caBundle of the APIService
and of each webhook of the ValidatingWebhookConfiguration (both call the same Service), both
renewed two thirds into their life.

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from metrics_adapter.certs.issue import CA_VALIDITY, SERVING_VALIDITY, Pair, issue_serving, new_ca
from metrics_adapter.errors import KubeConflict, KubeError, KubeNotFound
from metrics_adapter.kube.client import SECRETS, KubeClient, Obj, Resource

log = logging.getLogger(__name__)

APISERVICES = Resource("apiregistration.k8s.io/v1", "APIService", "apiservices", False)
WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io/v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    False,
)
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
"""A configuration's webhooks merge by name in this patch, so one caBundle is set without
rewriting the rest of the webhook (its rules, its failurePolicy) as a merge patch would."""
CHECK_EVERY = 300.0
"""How often the Secret is re-read, to pick up a renewal made by another replica."""
RETRY_AFTER = 10.0
TRUST_DELAY = 60.0
"""Seconds a new CA is in the caBundle before a certificate from it is served."""
CA_NAME_PREFIX = "metrics-adapter-ca@"


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
        """What a Secret holds, checked whole; ValueError naming what is wrong, so that a
        damaged or tampered Secret is replaced rather than served or signed with."""
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
        stored = cls(
            Pair(pems[0], raw["ca.key"]),
            tuple(pems[1:]),
            Pair(raw["tls.crt"], raw["tls.key"]),
            version,
        )
        for what, pair in (("ca.crt/ca.key", stored.ca), ("tls.crt/tls.key", stored.serving)):
            if problem := pair.problem():
                raise ValueError(f"{origin}: {what}: {problem}")
        if not all(_is_ca(c) for c in cas):
            raise ValueError(f"{origin}: ca.crt holds a certificate that is not a CA")
        return stored


def _still_ours(published: str, stored: Stored) -> bytes:
    """CAs of ours in the published caBundle that ``stored`` does not list and that are
    still valid: a replica that read the Secret before another renewed it must not take the
    new CA out of the bundle while that one serves a certificate from it."""
    try:
        certs = x509.load_pem_x509_certificates(base64.b64decode(published))
    except ValueError:
        return b""
    now = dt.datetime.now(dt.UTC)
    keep = []
    for cert in certs:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ours = bool(name) and str(name[0].value).startswith(CA_NAME_PREFIX)
        if ours and cert.not_valid_after_utc > now and pem not in stored.ca_bundle:
            keep.append(pem)
    return b"".join(keep)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


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
        webhook_configuration: str | None = None,
        check_every: float = CHECK_EVERY,
        trust_delay: float = TRUST_DELAY,
        serving_validity: dt.timedelta = SERVING_VALIDITY,
        ca_validity: dt.timedelta = CA_VALIDITY,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.secret = secret
        self.service = service
        self.apiservice = apiservice
        self.webhook_configuration = webhook_configuration
        self.serve = serve
        self.check_every = check_every
        self.trust_delay = trust_delay
        self.serving_validity = serving_validity
        self.ca_validity = ca_validity
        self.current: Stored | None = None
        """What is served now."""
        self._new_ca_since: dict[bytes, float] = {}
        """A CA first met in the Secret, while a pair from another CA was served: when."""

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
            stored, found = await self._read()
            wanted = self._renewed(stored, now)
            if wanted is stored:
                break
            try:
                stored = await self._write(wanted, found)
            except KubeConflict:
                log.info("%s changed under us (another replica); reading it again", self.origin)
                continue
            break
        else:
            raise KubeConflict(self.origin, 409, "Conflict", "kept changing while we renewed it")
        assert stored is not None
        # The CA first: a certificate from a new CA is served only once the caBundle has it.
        await self._publish_ca(stored)
        if self._too_soon(stored, now):
            return stored
        if self.current is None or stored.serving != self.current.serving:
            self.serve(stored.serving)
        self.current = stored
        self._new_ca_since.clear()
        return stored

    def _too_soon(self, stored: Stored, now: dt.datetime) -> bool:
        """Whether to keep serving the current pair a little longer: ``stored`` comes from a
        CA the aggregator may not have loaded yet (it reloads the caBundle some time after
        the patch), and the current pair is still good."""
        current = self.current
        if current is None or stored.ca.cert_pem == current.ca.cert_pem:
            return False
        if current.serving.not_after <= now + dt.timedelta(seconds=self.trust_delay):
            return False
        first = stored.ca.cert_pem not in self._new_ca_since
        self._new_ca_since.setdefault(stored.ca.cert_pem, time.monotonic())
        left = self._trust_left()
        if left <= 0:
            return False
        if first:
            log.info(
                "a new CA is in %s; serving the current certificate %.0fs more, until the "
                "aggregator trusts the new one",
                self.origin,
                left,
            )
        return True

    def _trust_left(self) -> float:
        """Seconds until a pair from the new CA may be served."""
        since = max(self._new_ca_since.values())
        return self.trust_delay - (time.monotonic() - since)

    async def run(self) -> None:
        while True:
            assert self.current is not None
            due = min(self.current.serving.renew_at, self.current.ca.renew_at)
            wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
            if self._new_ca_since:  # a new CA waits to be trusted: look again when it is
                wait = self._trust_left()
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
            return Stored(stored.ca, stored.older_cas, self._issue_serving(stored.ca))
        ca = new_ca(f"{CA_NAME_PREFIX}{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}", self.ca_validity)
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
        return Stored(ca, older, self._issue_serving(ca))

    def _issue_serving(self, ca: Pair) -> Pair:
        """A serving pair from ``ca``, valid no longer than ``ca`` is."""
        left = ca.not_after - dt.datetime.now(dt.UTC)
        return issue_serving(ca, self.hosts, min(self.serving_validity, left))

    async def _read(self) -> tuple[Stored | None, Obj | None]:
        """What the Secret holds (``None``: nothing usable yet), and the Secret itself
        (``None``: there is none)."""
        try:
            secret = await self.kube.get(SECRETS, self.secret, self.namespace)
        except KubeNotFound:
            return None, None
        if not secret.get("data"):
            return None, secret  # as deploy/ ships it: ours to fill in
        try:
            return Stored.parse(secret, self.origin), secret
        except ValueError as exc:
            log.warning("%s; replacing it", exc)
            return None, secret

    async def _write(self, stored: Stored, found: Obj | None) -> Stored:
        """Replace the Secret ``found`` (at its resourceVersion), or create it when there is
        none, which deploy/'s RBAC does not allow: deploy/ ships it."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": (found or {}).get("type") or "Opaque",  # immutable: keep what is there
            "metadata": {
                "name": self.secret,
                "namespace": self.namespace,
                "labels": {
                    **((found or {}).get("metadata") or {}).get("labels", {}),
                    "app.kubernetes.io/managed-by": "metrics-adapter",
                },
            },
            "data": stored.data(),
        }
        if found is None:
            try:
                answer = await self.kube.request(
                    "POST", SECRETS.path(self.namespace), f"{self.origin} (create)", body=body
                )
            except KubeError as exc:
                hint = "apply deploy/ (or the Helm chart), which ships it empty for us to fill"
                raise KubeError(
                    exc.subject, exc.code, exc.reason, f"{exc.message}; {hint}"
                ) from exc
        else:
            body["metadata"]["resourceVersion"] = (found.get("metadata") or {}).get(
                "resourceVersion"
            )
            answer = await self.kube.request(
                "PUT",
                SECRETS.path(self.namespace, self.secret),
                f"{self.origin} (update)",
                body=body,
            )
        log.info("wrote %s", self.origin, extra={"not_after": stored.serving.not_after.isoformat()})
        return Stored.parse(answer, self.origin)

    async def _publish_ca(self, stored: Stored) -> None:
        await self._publish_to_apiservice(stored)
        await self._publish_to_webhooks(stored)

    async def _publish_to_apiservice(self, stored: Stored) -> None:
        if self.apiservice is None:
            return
        try:
            current = await self.kube.get(APISERVICES, self.apiservice)
        except KubeNotFound:
            log.warning(
                "APIService %s does not exist yet; its caBundle is set once it does",
                self.apiservice,
            )
            return
        published = (current.get("spec") or {}).get("caBundle") or ""
        bundle = _bundle(stored, published)
        if published == bundle:
            return
        # caBundle and insecureSkipTLSVerify exclude each other: the CA replaces the skip.
        patch = {"spec": {"caBundle": bundle, "insecureSkipTLSVerify": None}}
        await self.kube.patch(APISERVICES, self.apiservice, None, patch)
        log.info("wrote the CA into APIService %s caBundle", self.apiservice)

    async def _publish_to_webhooks(self, stored: Stored) -> None:
        """The CA into every webhook of the configuration: they all call our Service."""
        name = self.webhook_configuration
        if name is None:
            return
        try:
            current = await self.kube.get(WEBHOOK_CONFIGURATIONS, name)
        except KubeNotFound:
            log.warning(
                "ValidatingWebhookConfiguration %s does not exist yet; its caBundle is set "
                "once it does",
                name,
            )
            return
        changed = []
        for webhook in current.get("webhooks") or []:
            published = (webhook.get("clientConfig") or {}).get("caBundle") or ""
            bundle = _bundle(stored, published)
            if published != bundle:
                changed.append({"name": webhook["name"], "clientConfig": {"caBundle": bundle}})
        if not changed:
            return
        patch = {"webhooks": changed}
        await self.kube.patch(
            WEBHOOK_CONFIGURATIONS, name, None, patch, content_type=STRATEGIC_MERGE_PATCH
        )
        log.info(
            "wrote the CA into ValidatingWebhookConfiguration %s caBundle",
            name,
            extra={"webhooks": [w["name"] for w in changed]},
        )


def _bundle(stored: Stored, published: str) -> str:
    """The caBundle to publish where ``published`` is: ours, and the CAs of ours it holds
    that are still needed."""
    return base64.b64encode(stored.ca_bundle + _still_ours(published, stored)).decode()
