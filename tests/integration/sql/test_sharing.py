"""Many SQL triggers, few requests: one pool per database identity, one request per
(database, SQL text) per interval, whatever the number of triggers and their targets.

Requests are counted by the servers themselves: PostgreSQL's statement log
(``log_statement=all``), MariaDB's general log. Pools are counted at ``Clients.shared``, the
only place a scaler may open one.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.sql import Database
from tests.integration.sql.helpers import OTHER_PASSWORD, OTHER_USER, Db
from tests.support import counting
from tests.support.triggers import run_until_polled, scaled_object

pytestmark = pytest.mark.integration

T = TypeVar("T")
ROWS: list[tuple[str, float | None]] = [("queued", 1), ("queued", 2), ("running", 3)]


class CountingClients(counting.CountingClients):
    @property
    def pools(self) -> int:
        return sum(1 for key in self.opened if isinstance(key, Database))


def authentication(name: str, db: Db, user: str | None = None) -> list[dict[str, Any]]:
    """A TriggerAuthentication giving the connection from a Secret."""
    auth = db.auth() if user is None else db.auth(user=user, password=OTHER_PASSWORD)
    ((param, value),) = auth.items()
    return [
        {
            "kind": "TriggerAuthentication",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretTargetRef": [{"parameter": param, "name": name, "key": "dsn"}]},
        },
        {
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"dsn": value},
        },
    ]


def objects(db: Db, table: str, inventory: Inventory) -> list[BoundTrigger]:
    """26 ScaledObjects: 24 as the app on two SQL texts with assorted targets and
    activations, 2 as another user on the first text."""
    counted = f"SELECT count(*) FROM {table}"
    queued = f"SELECT count(*) FROM {table} WHERE state = 'queued'"
    bound: list[BoundTrigger] = []
    for i in range(26):
        sql = queued if i % 2 and i < 24 else counted
        meta = db.metadata(sql, target=str(1 + i % 5), activation=str(i % 3))
        trigger = {
            "type": db.type_name,
            "metadata": meta,
            "authenticationRef": {"name": "app" if i < 24 else "reader"},
        }
        so = parse_scaled_object(scaled_object(f"so{i}", "default", trigger, pollingInterval=1))
        bound.extend(bind(so, inventory))
    return bound


async def test_one_pool_per_identity_and_one_request_per_query(db: Db, table: str) -> None:
    db.create_table(table, ROWS)
    inventory = Inventory()
    for doc in [*authentication("app", db), *authentication("reader", db, OTHER_USER)]:
        inventory.add(doc, "test")
    bound = objects(db, table, inventory)
    store, clients = MetricStore(), CountingClients()
    poller = Poller(store, clients, Telemetry())
    for b in bound:
        poller.set_triggers(b.so, [b])
    assert poller.query_count == 3
    counted = f"SELECT count(*) FROM {table}"
    queued = f"SELECT count(*) FROM {table} WHERE state = 'queued'"
    try:
        await asyncio.gather(*(poller.poll(q) for q in {b.scaler.query for b in bound}))
        # Every trigger asking at once: still one request per query.
        await asyncio.gather(*(poller.fetch(b.scaler.query) for b in bound))
    finally:
        await clients.aclose()
    assert (db.executed(counted), db.executed(queued)) == (4, 2)  # counted: two identities
    assert clients.pools == 2
    for i, b in enumerate(bound):
        expected = 2 if i % 2 and i < 24 else 3
        assert store.readings(b.so)[b.metric_name.lower()].value == expected


async def test_requests_per_interval_are_the_distinct_queries(db: Db, table: str) -> None:
    db.create_table(table, ROWS)
    inventory = Inventory()
    for doc in [*authentication("app", db), *authentication("reader", db, OTHER_USER)]:
        inventory.add(doc, "test")
    bound = objects(db, table, inventory)
    clients = CountingClients()
    poller = Poller(MetricStore(), clients, Telemetry())
    for b in bound:
        poller.set_triggers(b.so, [b])
    try:
        polls = await run_until_polled(poller, bound, polls=3)
    finally:
        await clients.aclose()
    counted = f"SELECT count(*) FROM {table}"
    queued = f"SELECT count(*) FROM {table} WHERE state = 'queued'"
    by_sql: dict[str, list[int]] = {}
    for query, n in polls.items():
        by_sql.setdefault(query.sql, []).append(n)
    for sql in (counted, queued):
        asked = sum(by_sql[sql])
        # One poll per query may have reached the server as the poller stopped, uncounted.
        assert asked <= db.executed(sql) <= asked + len(by_sql[sql]), (sql, by_sql[sql])
    # 13 triggers ask the first text, 13 the second: two queries and one ask the server.
    assert (len(by_sql[counted]), len(by_sql[queued])) == (2, 1)
    assert clients.pools == 2
