"""SqliteStore when the database fails, on real SQLite files: every driver error comes
out as the store's own, with its cause; nothing half-written; reads never wait behind a
write that waits for another process's lock; the last write's failure is known."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server.directory import parse_directory
from server.errors import StoreBusy, StoreFull, UnstorableValue
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


def cap(conn: sqlite3.Connection) -> None:
    """Cap the database at its current size on ``conn``: the next page that connection
    needs fails with SQLITE_FULL, as on a full disk."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")


async def fill_up(store: SqliteStore) -> None:
    """:func:`cap` for the store's write connection."""
    rows = await store.db.execute_fetchall("PRAGMA page_count", ())
    await store.db.execute(f"PRAGMA max_page_count={next(iter(rows))[0]}")


class TestBatchingWriter:
    async def test_a_value_that_cannot_be_stored_fails_alone(self, school):
        store, d = school
        bodies = ["un", "deux", "\ud800 lone surrogate", "trois", "quatre"]
        results = await asyncio.wait_for(asyncio.gather(
            *(store.append_message(HUGO, d, T1, f"c{i}", body, now=SCHOOL_DAY)
              for i, body in enumerate(bodies)),
            return_exceptions=True), 10)
        assert isinstance(results[2], UnstorableValue)
        stored = [r for r in results if not isinstance(r, BaseException)]
        # The others went in, gap-free: the refused one took no seq.
        assert [(m.body, m.seq, new) for m, new in stored] == [
            ("un", 1, True), ("deux", 2, True), ("trois", 3, True), ("quatre", 4, True)]
        assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1, 2, 3, 4]
        # And the writer goes on.
        m, _ = await asyncio.wait_for(
            store.append_message(HUGO, d, E1, "c9", "après", now=SCHOOL_DAY), 10)
        assert m.seq == 5

    async def test_a_full_disk_fails_the_batch_with_its_cause_and_stores_nothing(self, school):
        store, d = school
        await store.append_message(HUGO, d, T1, "c0", "avant", now=SCHOOL_DAY)
        appender = store._appender
        assert appender is not None
        assert appender._conn is not None
        # The appender's connection is used only in its own thread.
        await asyncio.get_running_loop().run_in_executor(appender._executor, cap,
                                                         appender._conn)
        results = await asyncio.wait_for(asyncio.gather(
            *(store.append_message(HUGO, d, T1, f"c{i}", "x" * 8000, now=SCHOOL_DAY)
              for i in range(1, 4)),
            return_exceptions=True), 10)
        for r in results:
            assert isinstance(r, StoreFull), r
            assert r.retryable
            assert "full" in str(r)
        assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1]
        assert store.write_failure() is not None


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

    async def test_a_discussion_never_exists_without_its_first_message(self, school):
        store, d = school
        members = await store.create_discussion(HUGO, T1, "Cantine", [E1], now=SCHOOL_DAY,
                                                first=("s1", "Bonjour"))
        assert [(m.seq, m.body) for m in await store.messages_after(HUGO, members.id, 0)] \
            == [(1, "Bonjour")]
        assert (await store.get_discussion(HUGO, members.id)).last_seq == 1
        found = await store.find_started(HUGO, T1, "s1")
        assert found is not None
        assert found.discussion_id == members.id
        # The first message does not fit: neither it nor the discussion is stored.
        await fill_up(store)
        with pytest.raises(StoreFull):
            await store.create_discussion(HUGO, T1, "Sortie", [E1], now=SCHOOL_DAY,
                                          first=("s2", "x" * 8000))
        assert await store.find_started(HUGO, T1, "s2") is None
        assert sorted(x.id for x in await store.discussions_of(HUGO, T1)) == [d, members.id]

    async def test_another_process_holding_the_lock_is_busy(self, tmp_path: Path):
        store = SqliteStore(str(tmp_path / "busy.db"), busy_timeout_ms=50)
        await store.open()
        try:
            with write_lock_held(store.path), pytest.raises(StoreBusy, match="locked"):
                await store.set_meta("k", "v")
            await store.set_meta("k", "v")  # and once the lock is free, it works
            assert await store.get_meta("k") == "v"
        finally:
            await store.close()


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


class TestWriteHealth:
    async def test_the_last_write_failure_is_known_until_a_write_succeeds(self, tmp_path: Path):
        store = SqliteStore(str(tmp_path / "health.db"), busy_timeout_ms=50)
        await store.open()
        try:
            assert store.write_failure() is None
            with write_lock_held(store.path), pytest.raises(StoreBusy):
                await store.set_meta("k", "v")
            failure = store.write_failure()
            assert failure is not None
            assert "locked" in failure
            await store.set_meta("k", "v")
            assert store.write_failure() is None
        finally:
            await store.close()
