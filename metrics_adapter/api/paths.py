"""The paths the API answers, named once for its routes, its request metrics and its gate."""

from __future__ import annotations

from metrics_adapter.admission.review import PATHS as _ADMISSION_PATHS
from metrics_adapter.kube import wire

APIS = "/apis"
GROUP = f"{APIS}/{wire.GROUP}"
GROUP_VERSION = f"{APIS}/{wire.GROUP_VERSION}"
NAMESPACES = f"{GROUP_VERSION}/namespaces/"
"""Below it, ``{namespace}/{metric}``: a read of one External metric."""

HEALTHZ, LIVEZ, READYZ = "/healthz", "/livez", "/readyz"
PROBES = frozenset({HEALTHZ, LIVEZ, READYZ})
"""Answered to anyone, and not counted: the kubelet asks them all the time."""

ADMISSION = frozenset(_ADMISSION_PATHS)
"""The validating webhook's paths, KEDA's (``/validate-keda-sh-v1alpha1-<kind>``): POSTs of an
AdmissionReview by kube-apiserver."""
