"""The machine's PostgreSQL for the tests: started if it is stopped, one database per use.

Every test run gets its own prefix (``preau_test_<pid>_<hex>``); each database a test
asks for is named under it, and the run drops every database of its prefix when it
ends, including those a failed test left behind. The server is the one at
``PREAU_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
trust authentication). When it does not answer, the tests try to start the
Debian cluster (as root, with ``pg_ctlcluster``); when that is not possible they
fail with the command to run. They never skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

__all__ = ["PostgresUnavailable", "TestDatabases", "admin_execute", "admin_url", "ensure_running"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not answering and could not be started."""


def admin_url() -> str:
    return os.environ.get("PREAU_TEST_POSTGRES") or DEFAULT_ADMIN_URL


def _answers(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def _start_debian_cluster() -> str | None:
    """Try to start the machine's cluster; ``None`` on success, else why not."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return "PostgreSQL is not installed (apt-get install postgresql)"
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        return "no PostgreSQL cluster is configured under /etc/postgresql"
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}"
    return None


def ensure_running() -> None:
    """Make sure the test PostgreSQL answers, starting the Debian cluster if needed."""
    url = admin_url()
    if _answers(url):
        return
    why = _start_debian_cluster() if url == DEFAULT_ADMIN_URL else "it is not the default"
    deadline = time.monotonic() + 30
    while why is None and time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.2)
    raise PostgresUnavailable(
        f"the tests need PostgreSQL at {url} (trust authentication) and it does not answer"
        f" ({why or 'it did not come up within 30 s'}). Start it with `{START_HINT}` "
        "as root, or point PREAU_TEST_POSTGRES at another server.")


def admin_execute(sql: str) -> None:
    """Run one statement on the admin database, from any thread or event loop."""
    error: list[BaseException] = []

    def run() -> None:
        import asyncio

        async def go() -> None:
            conn = await asyncpg.connect(admin_url(), timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        try:
            asyncio.run(go())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if error:
        raise error[0]


class TestDatabases:
    """The databases of one test run: :meth:`create` makes a new empty one and returns
    its URL; :meth:`drop_all` removes every one of them."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        ensure_running()
        self.prefix = f"preau_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._numbers = count(1)
        self._names: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}_{next(self._numbers)}"
        admin_execute(f'CREATE DATABASE "{name}"')
        self._names.append(name)
        parts = urlsplit(admin_url())
        return urlunsplit(parts._replace(path=f"/{name}"))

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        if name in self._names:
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._names.remove(name)

    def drop_all(self) -> None:
        for name in list(self._names):
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._names.remove(name)
