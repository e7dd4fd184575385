"""A private ``redis-server`` for tests: its own port, its own directory, no persistence.

:class:`RedisServer` starts ``redis-server`` on a free 127.0.0.1 port, waits until
it answers ``PING``, and can :meth:`~RedisServer.stop` and
:meth:`~RedisServer.restart` it on the same port, so tests can cause an outage
and watch clients recover. :meth:`~RedisServer.close` kills it and removes its
directory. It never touches a Redis the machine already runs (port 6379).

A missing ``redis-server`` binary raises :class:`RedisServerNotInstalled` with the
command that installs it: the Redis tests fail loudly rather than skip.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["INSTALL_HINT", "RedisServer", "RedisServerNotInstalled"]

INSTALL_HINT = (
    "redis-server is not installed: install it with `apt-get install redis-server` "
    "(Debian/Ubuntu) or `brew install redis` (macOS)"
)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5


class RedisServerNotInstalled(RuntimeError):
    """``redis-server`` is not on ``PATH``; the message says how to install it."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One private ``redis-server`` process; use as a context manager or call close().

    ``url`` stays the same across :meth:`stop` and :meth:`restart`.
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerNotInstalled(INSTALL_HINT)
        self._binary = binary
        self._dir = Path(tempfile.mkdtemp(prefix="preau-redis-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on a free port (first time) or on the same port (after stop())."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        if self.port:
            self._spawn(self.port)
            return
        # Another process may take the port between choosing and binding it: try a few.
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._spawn(_free_port())
                return
            except RuntimeError:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        """SIGTERM and wait for exit (SIGKILL if it hangs). The port is kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop if running, then start again on the same port (an empty dataset)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Kill the server if it still runs and delete its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, port: int) -> None:
        log = self._dir / "redis.log"
        process = subprocess.Popen(
            [
                self._binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._dir),
                "--logfile", str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=_STOP_TIMEOUT)
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {port}:\n{tail}")
            time.sleep(0.01)
        self._process = process
        self.port = port
