"""Repeated Events are counted on the first, as client-go's recorder counts them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from metrics_adapter.errors import KubeNotFound
from metrics_adapter.kube.events import EventSeries
from metrics_adapter.kube.objects import Event, ObjectReference

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SO = ObjectReference("keda.sh/v1alpha1", "ScaledObject", "apps", "web", "uid-1")


class Server:
    """Events as kube-apiserver keeps them: by namespace and name; expired on demand."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], dict[str, object]] = {}
        self.calls: list[str] = []

    async def create(self, event: Event) -> object:
        self.calls.append("create")
        self.events[(event.namespace, event.name)] = dict(event.to_json())
        return {}

    async def patch(self, namespace: str, name: str, body: dict[str, object]) -> object:
        self.calls.append("patch")
        if (namespace, name) not in self.events:
            raise KubeNotFound(f"Event {namespace}/{name} (patch)", 404, "NotFound", "gone")
        self.events[(namespace, name)].update(body)
        return {}


def event(message: str, at: datetime, nonce: int) -> Event:
    return Event(SO, "KEDAScalerFailed", message, type="Warning", at=at, nonce=nonce)


async def test_a_repetition_counts_on_the_first_and_another_message_starts_its_own() -> None:
    server = Server()
    series = EventSeries(server.create, server.patch)
    for i in range(3):
        await series.record(event("connection refused", T0 + timedelta(seconds=30 * i), i))
    await series.record(event("timed out", T0 + timedelta(minutes=2), 9))
    assert server.calls == ["create", "patch", "patch", "create"]
    refused, timed_out = server.events.values()
    assert (refused["count"], refused["firstTimestamp"], refused["lastTimestamp"]) == (
        3,
        "2026-12-06T12:00:00Z",
        "2026-12-06T12:01:00Z",
    )
    assert (timed_out["message"], timed_out["count"]) == ("timed out", 1)


async def test_an_event_the_server_dropped_starts_a_new_series() -> None:
    server = Server()
    series = EventSeries(server.create, server.patch)
    await series.record(event("connection refused", T0, 1))
    server.events.clear()  # an hour later: kube-apiserver's event TTL
    await series.record(event("connection refused", T0 + timedelta(hours=1), 2))
    await series.record(event("connection refused", T0 + timedelta(hours=1, seconds=30), 3))
    assert server.calls == ["create", "patch", "create", "patch"]
    [(_, name)] = server.events
    assert name == "web.2" and server.events[("apps", name)]["count"] == 2


@pytest.mark.parametrize("maxsize", [1, 2])
async def test_series_are_remembered_in_a_bounded_lru(maxsize: int) -> None:
    server = Server()
    series = EventSeries(server.create, server.patch, maxsize=maxsize)
    await series.record(event("a", T0, 1))
    await series.record(event("b", T0, 2))
    await series.record(event("a", T0, 3))  # "a" is still known only with room for two
    assert server.calls[-1] == ("patch" if maxsize == 2 else "create")
