"""Cancellation that libraries lose, raised again where a loop would otherwise carry on."""

from __future__ import annotations

import asyncio


def raise_a_swallowed_cancel(cause: Exception | None = None) -> None:
    """Raise CancelledError if this task was asked to stop and a library lost the request:
    nats-py's ``Client._flush_pending`` catches CancelledError and returns, and Python 3.11's
    ``asyncio.wait_for`` (inside nats-py, aiokafka, aioboto3) can drop a cancel that arrives
    as the awaited future completes, or turn it into the library's own error. Missed, it left
    a wake watcher running a new session after its close, and its TaskGroup (and whoever
    waited for it: the service's shutdown, a test) hung. Call it where a long-running loop
    waits, and where it takes a failure for something to retry."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
