"""The write budget (--kube-api-qps, --kube-api-burst): a token bucket served scale first,
paused by a 429; and the client's writes spending it.

The rates here are high (tens of milliseconds a token) so the tests are quick; only lower
bounds of time are asserted, which a loaded machine only makes longer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, cast

import pytest

from metrics_adapter.config.settings import Settings
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.budget import Write, WriteBudget
from metrics_adapter.kube.client import HPAS, THROTTLED_RETRIES, KubeClient
from metrics_adapter.kube.transport import ApiError, Transport


async def test_a_burst_goes_at_once_then_qps_paces_the_rest() -> None:
    budget = WriteBudget(qps=50, burst=5)
    began = time.monotonic()
    waits = await asyncio.gather(*(budget.take(Write.OBJECT) for _ in range(15)))
    assert sum(w == 0 for w in waits) == 5  # the burst
    assert time.monotonic() - began >= 10 / 50 * 0.95  # ten more at 50 a second
    assert budget.waiting == 0


async def test_waiting_writes_go_scale_first_then_objects_then_events() -> None:
    budget = WriteBudget(qps=20, burst=1)
    await budget.take(Write.OBJECT)  # the burst is spent: the rest wait
    order: list[Write] = []

    async def write(kind: Write) -> None:
        await budget.take(kind)
        order.append(kind)

    kinds = [Write.EVENT, Write.OBJECT, Write.EVENT, Write.SCALE, Write.OBJECT, Write.SCALE]
    tasks = [asyncio.create_task(write(kind)) for kind in kinds]
    await asyncio.sleep(0)  # all queued before the first token comes
    await asyncio.gather(*tasks)
    assert order == sorted(kinds)


async def test_a_429_pauses_every_write_for_its_retry_after() -> None:
    budget = WriteBudget(qps=1000, burst=100)
    budget.pause(0.3)
    began = time.monotonic()
    await asyncio.gather(budget.take(Write.SCALE), budget.take(Write.EVENT))
    assert time.monotonic() - began >= 0.3 * 0.95


async def test_a_cancelled_write_spends_nothing() -> None:
    budget = WriteBudget(qps=10, burst=1)
    await budget.take(Write.OBJECT)
    gone = asyncio.create_task(budget.take(Write.SCALE))
    kept = asyncio.create_task(budget.take(Write.OBJECT))
    await asyncio.sleep(0)
    assert budget.waiting == 2
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert budget.waiting == 1
    await kept  # the token the cancelled one would have had
    assert budget.waiting == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"kube_api_qps": 0.0}, "--kube-api-qps: 0 must be positive"),
        ({"kube_api_burst": 0}, "--kube-api-burst: 0 must be at least 1"),
    ],
)
def test_a_budget_that_allows_nothing_is_refused(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**flags)


class Answers:
    """The transport as KubeClient calls it: each call takes the next of ``codes``, an
    answer for 200, else an ApiError with that status and Retry-After."""

    def __init__(self, *codes: int, retry_after: str = "0") -> None:
        self.codes = list(codes)
        self.retry_after = retry_after
        self.calls: list[str] = []

    async def call(self, method: str, path: str, **_: Any) -> tuple[Any, int, Mapping[str, str]]:
        self.calls.append(method)
        code = self.codes.pop(0)
        if code == 200:
            return {"kind": "HorizontalPodAutoscaler"}, 200, {}
        body = b'{"kind":"Status","code":429,"reason":"TooManyRequests"}'
        raise ApiError(code, "TooManyRequests", {"Retry-After": self.retry_after}, body)

    async def close(self) -> None:
        return None


def client(api: Answers, budget: WriteBudget | None) -> KubeClient:
    kube = KubeClient(cast(Transport, api))
    kube.writes = budget
    return kube


async def test_a_write_refused_429_is_sent_again_after_the_pause() -> None:
    api = Answers(429, 200, retry_after="0")
    budget = WriteBudget(qps=1000, burst=10)
    answer = await client(api, budget).patch(HPAS, "h", "apps", {"spec": {}})
    assert answer == {"kind": "HorizontalPodAutoscaler"}
    assert api.calls == ["PATCH", "PATCH"]


async def test_a_write_refused_every_time_fails_naming_the_object() -> None:
    api = Answers(*[429] * (THROTTLED_RETRIES + 1))
    with pytest.raises(KubeError, match=r"HorizontalPodAutoscaler apps/h \(patch\)") as raised:
        await client(api, WriteBudget(qps=1000, burst=10)).patch(HPAS, "h", "apps", {})
    assert raised.value.code == 429
    assert len(api.calls) == THROTTLED_RETRIES + 1


async def test_a_read_refused_429_is_not_sent_again() -> None:
    api = Answers(429)
    with pytest.raises(KubeError):
        await client(api, WriteBudget(qps=1000, burst=10)).get(HPAS, "h", "apps")
    assert api.calls == ["GET"]


async def test_writes_wait_for_the_budget_and_reads_do_not() -> None:
    api = Answers(*[200] * 8)
    kube = client(api, WriteBudget(qps=10, burst=1))
    began = time.monotonic()
    await kube.get(HPAS, "h", "apps")
    await kube.patch(HPAS, "h", "apps", {})  # the burst
    reads = time.monotonic() - began
    await kube.patch(HPAS, "h", "apps", {})
    await kube.patch(HPAS, "h", "apps", {})
    assert time.monotonic() - began - reads >= 2 / 10 * 0.95
