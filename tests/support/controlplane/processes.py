"""The components as processes, with pid files so ``down`` can stop what ``up`` started.

Everything lives in the cluster's state directory: ``logs/<name>.log`` and ``pids/<name>.pid``
(the pid and the executable, so a recycled pid is never signalled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from tests.support.controlplane.errors import ControlPlaneError
from tests.support.process import ServerProcess, spawn

T = TypeVar("T")


def log_dir(state: Path) -> Path:
    return state / "logs"


def log_path(state: Path, name: str) -> Path:
    return log_dir(state) / f"{name}.log"


def pid_path(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


@dataclass
class Process(ServerProcess):
    """One component, started in ``workdir`` (the state directory of its cluster)."""

    stop_timeout = 15.0

    name: str
    argv: list[str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    enter: list[str] = field(default_factory=list)
    """A command that execs ``argv`` in other namespaces (``nsenter --net=…``): the pid file
    still names ``argv[0]``, which is what the process runs."""

    @property
    def log_path(self) -> Path:
        return log_path(self.workdir, self.name)

    @property
    def pid_file(self) -> Path:
        return pid_path(self.workdir, self.name)

    def start(self, *, detach: bool = False) -> Process:
        """Start the component; a detached one outlives this process (``make cluster-up``)."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn([*self.enter, *self.argv], self.log_path, detach=detach)
        self.pid_file.write_text(f"{self.process.pid}\n{self.argv[0]}\n")
        return self

    def check(self) -> None:
        """Raise with the end of the log if the component has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
            )

    def log(self) -> str:
        return _read(self.log_path)

    def tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; through the pid file when this object did not start it."""
        if self.process is not None:
            super().stop()
        else:
            stop_pid_file(self.pid_file, self.stop_timeout)
        self.pid_file.unlink(missing_ok=True)


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` of a log file, for error messages."""
    return "\n".join(_read(log).splitlines()[-lines:])


def logs(state: Path, lines: int = 30) -> str:
    """The end of every component's log under ``state``, for failure messages."""
    files = sorted(log_dir(state).glob("*.log"))
    return "\n".join(f"--- {log.stem}\n{tail(log, lines)}" for log in files)


def running_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and still runs the same executable."""
    try:
        pid_text, executable = pid_file.read_text().split("\n")[:2]
        pid = int(pid_text)
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError):
        return None
    return pid if argv0 == executable and state != "Z" else None


def stop_pid_file(pid_file: Path, timeout: float = 15) -> bool:
    """SIGTERM the process of ``pid_file``, then SIGKILL; False if it was not running."""
    pid = running_pid(pid_file)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if running_pid(pid_file) is None:
                return True
            time.sleep(0.05)
    return True


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None (or False); bounded."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = probe()
        except (httpx.HTTPError, ControlPlaneError, OSError) as exc:
            last, result = exc, None
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            detail = f": {last}" if last else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)
