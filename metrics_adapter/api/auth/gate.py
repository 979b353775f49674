"""Authentication and authorization assembled from the settings, and their background work."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.types import ASGIApp

from metrics_adapter.api.auth.authn import Authenticator
from metrics_adapter.api.auth.authz import AnyAuthenticated, Authorizer, DelegatingAuthorizer
from metrics_adapter.api.auth.identity import AuthConfig
from metrics_adapter.api.auth.kube_reviewer import KubeReviewer
from metrics_adapter.api.auth.middleware import AuthMiddleware
from metrics_adapter.api.auth.sources import AuthSources
from metrics_adapter.api.tls import ServingTLS
from metrics_adapter.config.settings import Settings
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.metrics.telemetry import Telemetry

log = logging.getLogger(__name__)

LOOPBACK = ("127.", "::1", "localhost")


@dataclass
class Gate:
    sources: AuthSources
    authenticator: Authenticator | None
    """``None``: the API is open (standalone with no CA and no cluster to ask)."""
    authorizer: Authorizer

    def wrap(self, app: ASGIApp) -> ASGIApp:
        if self.authenticator is None:
            return app
        return AuthMiddleware(app, self.authenticator, self.authorizer)

    async def run(self) -> None:
        """Follow the sources of trust until cancelled."""
        async with asyncio.TaskGroup() as group:
            if self.sources.watched is not None:  # loaded by build_gate; changes from now
                group.create_task(self.sources.watched.run())
            if self.sources.kube is not None:
                group.create_task(self.sources.follow())


async def build_gate(
    settings: Settings, kube: KubeClient | None, tls: ServingTLS, telemetry: Telemetry
) -> Gate:
    sources = AuthSources(
        settings.client_ca_file,
        settings.requestheader_client_ca_file,
        settings.requestheader_allowed_names,
        kube,
        settings.cert_reload_interval,
    )
    if not sources.configured:
        where = settings.listen_address
        if not where.startswith(LOOPBACK):
            log.warning(
                "the metrics API on %s is open to anyone who can reach it: give "
                "--client-ca-file, --requestheader-client-ca-file or --authentication-kubeconfig",
                where,
            )
        return Gate(sources, None, AnyAuthenticated())
    reviewer = None
    if kube is not None:
        reviewer = KubeReviewer(kube, telemetry.authn_reviews, telemetry.authz_reviews)
    authenticator = Authenticator(AuthConfig(), reviewer, token_ttl=settings.token_cache_ttl)
    authorizer: Authorizer = AnyAuthenticated()
    if reviewer is not None:
        authorizer = DelegatingAuthorizer(
            reviewer,
            allow_ttl=settings.authorization_allow_ttl,
            deny_ttl=settings.authorization_deny_ttl,
            proxied_allow_ttl=settings.authorization_proxied_allow_ttl,
        )
    else:
        log.warning("no cluster to ask (SubjectAccessReview): every authenticated caller may read")

    def trust(config: AuthConfig) -> None:
        tls.trust_clients(config.trusted_pem)
        authenticator.update(config)
        rh = config.requestheader
        log.info(
            "authentication: client CA %s, front-proxy CA %s, allowed names %s",
            "set" if config.client_ca else "none",
            "set" if rh.ca else "none",
            list(rh.allowed_names) or "any",
        )

    sources.listeners.append(trust)
    await sources.load()
    return Gate(sources, authenticator, authorizer)
