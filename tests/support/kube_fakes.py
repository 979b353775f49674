"""A KubeClient that answers from a table, for unit tests of what reads kube-apiserver."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from metrics_adapter.errors import KubeError
from metrics_adapter.kube.budget import Write
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.transport import Transport

Answer = Callable[[str, Any], dict[str, Any]]
"""An answer computed from the request's method and body."""


class FakeKube(KubeClient):
    """Answers by path (and ``?labelSelector`` where one is asked): a dict is the JSON
    answer, a KubeError is raised, an :data:`Answer` is called; any other path lists
    nothing."""

    def __init__(self, answers: Mapping[str, dict[str, Any] | KubeError | Answer]) -> None:
        super().__init__(cast(Transport, None))
        self.answers = answers
        self.asked: list[str] = []

    async def request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        write: Write | None = None,
    ) -> dict[str, Any]:
        selector = dict(query).get("labelSelector")
        key = f"{path}?{selector}" if selector else path
        self.asked.append(key)
        answer = self.answers.get(key, {"items": []})
        if isinstance(answer, KubeError):
            raise answer
        return answer(method, body) if callable(answer) else answer

    async def close(self) -> None:
        """There is no connection to close."""
