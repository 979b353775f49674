"""Triggers of the external types built as the binder builds them, for the tests here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scalers import external, external_push
from scalers.errors import Problems
from scalers.external import ExternalScaler
from scalers.params import TriggerInputs

NAME, NAMESPACE = "orders", "shop"


def make(
    metadata: Mapping[str, str],
    auth: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    push: bool = False,
    name: str = NAME,
    namespace: str = NAMESPACE,
) -> ExternalScaler:
    """An ``external`` (or ``external-push``) trigger of ScaledObject ``namespace/name``;
    a ConfigError names every problem."""
    kind: Any = external_push.KIND if push else external.KIND
    problems = Problems()
    inputs = TriggerInputs(dict(metadata), env or {}, auth or {}, namespace=namespace, name=name)
    built = kind.create(inputs, problems)
    problems.raise_for("trigger")
    assert isinstance(built, ExternalScaler)
    return built
