"""Where the adapter may list and watch: every namespace (the default), the namespaces of
``--watch-namespace``, and Secrets only in its own namespace with ``--restrict-secret-access``
(KEDA's ``WATCH_NAMESPACE`` and ``KEDA_RESTRICT_SECRET_ACCESS``).

Every cluster-wide watch asks its client's scope where to watch (:func:`watch`), so a narrower
scope needs no cluster-wide list permission; and a binding that needs an object outside it
is told why it cannot be read (:meth:`Scope.unread`), instead of that the object is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics_adapter.kube.client import SECRETS, Resource

Watched = tuple[str | None, ...]
"""Namespaces to watch a resource in: ``(None,)`` everywhere at once; ``()`` nowhere."""
EVERYWHERE: Watched = (None,)


@dataclass(frozen=True, slots=True)
class Scope:
    namespaces: tuple[str, ...] = ()
    """``--watch-namespace``: empty, every namespace."""
    own_namespace: str = ""
    """Where ClusterTriggerAuthentications' Secrets live (``--cluster-object-namespace``)."""
    restrict_secrets: bool = False
    """``--restrict-secret-access``: Secrets only in :attr:`own_namespace`."""

    def watched(self, resource: Resource) -> Watched:
        """The namespaces ``resource`` is listed and watched in."""
        if resource == SECRETS and self.restrict_secrets:
            return (self.own_namespace,)
        if not resource.namespaced:  # a cluster-wide list, which a namespaced mode forgoes
            return () if self.namespaces else EVERYWHERE
        return tuple(dict.fromkeys(self.namespaces)) or EVERYWHERE

    def unread(self, resource: Resource, namespace: str = "") -> str | None:
        """Why objects of ``resource`` in ``namespace`` are not read; ``None`` if they are."""
        watched = self.watched(resource)
        if watched == EVERYWHERE or namespace in watched:
            return None
        if resource == SECRETS and self.restrict_secrets:
            return (
                f"--restrict-secret-access: Secrets are read only in {self.own_namespace}, "
                "the adapter's own namespace"
            )
        if not resource.namespaced:
            return f"--watch-namespace: {resource.kind}s are cluster-wide, and not watched"
        return f"--watch-namespace: {namespace} is not watched ({', '.join(self.namespaces)})"


EVERY_NAMESPACE = Scope()
