"""KEDA's ``boundServiceAccountToken`` source: a token of a ServiceAccount of the
authentication's namespace, from the TokenRequest API, as the parameter's value.

KEDA requests one for every scaler it builds, living ``KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY``
(1 h by default); here one token per ServiceAccount is shared by every trigger naming it, and
replaced after :data:`RENEW_AT` of its life, before it expires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from metrics_adapter.binding.auth_sources.base import ParameterRead, ReadContext, SourceValues
from metrics_adapter.errors import AuthSourceError, KubeError

if TYPE_CHECKING:
    from metrics_adapter.binding.sources import ObjectSource
    from metrics_adapter.model.authentication import TriggerAuthentication

RENEW_AT = 2 / 3
TOKEN = "token"


@dataclass(frozen=True, slots=True)
class BoundTokenRead:
    namespace: str
    service_account: str

    def describe(self) -> str:
        return f"boundServiceAccountToken of ServiceAccount {self.namespace}/{self.service_account}"

    async def read(self, context: ReadContext) -> SourceValues:
        if context.kube is None:
            raise AuthSourceError(f"{self.describe()}: needs a cluster (TokenRequest)")
        try:
            bound = await context.kube.create_token(
                self.namespace, self.service_account, context.bound_token_expiry
            )
        except KubeError as exc:
            raise AuthSourceError(f"{self.describe()}: {exc}") from exc
        life = float(context.bound_token_expiry)
        if bound.expires_at is not None:
            life = (bound.expires_at - datetime.now(UTC)).total_seconds()
        return SourceValues({TOKEN: bound.token}, max(life * RENEW_AT, 0.0))


def parameter_reads(
    auth: TriggerAuthentication,
    namespace: str,
    objects: ObjectSource,
) -> list[ParameterRead]:
    return [
        ParameterRead(b.parameter, BoundTokenRead(namespace, b.service_account_name), TOKEN)
        for b in auth.bound_service_account_tokens
    ]
