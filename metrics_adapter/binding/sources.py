"""What binding reads besides the ScaledObject itself, behind one protocol: YAML files
standalone (:mod:`.files`), watch caches in a cluster (:mod:`.cluster`), nothing at admission
(:class:`~metrics_adapter.admission.parameters.NoObjects`).

Every method answers from memory and at once. What needs a read of an outside source (a file,
a TokenRequest, Vault) is read ahead by the source's cache and only looked up here
(:meth:`ObjectSource.source_values`): binding never waits on a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from metrics_adapter.binding.auth_sources.base import SourceRead, SourceValues
from metrics_adapter.errors import AuthSourceError
from metrics_adapter.model.authentication import TriggerAuthentication
from metrics_adapter.model.keda import ObjectRef
from metrics_adapter.model.scaled_job import Scalable


class ObjectSource(Protocol):
    """Where referenced objects are read from: YAML files standalone, informers in a cluster."""

    cluster_object_namespace: str

    def trigger_authentication(self, ref: ObjectRef) -> TriggerAuthentication | None: ...

    def cluster_trigger_authentication(self, name: str) -> TriggerAuthentication | None: ...

    def unread(self, kind: str, namespace: str = "") -> str | None:
        """Why objects of ``kind`` in ``namespace`` are not read here (``--watch-namespace``,
        ``--restrict-secret-access``); ``None`` when they are, found or not."""
        ...

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The key's value as text; ``None`` when absent or not UTF-8 (see
        :meth:`binary_secret_keys`)."""
        ...

    def binary_secret_keys(self, namespace: str, name: str) -> frozenset[str]:
        """The Secret's keys whose data is not UTF-8 text (a keystore, a DER key): accepted,
        and only an error when a trigger reads one."""
        ...

    def config_map_value(self, namespace: str, name: str, key: str) -> str | None: ...

    def container_env(self, obj: Scalable, container: str | None) -> Mapping[str, str]:
        """The resolved env of a container (first one when ``None``) of the scale target's
        pod template, or of a ScaledJob's Job template."""
        ...

    def workload_service_account(self, obj: Scalable) -> str:
        """The ServiceAccount of the scale target's pod template (or the Job template):
        ``serviceAccountName``, else ``default``."""
        ...

    def service_account_annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A ServiceAccount's annotations (pod identity reads its role); ``None``: not found."""
        ...

    def source_values(self, read: SourceRead) -> SourceValues | AuthSourceError | None:
        """The last good values of ``read``, else the error of its failed reads; ``None``
        while it has not been read (nothing is read here)."""
        ...
