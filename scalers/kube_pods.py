"""What ``kubernetes-workload`` needs of the cluster: the pods a label selector picks.

``scalers/`` never imports the service, so the trigger asks through :class:`PodLister`,
which the service implements on its Kubernetes client and hands in on
:attr:`scalers.clients.Clients.pods`. Standalone mode has no cluster, hence no lister.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PodState:
    """The two fields KEDA's count reads of a pod: everything else of it is dropped."""

    phase: str
    """``Pending``, ``Running``, ``Succeeded``, ``Failed``, ``Unknown``, or empty."""
    node_name: str = ""
    """Where it was scheduled; empty before that."""


class PodLister(Protocol):
    async def list_pods(self, namespace: str, selector: str) -> Sequence[PodState]:
        """The pods of ``namespace`` that ``selector`` (a valid label selector) picks;
        raise a :class:`~scalers.errors.ScalerError` when they cannot be listed."""
        ...
