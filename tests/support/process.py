"""The lifecycle every test server shares: start, freeze, thaw, stop for sure, clean up, logs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

# util-linux's setpriv sets the parent-death signal and then execs the command, so nothing but
# exec runs between fork and exec (preexec_fn is unsafe with threads).
_SETPRIV = shutil.which("setpriv")


def spawn(argv: Sequence[str], log: Path, *, detach: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``.

    Attached (the default), the process gets SIGTERM when the test process dies, even when it
    is killed before its fixtures could stop anything. Detached, it runs in a session of its
    own and survives the terminal that started it.
    """
    command = list(argv)
    if not detach and _SETPRIV:
        command = [_SETPRIV, "--pdeathsig", "TERM", "--", *command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )


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
        # Delivery is asynchronous: on a busy machine every thread may take a moment to stop,
        # and a request sent meanwhile would still be answered.
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + 5
        while not all(_state(task / "stat") == "T" for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {self.process.pid} did not stop within 5 s")
            time.sleep(0.01)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown of any kind."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

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


def _state(stat: Path) -> str:
    """A thread's state letter from /proc (``T``: stopped); ``T`` for one that has exited."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "T"
