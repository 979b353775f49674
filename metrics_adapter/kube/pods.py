"""The cluster's pods as ``kubernetes-workload`` counts them, on the Kubernetes client.

One LIST per (namespace, selector) per polling interval (the poller asks each distinct
query once), served by kube-apiserver's watch cache (``resourceVersion=0``): no etcd read,
and only the pods the selector picks cross the wire. Each pod is cut down to its phase and
node at once, so nothing of it outlives the poll.

Why not an informer (KEDA's client keeps one of every pod in the cluster): a watch of all
pods holds every pod of the cluster in memory, tens of kilobytes each, to answer a few
selectors; and a watch per selector would hold a connection and the pods per trigger even
when a trigger polls once a minute. A LIST per interval costs one cached read each
interval and nothing between.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metrics_adapter.errors import KubeError, KubeUnreachable
from metrics_adapter.kube.client import PODS, KubeClient
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.kube_pods import PodState


class KubePods:
    """:class:`~scalers.kube_pods.PodLister` on a :class:`KubeClient`."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def list_pods(self, namespace: str, selector: str) -> list[PodState]:
        try:
            items, _ = await self.kube.list_objects(
                PODS, namespace, label_selector=selector, from_cache=True
            )
        except KubeUnreachable as exc:
            error = SourceTimeout if exc.reason == "Timeout" else SourceUnreachable
            raise error(str(exc)) from exc
        except KubeError as exc:  # refused (RBAC), or a selector the apiserver will not take
            raise SourceResponseError(str(exc)) from exc
        return [pod_state(item) for item in items]


def pod_state(pod: Mapping[str, Any]) -> PodState:
    spec, status = pod.get("spec"), pod.get("status")
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return PodState(str(phase or ""), str(node or ""))
