"""A real external scaler for the tests: KEDA's ``externalscaler.ExternalScaler`` served by a
``grpc.aio`` server on 127.0.0.1, in the test's own event loop.

It answers from :attr:`ExternalScalerServer.answer`, which the test sets, counts every call
it receives (by method, and the refs and metric names asked), and holds the
``StreamIsActive`` streams open until the test :meth:`~ExternalScalerServer.push` es a value
or stops the server. Plain, TLS or mTLS (certificates from :mod:`tests.support.pki`); it can
stop and start again on the same port, as a restarted scaler does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import grpc.aio

from scalers.external_client import SERVICE
from scalers.protos import externalscaler_pb2 as pb
from tests.support.pki import Pki

T = TypeVar("T")


@dataclass
class Answer:
    """What every call answers now; the test changes it between polls."""

    metric_name: str = "queue"
    target_size: int = 5
    target_size_float: float = 0.0
    specs: int = 1
    """How many MetricSpecs GetMetricSpec returns (each named ``<metric_name>-<i>`` after
    the first)."""
    values: list[tuple[int, float]] = field(default_factory=lambda: [(0, 0.0)])
    """GetMetrics' MetricValues as ``(metricValue, metricValueFloat)``; empty: none."""
    active: bool = False
    error: tuple[grpc.StatusCode, str] | None = None
    """Every unary call fails with this status."""
    delay: float = 0.0
    """Seconds every unary call waits before answering."""


@dataclass
class ExternalScalerServer:
    pki: Pki | None = None
    """TLS with the PKI's server certificate when set."""
    mutual: bool = False
    """With :attr:`pki`: a client certificate the PKI's CA signed is required."""
    streaming: bool = True
    """Whether StreamIsActive is served (else: UNIMPLEMENTED, as a plain external scaler)."""
    answer: Answer = field(default_factory=Answer)
    calls: Counter[str] = field(default_factory=Counter)
    refs: list[pb.ScaledObjectRef] = field(default_factory=list)
    """Every ScaledObjectRef received, in order (GetMetrics' included)."""
    metric_names: list[str] = field(default_factory=list)
    """The metricName of every GetMetrics received."""
    peers: set[str] = field(default_factory=set)
    """The client connections (``ipv4:127.0.0.1:<port>``) calls came on."""
    port: int = 0
    _server: grpc.aio.Server | None = None
    _streams: set[asyncio.Queue[bool]] = field(default_factory=set)
    _stream_opened: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def start(self) -> ExternalScalerServer:
        """Serve (again, on the same port once it has one)."""
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((self._handler(),))
        where = f"127.0.0.1:{self.port}"
        if self.pki is None:
            self.port = server.add_insecure_port(where)
        else:
            pair = (self.pki.server_key.read_bytes(), self.pki.server_cert.read_bytes())
            credentials = grpc.ssl_server_credentials(
                [pair],
                root_certificates=self.pki.ca.read_bytes() if self.mutual else None,
                require_client_auth=self.mutual,
            )
            self.port = server.add_secure_port(where, credentials)
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        """Stop at once: calls and streams in flight end with an error at the client."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=None)

    async def push(self, active: bool) -> None:
        """Send ``active`` on every open StreamIsActive stream."""
        for queue in list(self._streams):
            await queue.put(active)

    async def streams_opened(self, count: int, within: float) -> None:
        """Wait until ``count`` streams are open at once."""
        async with asyncio.timeout(within):
            while self.open_streams < count:
                self._stream_opened.clear()
                await self._stream_opened.wait()

    # The service.

    def _handler(self) -> grpc.GenericRpcHandler:
        ref = pb.ScaledObjectRef
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "IsActive": grpc.unary_unary_rpc_method_handler(
                self._is_active, ref.FromString, pb.IsActiveResponse.SerializeToString
            ),
            "GetMetricSpec": grpc.unary_unary_rpc_method_handler(
                self._get_metric_spec, ref.FromString, pb.GetMetricSpecResponse.SerializeToString
            ),
            "GetMetrics": grpc.unary_unary_rpc_method_handler(
                self._get_metrics,
                pb.GetMetricsRequest.FromString,
                pb.GetMetricsResponse.SerializeToString,
            ),
        }
        if self.streaming:
            handlers["StreamIsActive"] = grpc.unary_stream_rpc_method_handler(
                self._stream_is_active, ref.FromString, pb.IsActiveResponse.SerializeToString
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    async def _unary(self, name: str, ref: pb.ScaledObjectRef, context: Any) -> None:
        """Count the call, then wait and fail as :attr:`answer` says."""
        self.calls[name] += 1
        self.refs.append(ref)
        self.peers.add(context.peer())
        if self.answer.delay:
            await asyncio.sleep(self.answer.delay)
        if self.answer.error is not None:
            await context.abort(*self.answer.error)

    async def _is_active(self, request: pb.ScaledObjectRef, context: Any) -> pb.IsActiveResponse:
        await self._unary("IsActive", request, context)
        return pb.IsActiveResponse(result=self.answer.active)

    async def _get_metric_spec(
        self, request: pb.ScaledObjectRef, context: Any
    ) -> pb.GetMetricSpecResponse:
        await self._unary("GetMetricSpec", request, context)
        a = self.answer
        specs = [
            pb.MetricSpec(
                metricName=a.metric_name if i == 0 else f"{a.metric_name}-{i}",
                targetSize=a.target_size,
                targetSizeFloat=a.target_size_float,
            )
            for i in range(a.specs)
        ]
        return pb.GetMetricSpecResponse(metricSpecs=specs)

    async def _get_metrics(
        self, request: pb.GetMetricsRequest, context: Any
    ) -> pb.GetMetricsResponse:
        await self._unary("GetMetrics", request.scaledObjectRef, context)
        self.metric_names.append(request.metricName)
        values = [
            pb.MetricValue(metricName=request.metricName, metricValue=i, metricValueFloat=f)
            for i, f in self.answer.values
        ]
        return pb.GetMetricsResponse(metricValues=values)

    async def _stream_is_active(
        self, request: pb.ScaledObjectRef, context: Any
    ) -> AsyncIterator[pb.IsActiveResponse]:
        self.calls["StreamIsActive"] += 1
        self.refs.append(request)
        queue: asyncio.Queue[bool] = asyncio.Queue()
        self._streams.add(queue)
        self._stream_opened.set()
        try:
            while True:
                yield pb.IsActiveResponse(result=await queue.get())
        finally:
            self._streams.discard(queue)


@contextlib.asynccontextmanager
async def serving(
    pki: Pki | None = None, *, mutual: bool = False
) -> AsyncIterator[ExternalScalerServer]:
    """A started server, stopped for sure when the block ends."""
    server = await ExternalScalerServer(pki, mutual).start()
    try:
        yield server
    finally:
        await server.stop()


class InThread:
    """A server in a thread and event loop of its own, for synchronous tests (e2e): its
    coroutines are run there with :meth:`run`; :attr:`server`'s fields are plain data."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self.run(_new())

    def run(self, coroutine: Coroutine[Any, Any, T], within: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(within)

    def close(self) -> None:
        try:
            self.run(self.server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


async def _new() -> ExternalScalerServer:
    return await ExternalScalerServer().start()


@contextlib.contextmanager
def in_thread() -> Iterator[InThread]:
    """A started :class:`InThread` server, stopped for sure when the block ends."""
    running = InThread()
    try:
        yield running
    finally:
        running.close()
