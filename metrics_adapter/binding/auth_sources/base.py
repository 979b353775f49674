"""The plug-in interface of authentication sources that need a read: what a source module
hands the cache (:class:`ParameterRead`), and what a read gives back (:class:`SourceValues`).

Binding itself stays synchronous and never waits on a network: a source module only says which
reads a TriggerAuthentication needs (``parameter_reads``); the cache in
:mod:`metrics_adapter.binding.auth_sources.cache` makes each distinct read once, keeps its
values, refreshes them after ``refresh_in``, and hands binding what it has. A source module
exposes::

    def parameter_reads(
        auth: TriggerAuthentication, namespace: str, objects: ObjectSource
    ) -> list[ParameterRead]: ...

Credentials it needs from Secrets are looked up through ``objects.secret_value`` at that point
and carried inside the read (hidden from its repr), so a changed Secret makes a different read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from metrics_adapter.errors import AuthSourceError
from scalers.clients import Clients

if TYPE_CHECKING:
    from metrics_adapter.kube.client import KubeClient

__all__ = ["AuthSourceError", "ParameterRead", "ReadContext", "SourceRead", "SourceValues"]

DEFAULT_REFRESH = 300.0
"""Seconds before a read with no expiry of its own (a static secret) is made again."""


@dataclass(frozen=True, slots=True)
class SourceValues:
    """What one read produced."""

    values: Mapping[str, str]
    """By the key the TriggerAuthentication names (a Vault secret's key, a file's key)."""
    refresh_in: float = DEFAULT_REFRESH
    """Seconds until it must be read again: a token's or lease's expiry, or a default."""

    def __repr__(self) -> str:  # the values are secrets
        return f"SourceValues(keys={sorted(self.values)!r}, refresh_in={self.refresh_in!r})"


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What a read may use; shared by every read of the process."""

    clients: Clients
    """Shared httpx (and aioboto3) clients, with the scaler timeout."""
    kube: KubeClient | None = None
    """Cluster mode's client (TokenRequest, TokenReview); ``None`` standalone."""
    file_root: Path | None = None
    """``--filepath-auth-root-path``: where ``filePath`` is read; ``None``: nowhere."""
    bound_token_expiry: int = 3600
    """Seconds a requested ServiceAccount token lives, KEDA's
    ``KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY`` (1 h by default)."""


class SourceRead(Protocol):
    """One read of an external authentication source. Hashable: equal reads (same server,
    same identity, same path) are made once and shared by every trigger that needs them."""

    def __hash__(self) -> int: ...

    def __eq__(self, other: object) -> bool: ...

    def describe(self) -> str:
        """``Vault http://127.0.0.1:8200 secret/data/app``: where, never a secret."""
        ...

    async def read(self, context: ReadContext) -> SourceValues:
        """Read the source; raise :class:`AuthSourceError` naming it when it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class ParameterRead:
    """One authParams key a source supplies: which value of which read."""

    parameter: str
    """The authParams key it supplies."""
    read: SourceRead
    key: str
    """Which of the read's values."""
