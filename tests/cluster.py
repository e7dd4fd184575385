"""Several real server processes sharing one private Redis and one database.

The database is a SQLite file in the test's folder, or a PostgreSQL database (the
``postgres_url`` fixture): a test marked ``@pytest.mark.databases("sqlite",
"postgresql")`` that builds its cluster on the ``shared_database`` fixture of
tests/conftest.py runs unchanged on both. Each node is ``python -m server serve`` on its own port,
exactly as an operator runs it, with ``PREAU_DATABASE_URL``; the directory is imported
with ``python -m server directory import`` as an operator does. The clock starts at a
school morning (``PREAU_CLOCK_START``) so that the tests pass at any hour. Nodes can be
killed with SIGKILL and started again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from server.model import SchoolId, UserId
from server.store import Store, open_store
from server.tokens import issue_token
from tests.conftest import SCHOOL_DAY, SECRET, free_port
from tests.redis_server import RedisServer
from tests.schools import other_school_doc, school_doc

ROOT = Path(__file__).resolve().parent.parent


class Cluster:
    def __init__(self, tmp: Path, redis: RedisServer, nodes: int = 2,
                 database_url: str | None = None) -> None:
        self.tmp = tmp
        self.redis = redis
        # Every node and every check of the store use this URL (a SQLite file by default).
        self.database_url = database_url or f"sqlite:///{tmp / 'cluster.db'}"
        self.ports = [free_port() for _ in range(nodes)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self._logs = [open(tmp / f"node{i}.log", "wb") for i in range(nodes)]  # noqa: SIM115
        self.extra_env: dict[str, str] = {}  # more PREAU_* variables for every node

    def prepare(self, *extra: dict[str, Any]) -> None:
        """Import the two test schools, and the ``extra`` directory documents."""
        self.import_directories(school_doc(), other_school_doc(), *extra)

    def import_directories(self, *docs: dict[str, Any]) -> None:
        """``preau directory import FILE`` for each document, as an operator runs it (the
        first one also creates the schema)."""
        for n, doc in enumerate(docs):
            path = self.tmp / f"directory-{n}.json"
            path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
            done = subprocess.run(
                [sys.executable, "-m", "server", "directory", "import", str(path)],
                env=self.env(0), cwd=self.tmp, capture_output=True, text=True, timeout=60,
                check=False)
            if done.returncode != 0:
                raise RuntimeError(f"`preau directory import` failed on {self.database_url}:"
                                   f"\n{done.stderr or done.stdout}")

    @asynccontextmanager
    async def store(self) -> AsyncIterator[Store]:
        """The nodes' database, opened from the test (to compare transcripts with it)."""
        st = await open_store(self.database_url)
        try:
            yield st
        finally:
            await st.close()

    def env(self, i: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
        env.update({
            "PREAU_DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "PREAU_JWT_SECRET": SECRET,
            "PREAU_CLOCK_START": SCHOOL_DAY.isoformat(),
            "PREAU_RATE_LIMIT": "1000",
            "PREAU_NODE_ID": f"node{i}",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        return env

    def start(self, i: int) -> None:
        self.processes[i] = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.ports[i])],
            env=self.env(i), cwd=self.tmp, stdout=self._logs[i], stderr=subprocess.STDOUT)
        self.wait_ready(i)

    def wait_ready(self, i: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[i]
            if process is None or process.poll() is not None:
                raise RuntimeError(f"node {i} exited:\n{self.log(i)}")
            try:
                if httpx.get(f"{self.http(i)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {i} not ready in {timeout} s:\n{self.log(i)}")

    def kill(self, i: int) -> None:
        process, self.processes[i] = self.processes[i], None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self, i: int) -> None:
        process, self.processes[i] = self.processes[i], None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        for i in range(len(self.processes)):
            self.kill(i)
        for log in self._logs:
            log.close()

    def log(self, i: int) -> str:
        self._logs[i].flush()
        return (self.tmp / f"node{i}.log").read_text(errors="replace")[-4000:]

    def http(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def ws(self, i: int) -> str:
        return f"ws://127.0.0.1:{self.ports[i]}/ws"

    def token(self, user: str, school: str = "hugo") -> str:
        return issue_token(SECRET, SchoolId(school), UserId(user), ttl=timedelta(days=1),
                           now=SCHOOL_DAY)
