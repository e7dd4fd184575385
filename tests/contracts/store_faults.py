"""Ways to make a store's database fail, one per kind of store, for
tests/contracts/test_store_errors*.py (the tests are the same for both stores, only how
the failure is caused differs), and what those tests check after a failure: nothing
stored, and a retry stored once.

SQLite: what the driver really does when the file is capped at its size (SQLITE_FULL),
another process holds the write lock (SQLITE_BUSY) or the connection is read-only
(SQLITE_READONLY), as tests/test_store_failures.py does on one connection.

PostgreSQL: a full disk cannot be caused on the machine's server, so a trigger on the
real server raises the error a full disk raises (``RAISE ... USING ERRCODE = '53100'``);
serialization failures and deadlocks (40001, 40P01) come from triggers the same way,
since which statement of which transaction PostgreSQL picks as the victim is not for a
test to arrange; a read-only database (what a client finds after a failover to a
standby, 25006) is real: ``default_transaction_read_only`` set on the database, and
the store's sessions ended so that its new ones get it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest

from server.directory import parse_directory
from server.errors import StoreError, StoreUnavailable
from server.model import DiscussionId
from server.store import SqliteStore, Store
from tests.conftest import SCHOOL_DAY
from tests.contracts.stores import E1, HUGO, T1, at
from tests.schools import other_school_doc, school_doc
from tests.test_store_failures import write_lock_held

__all__ = [
    "WAIT",
    "WRITTEN_TABLES",
    "Faults",
    "PostgresFaults",
    "SqliteFaults",
    "eventually_available",
    "faults_for",
    "nothing_more_stored",
    "stored_once_after_retry",
    "stored_once_on_retry",
    "terminate_sessions",
    "waiting_on_locks",
    "with_schools",
]

T = TypeVar("T")
WAIT = 10.0  # bound on any wait of the error tests; reached only when one fails

# Tables the store writes, which a PostgreSQL fault trigger (or a test's lock) is put on.
WRITTEN_TABLES = ("meta", "schools", "users", "audit", "discussions", "participants",
                  "messages", "held", "broadcasts", "broadcast_recipients")


class Faults:
    """Cause and undo a failure of the database at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    @asynccontextmanager
    async def full(self) -> AsyncIterator[None]:
        """The disk is full for the block."""
        raise NotImplementedError
        yield

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        """Writes meet a lock, a serialization failure or a deadlock, for the block."""
        raise NotImplementedError
        yield

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        """The database accepts reads and refuses writes, for the block."""
        raise NotImplementedError
        yield


class SqliteFaults(Faults):
    """On the store's own connections: the write one and the appender's."""

    def __init__(self, store: Store, url: str) -> None:
        assert isinstance(store, SqliteStore)
        super().__init__(url)
        self.sqlite = store

    async def _on_every_writer(self, pragma: str) -> None:
        await self.sqlite.db.execute(pragma)
        appender = self.sqlite._appender
        if appender is not None:
            def run() -> None:  # the appender's connection is used only in its thread
                appender._connect().execute(pragma)
            await asyncio.get_running_loop().run_in_executor(appender._executor, run)

    @asynccontextmanager
    async def full(self) -> AsyncIterator[None]:
        rows = await self.sqlite.db.execute_fetchall("PRAGMA page_count", ())
        await self._on_every_writer(f"PRAGMA max_page_count={next(iter(rows))[0]}")
        try:
            yield
        finally:
            await self._on_every_writer("PRAGMA max_page_count=1073741823")

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        with write_lock_held(self.sqlite.path):
            yield

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        await self._on_every_writer("PRAGMA query_only=ON")
        try:
            yield
        finally:
            await self._on_every_writer("PRAGMA query_only=OFF")


