"""Answers that cost a round trip to kube-apiserver, remembered: each question is asked once
at a time, and its answer kept for a time that depends on the answer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from metrics_adapter.api.auth.identity import Attributes, User
from scalers.flight import SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Reviewer(Protocol):
    """kube-apiserver's TokenReview and SubjectAccessReview; a failure raises KubeError."""

    async def review_token(self, token: str) -> User | None:
        """The user a bearer token belongs to; ``None`` when it is not valid."""

    async def review_access(self, user: User, attributes: Attributes) -> tuple[bool, str]:
        """Whether ``user`` may do what ``attributes`` say, and kube-apiserver's reason."""


class RememberedAnswers(Generic[K, V]):
    """A bounded cache where ``ttl(answer)`` says how long each answer lives, and concurrent
    askers of one question share a single call; failures are never remembered."""

    def __init__(self, ttl: Callable[[V], float], maxsize: int = 10_000) -> None:
        self._ttl = ttl
        self.maxsize = maxsize
        self._answers: dict[K, tuple[float, V]] = {}
        """``key -> (expires at, answer)``, oldest first (a plain dict: the HPA's every
        request reads it, and this is a dict lookup and a comparison)."""
        self._asking: SingleFlight[K, V] = SingleFlight()
        """Questions out now. A caller cancelled (its client went away) does not cancel the
        question for the others waiting on it, nor for the next asker if none is left."""
        self.calls = 0
        """How many questions went out, for tests and telemetry."""

    def __len__(self) -> int:
        return len(self._answers)

    async def get(self, key: K, ask: Callable[[], Awaitable[V]]) -> V:
        known = self._answers.get(key)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        return await self._asking.do(key, lambda: self._ask(key, ask))

    async def _ask(self, key: K, ask: Callable[[], Awaitable[V]]) -> V:
        self.calls += 1
        answer = await ask()  # a failure is never remembered
        if (ttl := self._ttl(answer)) > 0:
            self._remember(key, answer, ttl)
        return answer

    def _remember(self, key: K, answer: V, ttl: float) -> None:
        now = time.monotonic()
        self._answers.pop(key, None)  # re-inserted last: the order stays oldest first
        if len(self._answers) >= self.maxsize:
            self._answers = {k: e for k, e in self._answers.items() if e[0] > now}
            if len(self._answers) >= self.maxsize:  # still full: forget the oldest quarter
                keep = list(self._answers.items())[self.maxsize // 4 + 1 :]
                self._answers = dict(keep)
        self._answers[key] = (now + ttl, answer)

    def clear(self) -> None:
        self._answers.clear()
