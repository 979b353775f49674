"""The lifecycle every test server shares: freeze, thaw, stop for sure, clean up, read logs."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import ClassVar


class ServerProcess:
    """Mixed into each server's dataclass, which holds ``process`` and ``workdir``."""

    process: subprocess.Popen[bytes] | None
    workdir: Path
    log_files: ClassVar[tuple[str, ...]] = ()
    """Files in ``workdir`` that :meth:`log` returns, in order."""
    stop_timeout: ClassVar[float] = 10.0

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): the kernel still accepts connections, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        paths = (self.workdir / name for name in self.log_files)
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())