class PostgresFaults(Faults):
    """Through an administrator's connection to the store's database (any store on it,
    of this process or of a live server's)."""

    async def _admin(self, *scripts: str) -> None:
        """Run ``scripts`` (each one transaction of statements separated by ``;``), in
        order, on a connection of its own."""
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            for sql in scripts:
                await conn.execute(sql)
        finally:
            await conn.close()

    async def _raise_on_writes(self, code: str, message: str, each: str = "ROW") -> None:
        """Writes raise ``code``: each row written (``ROW``), or each statement that
        writes, even one that matches no row (``STATEMENT``)."""
        await self._admin(
            "CREATE OR REPLACE FUNCTION preau_test_fault() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$; "
            + "".join(f"CREATE TRIGGER preau_test_fault BEFORE INSERT OR UPDATE OR DELETE "
                      f"ON {table} FOR EACH {each} EXECUTE FUNCTION preau_test_fault(); "
                      for table in WRITTEN_TABLES))

    async def _stop_raising(self) -> None:
        await self._admin("".join(f"DROP TRIGGER IF EXISTS preau_test_fault ON {table}; "
                                  for table in WRITTEN_TABLES)
                          + "DROP FUNCTION IF EXISTS preau_test_fault()")

    @asynccontextmanager
    async def full(self) -> AsyncIterator[None]:
        await self._raise_on_writes(
            "53100", "could not extend file: No space left on device (raised by a test)")
        try:
            yield
        finally:
            await self._stop_raising()

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        # Half the tables say "serialization failure", the other half "deadlock". Every
        # statement that writes fails, as every write does while SQLite's lock is held
        # (an UPDATE that matches no row too: a hub's tick must not look like a success).
        await self._raise_on_writes("40001", "could not serialize access (raised by a test)",
                                    each="STATEMENT")
        await self._admin(
            "CREATE OR REPLACE FUNCTION preau_test_deadlock() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'deadlock detected (raised by a "
            "test)' USING ERRCODE = '40P01'; END $$; "
            + "".join(f"DROP TRIGGER preau_test_fault ON {table}; CREATE TRIGGER "
                      f"preau_test_fault BEFORE INSERT OR UPDATE OR DELETE ON {table} FOR "
                      "EACH STATEMENT EXECUTE FUNCTION preau_test_deadlock(); "
                      for table in ("messages", "discussions", "participants")))
        try:
            yield
        finally:
            await self._stop_raising()
            await self._admin("DROP FUNCTION IF EXISTS preau_test_deadlock()")

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        name = urlsplit(self.url).path.lstrip("/")
        await self._admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await terminate_sessions(self.url)
        try:
            yield
        finally:
            # This session is read-only too, until it says otherwise.
            await self._admin("SET default_transaction_read_only = off",
                              f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            await terminate_sessions(self.url)


async def terminate_sessions(url: str, *, sparing: int | None = None) -> int:
    """End every other session on ``url``'s database but ``sparing`` (a backend pid)
    with ``pg_terminate_backend``, as a crash of the server or a network cut would;
    returns how many."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND pid IS DISTINCT FROM $1", sparing)
        return len(rows)
    finally:
        await conn.close()


async def waiting_on_locks(url: str, count: int, *, doing: str = "") -> None:
    """Return once ``count`` sessions of ``url``'s database wait for a lock (running a
    statement whose text holds ``doing``)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        async with asyncio.timeout(WAIT):
            while True:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND strpos(query, $1) > 0", doing)
                if waiting >= count:
                    return
                await asyncio.sleep(0.02)
    finally:
        await conn.close()


def faults_for(kind: str, store: Store, url: str) -> Faults:
    return SqliteFaults(store, url) if kind == "sqlite" else PostgresFaults(url)


# ---------------------------------------------------------------------- checks


async def with_schools(store: Store) -> DiscussionId:
    """Import both schools; a discussion t1 -> e1 with one message (seq 1)."""
    for doc in (school_doc(), other_school_doc()):
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
    m = await store.create_discussion(HUGO, T1, "Sortie", [E1], now=at(0),
                                      first=("c0", "avant"))
    return m.id


async def nothing_more_stored(store: Store, d: DiscussionId, client_id: str) -> None:
    """The discussion of :func:`with_schools` still holds its one message, and nothing of
    ``client_id`` (t1's), whose write failed."""
    assert await store.find_message(HUGO, d, T1, client_id) is None
    assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1]
    assert (await store.get_discussion(HUGO, d)).last_seq == 1


async def stored_once_on_retry(store: Store, d: DiscussionId, client_id: str) -> None:
    """Retrying t1's failed ``client_id`` now stores it once, as seq 2."""
    m, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (m.seq, new) == (2, True)  # no seq was taken by the failed attempt
    again, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (again.seq, new) == (2, False)


async def stored_once_after_retry(store: Store, d: DiscussionId, client_id: str) -> None:
    """After :func:`eventually_available` stored the retry: once, with the next seq."""
    m, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (m.seq, new) == (2, False)


async def eventually_available(call: Callable[[], Awaitable[T]], attempts: int = 50) -> T:
    """Call until it succeeds; every failure meanwhile must be ``StoreUnavailable``
    (never a driver's error). Fails after ``attempts`` tries, 0.1 s apart."""
    failures: list[StoreError] = []
    for _ in range(attempts):
        try:
            return await asyncio.wait_for(call(), WAIT)
        except StoreUnavailable as exc:
            failures.append(exc)
        await asyncio.sleep(0.1)
    pytest.fail(f"still failing after {attempts} tries: {failures[-1]!r}")
