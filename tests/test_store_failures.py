"""What only SqliteStore shows when its database fails, on real SQLite files: a full
disk is reported as itself, not as the rollback after it; reads never wait behind a
write that waits for another process's lock. What every store does about a full disk,
a lock held elsewhere, a value it cannot hold or a read-only database is the contract
suite's (tests/contracts/test_store_errors.py, on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from server.directory import parse_directory
from server.errors import StoreFull
from server.model import DiscussionId, SchoolId, UserId
from server.store import SqliteStore
from tests.conftest import SCHOOL_DAY
from tests.schools import school_doc

pytestmark = pytest.mark.anyio

HUGO = SchoolId("hugo")
T1, E1 = UserId("t1"), UserId("e1")


@pytest.fixture
async def school(store: SqliteStore) -> tuple[SqliteStore, DiscussionId]:
    """The store with one school and one discussion between t1 and e1."""
    await store.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
    members = await store.create_discussion(HUGO, T1, "Sortie", [E1], now=SCHOOL_DAY)
    return store, members.id


@contextmanager
def write_lock_held(path: str) -> Iterator[sqlite3.Connection]:
    """Another connection to the file (as another process would) holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


async def fill_up(store: SqliteStore) -> None:
    """Cap the database at its current size on the store's write connection: the next
    page it needs fails with SQLITE_FULL, as on a full disk."""
    rows = await store.db.execute_fetchall("PRAGMA page_count", ())
    await store.db.execute(f"PRAGMA max_page_count={next(iter(rows))[0]}")


class TestTransactions:
    async def test_a_full_disk_is_reported_as_such_not_as_a_failed_rollback(self, school):
        store, d = school
        await fill_up(store)
        with pytest.raises(StoreFull, match="full") as caught:
            await store.create_discussion(HUGO, T1, "x" * 20_000, [E1], now=SCHOOL_DAY)
        assert caught.value.retryable
        assert "rollback" not in str(caught.value)
        # Nothing half-written, and the connection is usable again.
        assert [x.id for x in await store.discussions_of(HUGO, T1)] == [d]
        await store.db.execute("PRAGMA max_page_count=1073741823")
        await store.set_meta("after", "ok")
        assert await store.get_meta("after") == "ok"


class TestReadsAndWrites:
    async def test_reads_are_answered_while_a_write_waits_for_the_lock(self, school):
        store, d = school
        await store.append_message(HUGO, d, T1, "c1", "Bonjour", now=SCHOOL_DAY)
        with write_lock_held(store.path):
            write = asyncio.create_task(store.mark_read(HUGO, d, E1, 1))
            for _ in range(500):  # until the write has taken the store's write lock
                if store._lock.locked():
                    break
                await asyncio.sleep(0.01)
            assert store._lock.locked()
            assert not write.done()
            # The write waits up to its busy timeout (10 s); the reads do not wait for it.
            rows = await asyncio.wait_for(store.messages(HUGO, d), 5)
            listed = await asyncio.wait_for(store.summaries(HUGO, E1), 5)
            assert not write.done()
        assert [m.body for m in rows] == ["Bonjour"]
        assert [s.discussion.id for s in listed] == [d]
        assert await asyncio.wait_for(write, 10) == 1
