"""Fixtures for the contract suites: brokers of each kind (with a private Redis), and
stores of each kind (SQLite and PostgreSQL), below.

``make_node`` is parametrised over ``memory`` and ``redis``: every test that uses
it runs once per implementation. The Redis variant starts a private
``redis-server`` (function-scoped, so a test may stop and restart it); a
machine without ``redis-server`` fails with how to install it, never skips.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.broker import Broker, MemoryBroker, RedisBroker
from server.directory import parse_directory
from server.store import Store, open_store
from tests.conftest import SCHOOL_DAY
from tests.postgres import PostgresUnavailable
from tests.redis_server import RedisServer, RedisServerNotInstalled
from tests.schools import other_school_doc, school_doc

__all__ = ["STORE_KINDS", "MakeNode", "Node", "OpenStore", "RecordingHandler", "eventually"]

WAIT = 10.0  # upper bound for anything a test waits for; reached only when it fails


class RecordingHandler:
    """A BrokerEventHandler that records everything, and lets a test wait for it."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, bytes]] = []
        self.resubscribed = 0
        self._changed = asyncio.Event()

    def handle_publication(self, channel: str, data: bytes) -> None:
        self.publications.append((channel, data))
        self._changed.set()

    def handle_resubscribed(self) -> None:
        self.resubscribed += 1
        self._changed.set()

    def on(self, channel: str) -> list[bytes]:
        """What arrived on ``channel``, in order."""
        return [data for name, data in self.publications if name == channel]

    async def wait_for(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        """Return once ``predicate()`` holds; fail the test after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"not delivered within {within} s; got {self.publications[-5:]!r}")


async def eventually(
    predicate: Callable[[], bool], within: float = WAIT, what: str = "condition"
) -> float:
    """Poll ``predicate`` every 10 ms; return the seconds it took, fail after ``within``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > within:
            pytest.fail(f"{what} did not hold within {within} s")
        await asyncio.sleep(0.01)
    return loop.time() - start


@dataclass
class Node:
    """A started broker and the handler it delivers to: one server process's view."""

    broker: Broker
    handler: RecordingHandler


MakeNode = Callable[[str], Awaitable[Node]]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free 127.0.0.1 port, killed after the test."""
    try:
        server = RedisServer()
    except RedisServerNotInstalled as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone
    with server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _nodes(factory: Callable[[str], Broker]) -> AsyncIterator[MakeNode]:
    started: list[Broker] = []

    async def make(node_id: str = "n1") -> Node:
        broker = factory(node_id)
        handler = RecordingHandler()
        broker.register(handler)
        started.append(broker)
        await broker.start()
        return Node(broker, handler)

    try:
        yield make
    finally:
        for broker in started:
            await broker.close()


@pytest.fixture
async def make_node(
    broker_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[MakeNode]:
    """Start nodes of the parametrised kind; all closed after the test.

    Memory nodes never see each other (one process only); Redis nodes share the
    test's private server.
    """
    server: RedisServer | None = None
    if broker_kind == "redis":  # only Redis runs need a server
        server = request.getfixturevalue("redis_server")

    def factory(node_id: str) -> Broker:
        if server is None:
            return MemoryBroker()
        return RedisBroker(server.url, node_id=node_id)

    async for make in _nodes(factory):
        yield make


@pytest.fixture
async def make_redis_node(redis_server: RedisServer) -> AsyncIterator[MakeNode]:
    """Start RedisBrokers on the test's private server (short timeouts); closed after."""
    def factory(node_id: str) -> Broker:
        return RedisBroker(redis_server.url, node_id=node_id, timeout=1.0)

    async for make in _nodes(factory):
        yield make


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    """One started node of the parametrised kind."""
    return await make_node("n1")


# ---------------------------------------------------------------------- stores
#
# The store contract suite (tests/contracts/test_store_*.py) runs every test once per
# implementation: ``store`` is parametrised over ``sqlite`` (a file in the test's
# tmp dir) and ``postgresql`` (a fresh database of the machine's server, from
# ``postgres_url``). An unreachable PostgreSQL fails the test with the command that
# starts it (tests/postgres.py); it never skips.

STORE_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of this test's empty store, of the parametrised kind."""
    if store_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    try:
        return str(request.getfixturevalue("postgres_url"))
    except PostgresUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone


OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture
async def open_more(store_url: str) -> AsyncIterator[OpenStore]:
    """Open further stores on the test's database (another node, as far as the store
    can tell); all closed after the test."""
    opened: list[Store] = []

    async def more() -> Store:
        st = await open_store(store_url)
        opened.append(st)
        return st

    try:
        yield more
    finally:
        for st in reversed(opened):
            await st.close()


@pytest.fixture
async def store(open_more: OpenStore) -> Store:  # overrides tests/conftest.py's SQLite one
    """An opened, migrated, empty store of the parametrised kind."""
    return await open_more()


@pytest.fixture
async def schools(store: Store) -> Store:
    """The store with ``hugo`` and ``moulin`` imported (tests/schools.py)."""
    for doc in (school_doc(), other_school_doc()):
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
    return store
