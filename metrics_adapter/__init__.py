"""metrics-adapter: KEDA's ScaledObjects served to the HPA through external.metrics.k8s.io."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("metrics-adapter")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"
