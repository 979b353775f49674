"""SigV4 signing of plain HTTP requests with a trigger's AWS identity: Amazon Managed
Prometheus (service ``aps``), as KEDA's ``aws.NewSigV4RoundTripper`` does for prometheus.

The keys are the same as the AWS triggers' (:func:`scalers.aws.frozen_credentials`: static,
the adapter's own, or an assumed role, refreshed before expiry); botocore's ``SigV4Auth``
signs. AWS canonicalises the query string from its decoded pairs, percent-encoding all but
``A-Za-z0-9-_.~`` (a space is ``%20``); botocore signs the query as written. So a signed URL's
query must be written that way (:func:`canonical_query`), or AWS computes another signature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from scalers import aws, aws_identity
from scalers.clients import Clients
from scalers.errors import ScalerError, SourceUnreachable

SERVICE = "aps"


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """A query string as SigV4 canonicalises it (RFC 3986, ``%20`` for a space)."""
    return urlencode(pairs, quote_via=quote, safe="-_.~")


@dataclass(frozen=True)
class SigV4:
    """Signs requests as one identity for one service in one region; hashable, so that the
    queries of triggers with the same identity are shared."""

    identity: aws_identity.AwsIdentity
    service: str = SERVICE

    def describe(self) -> str:
        return f"SigV4 {self.service} in {self.identity.region or 'the default region'}"

    async def headers(
        self, clients: Clients, method: str, url: str, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` plus ``Authorization``, ``X-Amz-Date`` (now) and, with temporary
        keys, ``X-Amz-Security-Token``, for a request of ``method`` to ``url`` without body."""
        try:
            keys = await aws.frozen_credentials(clients, self.identity)
        except ScalerError as exc:
            raise type(exc)(f"{self.describe()}: {exc}") from exc
        except Exception as exc:
            failure = await aws.source_error(clients, "sts", self.identity, exc, self.describe())
            raise failure from exc
        # No awsRegion: the adapter's own, as KEDA's default config reads it.
        region = self.identity.region or os.environ.get("AWS_REGION") or ""
        region = region or os.environ.get("AWS_DEFAULT_REGION", "")
        if not region:
            raise SourceUnreachable(f"{self.describe()}: awsRegion is required to sign")
        request = AWSRequest(method=method, url=url, headers=dict(headers))
        SigV4Auth(keys, self.service, region).add_auth(request)
        return dict(request.headers.items())
