"""Many azure-queue and azure-blob triggers, few requests: one client per storage endpoint,
one request per distinct read per interval.

Requests are counted by Azurite itself (its debug log, tests/support/azurite.py); clients are
counted at the ``Clients.shared`` seam, the only place a scaler may open one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable
from typing import Any, TypeVar

import pytest

from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from scalers import azure_blob, azure_queue
from scalers.base import Scaler
from tests.integration.azure.helpers import blob_trigger, bound, queue_trigger
from tests.support.azurite import ACCOUNT, KEY, Azurite
from tests.support.counting import CountingClients

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def _poll_all(
    named: dict[str, tuple[Any, Scaler[Any]]],
) -> tuple[MetricStore, list[Hashable]]:
    """Every trigger as the only trigger of a ScaledObject of its name; each distinct query
    polled once, as one interval does."""
    store, clients = MetricStore(), CountingClients()
    poller = Poller(store, clients, Telemetry())
    triggers = {so: bound(so, kind, s) for so, (kind, s) in named.items()}
    for t in triggers.values():
        poller.set_triggers(t.so, [t])
    try:
        await asyncio.gather(*(poller.poll(q) for q in {s.query for _, s in named.values()}))
    finally:
        await clients.aclose()
    for so, t in triggers.items():
        reading = store.readings(t.so)[t.metric_name.lower()]
        assert reading.healthy, f"{so}: {reading.error}"
    return store, clients.opened


def _value(store: MetricStore, so: str, named: dict[str, tuple[Any, Scaler[Any]]]) -> float | None:
    kind, s = named[so]
    t = bound(so, kind, s)
    return store.readings(t.so)[t.metric_name.lower()].value


async def test_queue_triggers_share_one_client_and_one_request_per_read(queues: Azurite) -> None:
    names = ["share-a", "share-b", "share-c"]
    for i, name in enumerate(names):
        queues.create_queue(name)
        queues.send(name, 2 + i)
    # One account written three ways: the same identity, the same requests.
    same_account = [
        queues.connection_string(),
        f"AccountKey={KEY};AccountName={ACCOUNT};QueueEndpoint={queues.endpoint}/",
        f"QueueEndpoint={queues.endpoint};AccountName={ACCOUNT};AccountKey={KEY}",
    ]
    named: dict[str, tuple[Any, Scaler[Any]]] = {}
    for i in range(24):
        meta = {
            "queueName": names[i % 3],
            "queueLength": str(1 + i % 5),
            "queueLengthStrategy": ("all", "visibleonly")[i % 2],
        }
        connection = same_account[i % 3]
        named[f"so{i}"] = (azure_queue.KIND, queue_trigger(queues, meta, connection=connection))
    # The first queue read with a SAS as well: another identity, a request of its own.
    sas = queues.connection_string(sas=queues.account_sas())
    named["sas"] = (
        azure_queue.KIND,
        queue_trigger(queues, {"queueName": names[0]}, connection=sas),
    )
    assert len({s.query for _, s in named.values()}) == 7

    before = Counter(queues.requests())
    store, opened = await _poll_all(named)
    sent = Counter(queues.requests()) - before

    prefix = f"/{ACCOUNT}"
    expected = Counter({f"{prefix}/{n}?comp=metadata": 1 for n in names})
    expected.update({f"{prefix}/{n}/messages?peekonly=true&numofmessages=32": 1 for n in names})
    expected[f"{prefix}/{names[0]}?comp=metadata"] += 1  # the SAS identity's own
    assert Counter(_without_sas(p) for p in sent.elements()) == expected
    assert opened == [("azure-storage", f"http://127.0.0.1:{queues.port}")]
    for i in range(24):
        assert _value(store, f"so{i}", named) == 2 + i % 3
    assert _value(store, "sas", named) == 2


def _without_sas(path: str) -> str:
    base, _, query = path.partition("?")
    kept = [
        p
        for p in query.split("&")
        if p.split("=")[0] not in {"sv", "ss", "srt", "sp", "se", "spr", "sig"}
    ]
    return f"{base}?{'&'.join(kept)}" if kept else base


async def test_blob_triggers_share_listings(blobs: Azurite) -> None:
    blobs.create_container("shared")
    blobs.put_blobs("shared", "a.json", "b.txt", "in/c.json", "in/d/e.json")
    cases: list[tuple[dict[str, str], float]] = [
        ({}, 2),
        ({"blobCount": "1"}, 2),  # the same listing as {}
        ({"recursive": "true"}, 4),
        ({"globPattern": "*.json"}, 3),  # the flat listing of the recursive trigger
        ({"globPattern": "*.txt", "blobCount": "3"}, 1),  # that one too
        ({"blobPrefix": "in"}, 1),
        ({"blobPrefix": "in", "globPattern": "*.json"}, 2),  # prefix in/, flat
    ]
    named: dict[str, tuple[Any, Scaler[Any]]] = {}
    for i, (meta, _) in enumerate(cases * 3):
        s = blob_trigger(blobs, {"blobContainerName": "shared", **meta})
        named[f"so{i}"] = (azure_blob.KIND, s)
    before = Counter(blobs.requests())
    store, opened = await _poll_all(named)
    sent = Counter(blobs.requests()) - before

    listing = f"/{ACCOUNT}/shared?restype=container&comp=list&maxresults=5000"
    assert sent == Counter(
        {
            f"{listing}&delimiter=%2F": 1,
            listing: 1,
            f"{listing}&prefix=in%2F&delimiter=%2F": 1,
            f"{listing}&prefix=in%2F": 1,
        }
    )
    assert opened == [("azure-storage", f"http://127.0.0.1:{blobs.port}")]
    for i, (_, value) in enumerate(cases * 3):
        assert _value(store, f"so{i}", named) == value
