"""Shared fixtures: a migrated SQLite store, PostgreSQL databases, and a real uvicorn
server on a free port.

``live_server`` runs on SQLite unless a test (or its module, or class) is marked
``@pytest.mark.databases("sqlite", "postgresql")``: it then runs once per database,
the PostgreSQL one a fresh database of the machine's server (``postgres_url``). A
test that reads the SQLite file itself (``LiveServer.database``) says so with
``@pytest.mark.databases("sqlite")``.
"""

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
from server.limits import Limits
from server.model import SchoolId, UserId
from server.store import SqliteStore, open_store, sqlite_path
from server.tokens import issue_token
from server.web import create_app
from tests.identity_provider import IdentityProvider, IdentityProviderUnavailable
from tests.postgres import PostgresUnavailable, TestDatabases
from tests.postgres_private import PrivatePostgres, PrivatePostgresUnavailable
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


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server for this test alone, which it may stop and start
    (tests/postgres_private.py); never the machine's server."""
    try:
        server = PrivatePostgres()
    except PrivatePostgresUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone
    with server:
        yield server


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """A private LemonLDAP::NG (tests/identity_provider.py) for the whole run, started by
    the first test that asks for it (about a second); its accounts are
    ``DEFAULT_ACCOUNTS``. A test declares Préau's URLs with ``configure()`` first."""
    try:
        provider = IdentityProvider()
    except IdentityProviderUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone
    try:
        try:
            provider.start()
        except IdentityProviderUnavailable as exc:
            raise pytest.fail.Exception(str(exc), pytrace=False) from None
        yield provider
    finally:
        provider.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its URL, its injected clock, its database, and a token maker."""

    url: str
    clock: ManualClock
    database_url: str

    @property
    def database(self) -> Path:
        """The SQLite file, for a test that reads or locks it itself."""
        path = sqlite_path(self.database_url)
        if path is None:
            raise AssertionError(
                "this test uses the SQLite file itself: mark it "
                '@pytest.mark.databases("sqlite")')
        return Path(path)

    def token(self, user: str, school: str = "hugo", ttl: timedelta = timedelta(hours=1)) -> str:
        return issue_token(SECRET, SchoolId(school), UserId(user), ttl=ttl, now=self.clock())

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def client(self, user: str | None = None, school: str = "hugo") -> httpx.Client:
        headers = {} if user is None else {"Authorization": f"Bearer {self.token(user, school)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def _import_schools(url: str) -> None:
    """Create (migrate) the store at ``url`` and import both test schools into it."""
    async def run() -> None:
        st = await open_store(url)
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


DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that uses ``database`` once per database its ``databases`` marker names
    (SQLite alone when unmarked: the test ids stay as they were)."""
    marker = metafunc.definition.get_closest_marker("databases")
    if marker is None or "database" not in metafunc.fixturenames:
        return
    unknown = set(marker.args) - set(DATABASES)
    if unknown or not marker.args:
        raise pytest.UsageError(f"@pytest.mark.databases takes some of {DATABASES}, "
                                f"not {marker.args!r}")
    metafunc.parametrize("database", marker.args, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: what ``live_server`` stores in (see the module doc)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def schools_url(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a new database of the kind ``database`` names, with both schools."""
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'live.db'}"
    else:
        try:
            url = str(request.getfixturevalue("postgres_url"))
        except PostgresUnavailable as exc:
            raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone
    _import_schools(url)
    return url


@pytest.fixture
def shared_database(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database of the kind ``database`` names, for several
    ``preau serve`` processes to share (tests/cluster.py): a SQLite file here, or a
    PostgreSQL database of the machine's server, dropped after the test."""
    if database == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    try:
        return str(request.getfixturevalue("postgres_url"))
    except PostgresUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone


@pytest.fixture
def live_server(schools_url: str, limits: Limits) -> Iterator[LiveServer]:
    """uvicorn serving the app over a real socket, with two schools imported (on SQLite,
    or on each database the test's ``databases`` marker names)."""
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=schools_url, jwt_secret=SECRET)
    with serve(config, clock, limits) as url:
        yield LiveServer(url, clock, schools_url)
