"""A private PostgreSQL server for tests that stop and restart it: its own directory,
its own free 127.0.0.1 port, never the machine's server.

:class:`PrivatePostgres` runs ``initdb`` into a temporary directory and ``pg_ctl``
to start it; :meth:`~PrivatePostgres.stop` and :meth:`~PrivatePostgres.start` take
it down and up again on the same port with the same data, so a test can watch a
store lose its database mid-run and recover. :meth:`~PrivatePostgres.close` stops it
and removes its directory. As root, every command runs as the ``postgres`` user
(PostgreSQL refuses to run as root), in a directory that user owns.

Missing PostgreSQL binaries raise :class:`PrivatePostgresUnavailable` with the
command that installs them: the tests fail, they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PrivatePostgres", "PrivatePostgresUnavailable"]

INSTALL_HINT = ("the restart tests need PostgreSQL's server binaries (initdb, pg_ctl) under "
                "/usr/lib/postgresql/<version>/bin: install them with "
                "`apt-get install postgresql`")
_TIMEOUT = 60  # seconds for initdb, a start or a stop; reached only when it fails


class PrivatePostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or they could not make a server; says why."""


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if not found:
        raise PrivatePostgresUnavailable(INSTALL_HINT)
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One private PostgreSQL server (trust authentication, user ``postgres``); use as a
    context manager or call :meth:`close`. ``url`` stays the same across stop/start."""

    def __init__(self) -> None:
        self._bin = _bin_dir()
        self._as_postgres = os.geteuid() == 0
        self._dir = Path(tempfile.mkdtemp(prefix="preau-pg-"))
        self._data = self._dir / "data"
        self._log = self._dir / "server.log"
        self.port = _free_port()
        if self._as_postgres:
            shutil.chown(self._dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale", "C")

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start (again) on the same port, and wait until it accepts connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._dir} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=30")
        self._run("pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options,
                  "-w", "-t", str(_TIMEOUT), "start")

    def stop(self) -> None:
        """Stop at once (``-m fast``: every session is ended, as in a restart)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", str(_TIMEOUT),
                  "stop")

    @property
    def running(self) -> bool:
        return (self._data / "postmaster.pid").exists()

    def close(self) -> None:
        """Stop it if it runs and delete its directory."""
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False, cwd=self._dir)
        if done.returncode != 0:
            tail = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
            raise PrivatePostgresUnavailable(
                f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}\n{tail}")


if __name__ == "__main__":  # a manual check: start, stop, start, close
    started = time.monotonic()
    with PrivatePostgres() as pg:
        pg.stop()
        pg.start()
        print(pg.url, f"{time.monotonic() - started:.1f} s")
