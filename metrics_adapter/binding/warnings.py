"""Every warning of one ScaledObject or ScaledJob, in one list: what its parser accepted and
ignores (unknown fields) and what its binder does (metadata keys and authentication
parameters nothing reads). What ``explain`` prints and the controller's Event carries."""

from __future__ import annotations

from metrics_adapter.binding.ignored import metadata_warnings
from metrics_adapter.binding.triggers import ObjectSource, bind_all
from metrics_adapter.model.scaled_job import Scalable
from scalers.errors import ConfigError


def object_warnings(obj: Scalable, objects: ObjectSource) -> tuple[str, ...]:
    """The parser's warnings, then the binder's; when ``obj`` does not bind, its metadata
    keys' alone (a typo there may be why)."""
    try:
        found = list(bind_all(obj, objects).warnings)
    except ConfigError:
        found = metadata_warnings(obj)
    return tuple(dict.fromkeys([*obj.warnings, *found]))
