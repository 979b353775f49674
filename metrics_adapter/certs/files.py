"""Files the adapter was given (a serving pair, CA bundles), re-read when they change.

A Secret mounted by kubelet, cert-manager's included, changes by an atomic symlink swap, so
the files are compared by content on a short period rather than watched by inotify.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 10.0


class WatchedFiles:
    """``on_change(contents)`` whenever any of ``paths`` reads differently than before. A
    callback that raises ValueError keeps the previous state and is retried on the next
    change; unreadable files are logged and skipped until they read again."""

    def __init__(
        self,
        paths: Sequence[Path],
        on_change: Callable[[list[bytes]], None],
        interval: float = RELOAD_INTERVAL,
    ) -> None:
        self.paths = list(paths)
        self.on_change = on_change
        self.interval = interval
        self._seen: list[bytes] | None = None

    def read(self) -> list[bytes]:
        """The files' contents now; OSError naming the file when one cannot be read."""
        contents = []
        for path in self.paths:
            try:
                contents.append(path.read_bytes())
            except OSError as exc:
                raise OSError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return contents

    def load(self) -> None:
        """Read and apply once, raising on failure: at startup a bad file is fatal."""
        contents = self.read()
        self.on_change(contents)
        self._seen = contents

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                contents = await asyncio.to_thread(self.read)
            except OSError as exc:
                log.warning("%s; keeping what was loaded", exc)
                continue
            if contents == self._seen:
                continue
            try:
                self.on_change(contents)
            except ValueError as exc:
                log.error("%s; keeping what was loaded", exc)
            else:
                log.info("reloaded %s", ", ".join(str(p) for p in self.paths))
            self._seen = contents
