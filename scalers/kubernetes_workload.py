"""``kubernetes-workload``: the number of pods a label selector picks in the trigger's own
namespace, as KEDA's ``kubernetesWorkloadScaler``.

KEDA's rule: every pod the selector picks counts except those in phase ``Succeeded`` or
``Failed``, so pending and terminating pods count; with ``groupByNode`` the distinct nodes
of those pods count instead (a pod not yet scheduled adds none). The value is the count,
compared by the HPA with ``value`` (``AverageValue`` by default: one replica per ``value``
pods); active when the count is above ``activationValue``. The metric is
``workload-<namespace>``, whatever the selector, as in KEDA.

It is the one trigger that reads the cluster: the pods come from the
:class:`~scalers.kube_pods.PodLister` of :attr:`scalers.clients.Clients.pods`, one LIST per
(namespace, selector) per interval, however many triggers ask. Standalone mode has no
cluster, so each poll of the trigger fails, saying so.

Where we differ from KEDA: ``podSelector`` is parsed when the object is read, with the
apiserver's grammar, and a bad one is a problem naming the value (KEDA's parse error says
the same, at scaler creation). KEDA's client reads pods from an informer of every pod in
the cluster; we LIST the selected ones from the apiserver's watch cache at each poll.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scalers.base import Example, Scaler, ScalerKind, normalize
from scalers.clients import Clients
from scalers.errors import Problems, ScalerError, quote
from scalers.kube_pods import PodState
from scalers.label_selector import SelectorError, parse_label_selector
from scalers.params import TriggerInputs, TriggerMetadata, param, parse_params

NOT_COUNTED = frozenset({"Succeeded", "Failed"})
"""KEDA's ``phasesCountedAsTerminated``."""
NEEDS_CLUSTER = (
    "kubernetes-workload needs a cluster: standalone mode has no pods to count "
    "(run serve with --kubeconfig or --in-cluster)"
)


@dataclass(frozen=True)
class Metadata(TriggerMetadata):
    pod_selector: str = param(
        "podSelector", doc="label selector, e.g. app=worker,tier in (a,b),!legacy"
    )
    value: float | None = param(
        "value", gt=0, target=True, doc="pods per replica; optional under scalingModifiers"
    )
    activation_value: float = param("activationValue", default="0")
    group_by_node: bool = param(
        "groupByNode", default="false", doc="count the distinct nodes of the pods instead"
    )
    namespace: str | None = field(default=None, kw_only=True)
    """The trigger's object's namespace, where the pods are counted: set by :class:`Kind`."""

    def check(self) -> Iterator[tuple[str, str]]:
        try:
            parse_label_selector(self.pod_selector)
        except SelectorError as exc:
            yield "podSelector", f"{quote(self.pod_selector)} is not a label selector: {exc}"


@dataclass(frozen=True, slots=True)
class PodsQuery:
    """The pods one selector picks in one namespace: what KEDA's ``List`` asks."""

    namespace: str | None
    selector: str
    """Canonical (:func:`~scalers.label_selector.parse_label_selector`), so that equal
    selectors written differently are one query."""

    async def run(self, clients: Clients) -> tuple[PodState, ...]:
        if clients.pods is None:
            raise ScalerError(NEEDS_CLUSTER)
        if self.namespace is None:
            raise ScalerError("kubernetes-workload: the trigger's namespace is not known")
        return tuple(await clients.pods.list_pods(self.namespace, self.selector))

    def describe(self) -> str:
        return f"LIST pods in {self.namespace} labelSelector={self.selector}"


def count(pods: tuple[PodState, ...], group_by_node: bool) -> int:
    """KEDA's count: the pods not finished, or the distinct nodes they were scheduled on."""
    counted = [p for p in pods if p.phase not in NOT_COUNTED]
    if group_by_node:
        return len({p.node_name for p in counted if p.node_name})
    return len(counted)


@dataclass(frozen=True, kw_only=True)
class KubernetesWorkloadScaler(Scaler[tuple[PodState, ...]]):
    meta: Metadata
    query: PodsQuery

    def measure(self, answer: tuple[PodState, ...]) -> float:
        return float(count(answer, self.meta.group_by_node))


def build(meta: Metadata) -> KubernetesWorkloadScaler:
    selector = str(parse_label_selector(meta.pod_selector))  # valid: Metadata.check parsed it
    return KubernetesWorkloadScaler(
        meta=meta,
        query=PodsQuery(meta.namespace, selector),
        metric_name=normalize(f"workload-{meta.namespace or ''}"),
        target=meta.value or 0.0,  # unset only under scalingModifiers, as in KEDA
        activation_target=meta.activation_value,
        value_label="pods",
    )


@dataclass(frozen=True, slots=True)
class Kind(ScalerKind[Metadata]):
    """Hands the trigger's namespace, which is no parameter, to its metadata."""

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        meta = parse_params(self.metadata, inputs, problems)
        if meta is None:
            return None
        return self.build(dataclasses.replace(meta, namespace=inputs.namespace))


KIND = Kind(
    type_name="kubernetes-workload",
    keda_name="kubernetesWorkloadScaler",
    metadata=Metadata,
    build=build,
    summary="Pods a label selector picks in the trigger's namespace, finished ones aside.",
    example=Example({"podSelector": "app=worker,tier in (batch,stream)", "value": "2"}),
)
