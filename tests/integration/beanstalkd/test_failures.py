"""beanstalkd failures: each an error of the trigger, never a zero; the connection comes back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from scalers.beanstalkd import BeanstalkdScaler
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.support.beanstalkd import BeanstalkdProcess
from tests.support.servers import free_port
from tests.support.triggers import measure_once, poll, trigger

pytestmark = pytest.mark.integration


def scaler(address: str, tube: str = "jobs", **meta: str) -> BeanstalkdScaler:
    built = trigger("beanstalkd", {"server": address, "tube": tube, "value": "5", **meta})
    assert isinstance(built, BeanstalkdScaler)
    return built


async def test_nothing_listening_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SourceUnreachable) as info:
        await measure_once(scaler(address))
    assert not isinstance(info.value, SourceTimeout)
    assert f"beanstalkd {address}" in str(info.value)


async def test_a_server_gone_fails_then_the_next_poll_reconnects(
    own_beanstalkd: BeanstalkdProcess, tube: str
) -> None:
    s = scaler(own_beanstalkd.address, tube)
    clients = Clients(timeout=2)
    try:
        with own_beanstalkd.client() as producer:
            producer.put(tube, 4)
            assert (await poll(s, clients)).value == 4
        own_beanstalkd.stop()
        with pytest.raises(SourceUnreachable, match=f'tube "{tube}"'):
            await poll(s, clients)
        with pytest.raises(SourceUnreachable, match="Connect call failed"):
            await poll(s, clients)
        own_beanstalkd.start()  # same port, no jobs
        with own_beanstalkd.client() as producer:
            producer.put(tube, 2)
            assert (await poll(s, clients)).value == 2
        assert own_beanstalkd.connections() == 1  # the shared one, nothing leaked
    finally:
        await clients.aclose()


async def test_a_frozen_server_times_out_and_the_connection_is_replaced(
    own_beanstalkd: BeanstalkdProcess, tube: str
) -> None:
    s = scaler(own_beanstalkd.address, tube)
    clients = Clients(timeout=0.5)
    try:
        with own_beanstalkd.client() as producer:
            producer.put(tube, 3)
            assert (await poll(s, clients)).value == 3
            own_beanstalkd.pause()
            try:
                with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
                    await poll(s, clients)
            finally:
                own_beanstalkd.resume()
            # The timed-out command's answer is never read as this one's: a new connection.
            assert (await poll(s, clients)).value == 3
        before = own_beanstalkd.commands("stats-tube")
        assert (await poll(s, clients)).value == 3
        assert own_beanstalkd.commands("stats-tube") == before + 1
        assert own_beanstalkd.connections() == 1
    finally:
        await clients.aclose()


async def test_a_tube_name_beanstalkd_refuses_fails_before_anything_is_sent(
    beanstalkd: BeanstalkdProcess,
) -> None:
    before = beanstalkd.commands("stats-tube")
    for bad in ("-leading-hyphen", "two words", "x" * 201, "jobs\r\nstats"):
        with pytest.raises(SourceResponseError, match="is not a beanstalkd tube name"):
            await measure_once(scaler(beanstalkd.address, bad))
    assert beanstalkd.commands("stats-tube") == before


@contextlib.asynccontextmanager
async def _canned(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[str]:
    """A TCP server that reads one command line and writes ``answer(line)`` (None: hangs up)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        reply = answer(line)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def _stats(body: str) -> bytes:
    data = body.encode()
    return b"OK %d\r\n" % len(data) + data + b"\r\n"


GOOD = "---\nname: jobs\ncurrent-jobs-ready: 1\ncurrent-jobs-reserved: 2\ncurrent-jobs-delayed: 3"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"INTERNAL_ERROR\r\n", 'the server answered "INTERNAL_ERROR" to stats-tube'),
        (b"OK 10\r\nshort", "the server closed the connection"),
        (None, "the server closed the connection"),
        (_stats("name: jobs\ncurrent-jobs-ready: 1"), "stats that do not start with '---'"),
        (_stats("---\nthis is not yaml"), "not 'key: value'"),
        (_stats("---\ncurrent-jobs-ready: 1\ncurrent-jobs-reserved: 2"), "current-jobs-delayed"),
        (_stats(GOOD.replace("ready: 1", "ready: -1")), 'current-jobs-ready: "-1"'),
        (_stats(GOOD.replace("ready: 1", "ready: lots")), 'current-jobs-ready: "lots"'),
        (b"OK 99999999\r\n", 'answered "OK 99999999"'),
    ],
    ids=["error", "cut", "hangup", "no-header", "not-yaml", "missing", "negative", "word", "huge"],
)
async def test_answers_that_are_not_stats_are_errors(reply: bytes | None, message: str) -> None:
    async with _canned(lambda _: reply) as address:
        with pytest.raises((SourceResponseError, SourceUnreachable)) as info:
            await measure_once(scaler(address))
        assert message in str(info.value)


async def test_a_good_canned_answer_is_read_as_the_real_server_s() -> None:
    """The canned server is good enough to trust its failures: it passes a good answer."""
    sent: list[bytes] = []

    def answer(line: bytes) -> bytes:
        sent.append(line)
        return _stats(GOOD)

    async with _canned(answer) as address:
        assert await measure_once(scaler(address, includeDelayed="true")) == 6
    assert sent == [b"stats-tube jobs\r\n"]
