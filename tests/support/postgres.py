"""A real PostgreSQL server on a free loopback port, in a temp dir of its own.

Debian's ``postgresql`` package has the binaries in ``/usr/lib/postgresql/<major>/bin``;
no cluster of the package is used. ``initdb`` and ``postgres`` refuse to run as root, and
tests run as root in CI: then both run as ``nobody`` (present on every Debian machine) through
util-linux's ``setpriv``, in a directory under ``/tmp`` that ``nobody`` owns (pytest's own
temp dirs are private to root). The server listens on 127.0.0.1 and on a unix socket in that
directory; host connections need a password (``scram-sha-256``), the socket trusts the
superuser, which the tests' :meth:`PostgresServer.sql` uses through ``psql``.

Every statement is logged with its ``application_name`` (``log_statement=all``), so that a
test counts the requests the server itself received (:meth:`PostgresServer.executed`).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.pki import Pki
from tests.support.process import ServerProcess
from tests.support.servers import free_port

NEEDS = "PostgreSQL server binaries (Debian package postgresql)"
SUPERUSER = "postgres"
PASSWORD = "pg-s3cret"
_RUN_AS = "nobody"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``postgres``."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p / "bin" for p in root.glob("*") if (p / "bin" / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` as the user PostgreSQL accepts: ourselves, or ``nobody`` when we are root.
    The server gets SIGINT (a fast shutdown) if the test process dies."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux setpriv is needed to run PostgreSQL"
    change: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam(_RUN_AS)
        change = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return [setpriv, *change, "--pdeathsig", "INT", "--", *argv]


@dataclass
class PostgresServer(ServerProcess):
    log_files = ("postgres.log",)

    bin: Path
    pki: Pki | None = None
    """With one, the server also accepts TLS, presenting its server certificate."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="postgres-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "sock"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, user: str = SUPERUSER, password: str = PASSWORD, db: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def init(self) -> PostgresServer:
        """``initdb`` with the superuser's password: once per server (a few seconds)."""
        self.socket_dir.mkdir()
        (self.workdir / "pwfile").write_text(PASSWORD + "\n")
        owned = [self.workdir, self.socket_dir, self.workdir / "pwfile"]
        if self.pki is not None:  # the key must be the server user's, and private
            for name, source in (
                ("server.crt", self.pki.server_cert),
                ("server.key", self.pki.server_key),
            ):
                shutil.copyfile(source, self.workdir / name)
                (self.workdir / name).chmod(0o600)
                owned.append(self.workdir / name)
        if os.geteuid() == 0:
            user = pwd.getpwnam(_RUN_AS)
            for path in owned:
                os.chown(path, user.pw_uid, user.pw_gid)
        argv = [str(self.bin / "initdb"), "-D", str(self.workdir / "data"), "-U", SUPERUSER]
        argv += ["--pwfile", str(self.workdir / "pwfile"), "-E", "UTF8", "--no-sync"]
        argv += ["--auth-host=scram-sha-256", "--auth-local=trust", "--no-instructions"]
        done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout[-1000:]}{done.stderr[-2000:]}")
        return self

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if not (self.workdir / "data").exists():
            self.init()
        for _ in range(3):  # a free port may be taken before postgres binds it
            self.port = self.port or free_port()
            argv = [str(self.bin / "postgres"), "-D", str(self.workdir / "data")]
            argv += ["-p", str(self.port), "-k", str(self.socket_dir)]
            for setting in (
                "listen_addresses=127.0.0.1",
                "fsync=off",
                "log_statement=all",
                "log_line_prefix=%a|",
                "logging_collector=off",
                "max_connections=50",
            ):
                argv += ["-c", setting]
            if self.pki is not None:
                argv += ["-c", "ssl=on", "-c", f"ssl_cert_file={self.workdir / 'server.crt'}"]
                argv += ["-c", f"ssl_key_file={self.workdir / 'server.key'}"]
            log = (self.workdir / "postgres.log").open("ab")
            with log:
                self.process = subprocess.Popen(
                    _as_server_user(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"postgres not ready in {timeout}s: {self.log()[-2000:]}")
            if "could not bind" not in self.log():
                break
            self.port = 0
        raise RuntimeError(f"postgres exited: {self.log()[-2000:]}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): SIGTERM's smart one waits for every client to leave."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _ready(self) -> bool:
        try:
            return self.sql("SELECT 1", timeout=2) == "1"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def sql(self, statement: str, db: str = "postgres", timeout: float = 10) -> str:
        """Run ``statement`` as the superuser over the socket; its output, unaligned."""
        argv = [str(self.bin / "psql"), "-h", str(self.socket_dir), "-p", str(self.port)]
        argv += ["-U", SUPERUSER, "-d", db, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        done = subprocess.run(
            [*argv, "-c", statement],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PGAPPNAME": "tests"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def version(self) -> str:
        """The server's version (``15.14``), from the binary: no running server needed."""
        argv = [str(self.bin / "postgres"), "--version"]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        return done.stdout.split()[2]  # postgres (PostgreSQL) 15.18 (Debian ...)

    def executed(self, sql: str, application: str = "metrics-adapter") -> int:
        """How many times the server ran ``sql`` for clients named ``application``, from its
        statement log (``execute`` lines of the extended protocol, ``statement`` lines of the
        simple one)."""
        pattern = re.compile(
            rf"^{re.escape(application)}\|LOG:\s+(?:execute [^:]*|statement): {re.escape(sql)}$",
            re.MULTILINE,
        )
        return len(pattern.findall(self.log()))
