"""postgresql and mysql failures: each is an error of the trigger, never a zero, and no
message shows a password."""

from __future__ import annotations

import pytest

from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.sql.helpers import APP_PASSWORD, Db
from tests.support.servers import free_port
from tests.support.triggers import measure_once as measure
from tests.support.triggers import poll

pytestmark = pytest.mark.integration


async def test_a_wrong_password_is_refused_without_showing_it(db: Db) -> None:
    s = db.scaler("SELECT 1", password="wrong-pw-5e1d")
    with pytest.raises(SourceResponseError, match="authentication failed") as info:
        await measure(s)
    assert "wrong-pw-5e1d" not in str(info.value)
    assert APP_PASSWORD not in str(info.value)
    assert f"127.0.0.1:{db.port}" in str(info.value)


async def test_an_unknown_user_is_refused(db: Db) -> None:
    with pytest.raises(SourceResponseError, match="authentication failed"):
        await measure(db.scaler("SELECT 1", user="nobody_here"))


async def test_nothing_listening_is_unreachable(db: Db) -> None:
    port = free_port()
    with pytest.raises(SourceUnreachable) as info:
        await measure(db.scaler("SELECT 1", port=port))
    assert not isinstance(info.value, SourceTimeout)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert APP_PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", "syntax"),
        ("SELECT count(*) FROM no_such_table", "no_such_table"),
        ("SELECT 1 WHERE 1 = 0", "the query returned no rows"),
        ("SELECT NULL", "the query returned NULL"),
        ("SELECT 'ten'", 'the query returned "ten", which is not a number'),
        ("SELECT ' 12'", "which is not a number"),
        ("SELECT 1, 2", "the query returned 2 columns"),
    ],
)
async def test_an_answer_that_is_not_one_number_is_an_error(
    db: Db, query: str, message: str
) -> None:
    with pytest.raises(SourceResponseError, match=message):
        await measure(db.scaler(query))


async def test_a_date_is_not_a_number(db: Db) -> None:
    with pytest.raises(SourceResponseError, match=r"expected a number|not a number"):
        await measure(db.scaler("SELECT CURRENT_DATE"))


async def test_a_slow_query_is_a_timeout_and_the_pool_recovers(db: Db) -> None:
    s = db.scaler(db.sleep(30))
    fast = db.scaler("SELECT 7")
    clients = Clients(timeout=1)
    try:
        with pytest.raises(SourceTimeout):
            await poll(s, clients)
        assert (await poll(fast, clients)).value == 7
    finally:
        await clients.aclose()


async def test_a_stopped_server_is_an_error_until_it_is_back(own_db: Db) -> None:
    s = own_db.scaler("SELECT 5")
    clients = Clients(timeout=2)
    try:
        assert (await poll(s, clients)).value == 5  # the pool holds a live connection now
        own_db.server.stop()
        with pytest.raises(SourceUnreachable):
            await poll(s, clients)
        with pytest.raises(SourceUnreachable):  # and again: never a zero, nor a stale value
            await poll(s, clients)
        own_db.server.start()
        assert (await poll(s, clients)).value == 5
    finally:
        await clients.aclose()


async def test_a_frozen_server_is_a_timeout(own_db: Db) -> None:
    s = own_db.scaler("SELECT 5")
    own_db.server.pause()
    try:
        with pytest.raises(SourceTimeout):
            await measure(s, client_timeout=1)
    finally:
        own_db.server.resume()
    assert await measure(s) == 5


@pytest.mark.parametrize(
    ("fixture", "query"),
    [
        ("pg", "SELECT extract(epoch FROM current_setting('statement_timeout')::interval)"),
        ("maria", "SELECT @@max_statement_time"),
    ],
)
async def test_the_server_stops_a_query_at_the_clients_timeout_too(
    request: pytest.FixtureRequest, fixture: str, query: str
) -> None:
    """A query the client gave up on must not run on in the server: the session's own
    statement limit is the clients' timeout."""
    db: Db = request.getfixturevalue(fixture)
    clients = Clients(timeout=1.5)
    try:
        assert (await poll(db.scaler(query), clients)).value == 1.5
    finally:
        await clients.aclose()
