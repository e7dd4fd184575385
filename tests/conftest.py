"""Shared fixtures: a migrated SQLite store, PostgreSQL databases, and a real uvicorn
server on a free port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.handshake import uvicorn_options
from server.model import SchoolId, UserId
from server.node import Limits
from server.store import SqliteStore
from server.tokens import issue_token
from server.web import create_app
from tests.postgres import TestDatabases
from tests.schools import other_school_doc, school_doc
from tests.wire import Wire

SECRET = "test-secret-" + "x" * 40
# A Tuesday in term, 10:00 in Paris: inside the default 07:00–20:00 window.
SCHOOL_DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def close_wires() -> AsyncIterator[None]:
    """Close every :class:`~tests.wire.Wire` a test opened (used by the WebSocket tests'
    ``pytestmark``)."""
    yield
    await Wire.close_all()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    st = SqliteStore(str(tmp_path / "preau.db"))
    await st.open()
    try:
        yield st
    finally:
        await st.close()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[TestDatabases]:
    """This run's PostgreSQL databases (the machine's server, started if stopped); every
    one is dropped when the run ends."""
    databases = TestDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases: TestDatabases) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    url = postgres_databases.create()
    try:
        yield url
    finally:
        postgres_databases.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the database several ``preau serve`` processes share, once per store: a
    SQLite file on this machine, then a new PostgreSQL database (dropped after the test).
    The cluster tests run unchanged on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its URL, its injected clock, and a token maker."""

    url: str
    clock: ManualClock
    database: Path

    def token(self, user: str, school: str = "hugo", ttl: timedelta = timedelta(hours=1)) -> str:
        return issue_token(SECRET, SchoolId(school), UserId(user), ttl=ttl, now=self.clock())

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def client(self, user: str | None = None, school: str = "hugo") -> httpx.Client:
        headers = {} if user is None else {"Authorization": f"Bearer {self.token(user, school)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def _import_schools(path: Path) -> None:
    async def run() -> None:
        st = SqliteStore(str(path))
        await st.open()
        try:
            for doc in (school_doc(), other_school_doc()):
                await st.import_directory(parse_directory(doc), actor="test", now=SCHOOL_DAY)
        finally:
            await st.close()

    asyncio.run(run())


@pytest.fixture
def limits() -> Limits:
    """The hub's limits for ``live_server``; a test module may override this fixture."""
    return Limits(tick_seconds=0.05, hello_timeout=1.0)


@contextmanager
def serve(config: Config, clock: ManualClock, limits: Limits,
          port: int | None = None) -> Iterator[str]:
    """uvicorn in a thread, as ``preau serve`` runs it; yields the base URL. Leaving
    the block stops it (its clients are told to reconnect); ``port`` restarts one."""
    port = port or free_port()
    app = create_app(config, clock=clock, limits=limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", **uvicorn_options(config)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path, limits: Limits) -> Iterator[LiveServer]:
    """uvicorn serving the app over a real socket, with two schools imported."""
    db = tmp_path / "live.db"
    _import_schools(db)
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=f"sqlite:///{db}", jwt_secret=SECRET)
    with serve(config, clock, limits) as url:
        yield LiveServer(url, clock, db)
