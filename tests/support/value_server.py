"""A loopback source of metrics-api values fast enough for tens of thousands of triggers:
what the benchmarks and the e2e tests poll."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable

FAILURE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"


def response(value: float) -> bytes:
    """A 200 answer with ``{"value": value}``."""
    body = b'{"value": %s}' % format(value, "g").encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


RESPONSE = response(3)


class ValueServer:
    """A loopback HTTP/1.1 server with keep-alive answering every GET with ``{"value": 3}``
    (or, while ``failing``, with 503), on an event loop of its own thread: a few microseconds
    a request, never the bottleneck (a thread per connection is: hundreds of kept-alive
    connections queue on the GIL past a poll's timeout). ``delay``: seconds before each
    answer (a slow source); ``values``: the value of each path instead of 3; ``record``:
    count the requests of each path and keep when each came (:attr:`hits`, :attr:`times`)."""

    def __init__(
        self,
        delay: float = 0.0,
        values: Callable[[bytes], float] | None = None,
        *,
        record: bool = False,
    ) -> None:
        self.failing = False
        self.delay = delay
        self.values = values
        self.record = record
        self.requests = 0
        self.paths: set[bytes] = set()
        """Every path asked: a poll of each distinct query has reached the server."""
        self.hits: Counter[str] = Counter()
        """With ``record``: requests by path."""
        self.times: defaultdict[str, list[float]] = defaultdict(list)
        """With ``record``: when each path was asked (monotonic, as every process's)."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forget(self) -> None:
        """Count from now on."""
        self.hits.clear()
        self.times.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            serving = asyncio.all_tasks(self._loop)
            for task in serving:  # kept-alive connections of a client still running
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*serving, return_exceptions=True))
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):  # GETs have no body
                self.requests += 1
                path = head.split(b" ", 2)[1]
                self.paths.add(path)
                if self.record:
                    self.hits[path.decode()] += 1
                    self.times[path.decode()].append(time.monotonic())
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.failing:
                    writer.write(FAILURE)
                else:
                    writer.write(RESPONSE if self.values is None else response(self.values(path)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the server stops (then the task ends here, quietly)
        finally:
            writer.close()

    def __enter__(self) -> ValueServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
