"""A real MariaDB server on a free loopback port, in a temp dir of its own.

Debian's ``mariadb-server`` package provides ``mariadb-install-db`` and ``mariadbd``; no
system instance or configuration file is used (``--no-defaults``). As root, ``mariadbd``
needs ``--user=root`` to stay root (it would switch to ``mysql``, which cannot write our
temp dir). It listens on 127.0.0.1 and on a socket in the temp dir; ``root`` connects over
the socket without a password, which the tests' :meth:`MariaDbServer.sql` uses.

Every statement is written to the general log, so that a test counts the requests the
server itself received (:meth:`MariaDbServer.executed`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]

from tests.support.pki import Pki
from tests.support.process import ServerProcess
from tests.support.servers import free_port

_QUERY = re.compile(r"^[^\t]*\t\s*\d+ Query\t(.*)$", re.MULTILINE)
"""A statement in the general log: ``<time>\t    <id> Query\t<statement>``."""
NEEDS = "MariaDB server binaries (Debian package mariadb-server)"


def binaries() -> tuple[Path, Path] | None:
    """``(mariadb-install-db, mariadbd)``, if the machine has both."""
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    return (Path(install), Path(server)) if install and server else None


@dataclass
class MariaDbServer(ServerProcess):
    log_files = ("error.log",)

    install: Path
    server: Path
    pki: Pki | None = None
    """With one, the server also accepts TLS, presenting its server certificate."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mariadb-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "mysqld.sock"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dsn(self, user: str, password: str, db: str = "") -> str:
        """The Go driver's DSN, as a KEDA user writes ``connectionString``."""
        return f"{user}:{password}@tcp(127.0.0.1:{self.port})/{db}"

    def _user_option(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def init(self) -> MariaDbServer:
        argv = [str(self.install), "--no-defaults", f"--datadir={self.workdir / 'data'}"]
        argv += ["--auth-root-authentication-method=normal", "--skip-test-db"]
        argv += [*self._user_option(), "--skip-name-resolve"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed: {done.stdout[-1000:]}{done.stderr[-2000:]}"
            )
        return self

    def start(self, timeout: float = 60.0) -> MariaDbServer:
        if not (self.workdir / "data").exists():
            self.init()
        for _ in range(3):  # a free port may be taken before mariadbd binds it
            self.port = self.port or free_port()
            argv = [str(self.server), "--no-defaults", f"--datadir={self.workdir / 'data'}"]
            argv += [f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1"]
            argv += [f"--pid-file={self.workdir / 'mariadbd.pid'}", "--skip-name-resolve"]
            argv += [f"--log-error={self.workdir / 'error.log'}", "--general-log=1"]
            argv += [f"--general-log-file={self.workdir / 'general.log'}", "--skip-log-bin"]
            argv += ["--innodb-buffer-pool-size=16M", "--max-connections=60"]
            argv += [*self._user_option()]
            if self.pki is not None:
                argv += [f"--ssl-cert={self.pki.server_cert}", f"--ssl-key={self.pki.server_key}"]
                argv += [f"--ssl-ca={self.pki.ca}"]
            setpriv = shutil.which("setpriv")
            command = [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"mariadbd not ready in {timeout}s: {self.log()[-2000:]}")
            if "Address already in use" not in self.log():
                break
            self.port = 0
        raise RuntimeError(f"mariadbd exited: {self.log()[-2000:]}")

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.sql("SELECT 1") == [(1,)]
        except pymysql.MySQLError:
            return False

    def connect(self, **overrides: Any) -> pymysql.connections.Connection[Any]:
        """A synchronous admin connection: root over the socket."""
        options: dict[str, Any] = {"unix_socket": str(self.socket), "user": "root"}
        options |= {"connect_timeout": 5, "read_timeout": 10, "autocommit": True}
        return pymysql.connect(**(options | overrides))

    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run ``statements`` as root; the rows of the last."""
        with self.connect() as conn, conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            return list(cursor.fetchall())

    def executed(self, sql: str) -> int:
        """How many times the server was asked ``sql``, from its general log."""
        path = self.workdir / "general.log"
        if not path.exists():
            return 0
        lines = _QUERY.finditer(path.read_text(errors="replace"))
        return sum(1 for line in lines if line.group(1) == sql)
