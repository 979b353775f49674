"""A real beanstalkd on a free loopback port, and a small blocking client to fill its tubes.

Debian's package (``/usr/bin/beanstalkd``) starts in milliseconds and keeps everything in
memory (no binlog unless ``-b``), so a module shares one server and each test its own tubes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import ServerProcess, spawn
from tests.support.servers import free_port

DEBIAN_BINARY = Path("/usr/bin/beanstalkd")
NEEDS = "beanstalkd (Debian package beanstalkd)"


def binary() -> Path | None:
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    found = shutil.which("beanstalkd")
    return Path(found) if found else None


@dataclass
class BeanstalkdProcess(ServerProcess):
    log_files = ("beanstalkd.log",)

    binary: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beanstalkd-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> BeanstalkdProcess:
        for _ in range(3):  # a free port may be taken before beanstalkd binds it
            self.port = self.port or free_port()
            argv = [str(self.binary), "-l", "127.0.0.1", "-p", str(self.port)]
            self.process = spawn(argv, self.workdir / "beanstalkd.log")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with self.client() as client:
                        client.stats()
                    return self
                except OSError:
                    time.sleep(0.02)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"beanstalkd not ready in {timeout}s: {self.log()[-2000:]}")
            if "Address already in use" not in self.log():
                break
            self.port = 0
        raise RuntimeError(f"beanstalkd exited: {self.log()[-2000:]}")

    def restart(self) -> BeanstalkdProcess:
        """Stop and start again on the same port (every job is gone)."""
        self.stop()
        return self.start()

    def client(self) -> BeanstalkClient:
        return BeanstalkClient(self.port)

    def commands(self, name: str) -> int:
        """How many ``name`` commands the server has run (``stats`` → ``cmd-<name>``)."""
        with self.client() as client:
            return int(client.stats()[f"cmd-{name}"])

    def connections(self) -> int:
        """Connections open now, this one's own excluded."""
        with self.client() as client:
            return int(client.stats()["current-connections"]) - 1


class BeanstalkClient:
    """One blocking connection. A job it reserves stays reserved while it is open."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._buffer = b""

    def __enter__(self) -> BeanstalkClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def put(self, tube: str, count: int = 1, *, delay: int = 0) -> list[int]:
        """``count`` jobs into ``tube``; ``delay`` seconds before they are ready."""
        self._command(f"use {tube}", "USING")
        ids = []
        for i in range(count):
            body = f"job {i}".encode()
            self._sock.sendall(f"put 0 {delay} 600 {len(body)}\r\n".encode() + body + b"\r\n")
            ids.append(int(self._expect("INSERTED")))
        return ids

    def reserve(self, tube: str, count: int = 1) -> list[int]:
        """Reserve ``count`` ready jobs of ``tube`` (each must be there now)."""
        self._command(f"watch {tube}", "WATCHING")
        ids = []
        for _ in range(count):
            self._sock.sendall(b"reserve-with-timeout 0\r\n")
            job_id, size = self._expect("RESERVED").split()
            self._read(int(size) + 2)
            ids.append(int(job_id))
        return ids

    def bury(self, tube: str, count: int = 1) -> None:
        """Reserve ``count`` ready jobs of ``tube`` and bury them."""
        for job_id in self.reserve(tube, count):
            self._command(f"bury {job_id} 0", "BURIED")

    def stats(self) -> dict[str, str]:
        self._sock.sendall(b"stats\r\n")
        size = int(self._expect("OK"))
        body = self._read(size + 2)[:-2].decode()
        return dict(line.split(": ", 1) for line in body.splitlines()[1:] if line)

    def send_raw(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _command(self, line: str, status: str) -> str:
        self._sock.sendall(line.encode() + b"\r\n")
        return self._expect(status)

    def _expect(self, status: str) -> str:
        line = self._line()
        word, _, rest = line.partition(" ")
        if word != status:
            raise AssertionError(f"beanstalkd answered {line!r}, expected {status}")
        return rest

    def _line(self) -> str:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode()

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("beanstalkd closed the connection")
        self._buffer += chunk
