"""Wake hints for ``external-push``: the scaler's ``StreamIsActive``, held open per trigger.

One channel per scaler endpoint (address + TLS identity), of the watcher's own (a held
stream must not share the fate of the polls' channel); on it one ``StreamIsActive`` call per
watched ScaledObjectRef. Each ``true`` received is a hint for its ref; a ``false`` is none
(only a poll deactivates). A stream that fails or ends, as when the scaler restarts, ends
the session: :class:`~scalers.wake.Watcher` connects again after its jittered backoff, and
every stream is opened again, with a hint for each (what was said meanwhile is lost). KEDA
retries each stream alone, from 2 s doubling to a minute; ours share one backoff.

A scaler that does not implement ``StreamIsActive`` (``UNIMPLEMENTED``) cannot give hints:
the watcher says so and checks again every ``recheck`` seconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import grpc
import grpc.aio

from scalers.external_client import Endpoint, Ref, call_error, method, open_channel
from scalers.protos import externalscaler_pb2 as pb
from scalers.wake import HintCallback, WakeUnavailable, Watcher, WatchOptions, finish


@dataclass(frozen=True, slots=True)
class ExternalWatch:
    """One scaler endpoint: every external-push trigger on it shares one watcher."""

    endpoint: Endpoint
    source_type: ClassVar[str] = "external-push"

    def open(self, on_hint: HintCallback, options: WatchOptions) -> Watcher:
        return ExternalWatcher(self, on_hint, options)

    def describe(self) -> str:
        return str(self.endpoint)


class ExternalWatcher(Watcher):
    key: ExternalWatch

    async def session(self) -> None:
        channel = open_channel(self.key.endpoint)
        streams: dict[Ref, asyncio.Task[None]] = {}
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            try:
                async with asyncio.timeout(self.options.timeout):
                    await channel.channel_ready()
            except TimeoutError:
                raise ConnectionError(f"not connected within {self.options.timeout:g}s") from None
            while True:
                wanted = {t for t in self.topics if isinstance(t, Ref)}
                for gone in set(streams) - wanted:
                    streams.pop(gone).cancel()
                fresh = wanted - set(streams)
                for ref in fresh:
                    streams[ref] = task = asyncio.create_task(self._stream(channel, ref))
                    task.add_done_callback(lambda t: _ended(t, lost))
                self.caught_up(fresh)
                await self.changed_or(lost)
        finally:
            await finish(_close(channel, streams, lost), self.options.timeout)

    async def _stream(self, channel: grpc.aio.Channel, ref: Ref) -> None:
        """Hint ``ref`` at each ``true``; raise when the stream fails, or ends."""
        what = f"StreamIsActive for {ref} at {self.key.endpoint}"
        stub = channel.unary_stream(
            method("StreamIsActive"),
            request_serializer=pb.ScaledObjectRef.SerializeToString,
            response_deserializer=pb.IsActiveResponse.FromString,
        )
        try:
            async for response in stub(ref.message()):
                if response.result:
                    self.hint(ref)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise WakeUnavailable(
                    f"the scaler does not implement StreamIsActive: {exc.details()}"
                ) from None
            raise ConnectionError(str(call_error(exc, what, self.options.timeout))) from None
        raise ConnectionError(f"{what}: the scaler ended the stream")


def _ended(task: asyncio.Task[None], lost: asyncio.Future[None]) -> None:
    """A stream we did not cancel ended: the session is over (with its error)."""
    if task.cancelled() or lost.done():
        if not task.cancelled():
            task.exception()  # retrieved: the session ends for the first one
        return
    lost.set_exception(task.exception() or ConnectionError("the stream ended"))


async def _close(
    channel: grpc.aio.Channel, streams: dict[Ref, asyncio.Task[None]], lost: asyncio.Future[None]
) -> None:
    for task in streams.values():
        task.cancel()
    if streams:
        await asyncio.wait(streams.values())
    if not lost.done():
        lost.cancel()
    elif not lost.cancelled():
        lost.exception()  # retrieved, whether or not the session raised it
    await channel.close()
