"""What only SqliteStore shows: its migrations, WAL mode, the JSON it keeps, and the
``:memory:`` store (no appender). The behaviours every store shares are the contract
suite's, in tests/contracts/test_store_*.py, run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from server.directory import parse_directory
from server.errors import MembersChanged, NotFound
from server.model import (
    DiscussionId,
    SchoolId,
    UserId,
)
from server.store import AlreadyStarted, SqliteStore
from server.store.sqlite_search import BACKLOG
from tests.conftest import SCHOOL_DAY
from tests.schools import other_school_doc, school_doc

pytestmark = pytest.mark.anyio

HUGO = SchoolId("hugo")
MOULIN = SchoolId("moulin")


async def _two_schools(store: SqliteStore) -> None:
    await store.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
    await store.import_directory(parse_directory(other_school_doc()), actor="t", now=SCHOOL_DAY)


# The highest NNNN of the shipped server/store/migrations/NNNN_name.sql files.
LATEST_MIGRATION = max(int(p.name[:4]) for p in (Path(__file__).resolve().parent.parent
                                                  / "server" / "store" / "migrations").glob(
    "[0-9][0-9][0-9][0-9]_*.sql"))


class TestMigrations:
    async def test_schema_is_versioned_and_reopening_is_idempotent(self, tmp_path: Path):
        path = str(tmp_path / "m.db")
        for _ in range(2):
            st = SqliteStore(path)
            await st.open()
            assert await st.schema_version() == LATEST_MIGRATION
            await st.close()

    async def test_0006_finds_the_starts_made_before_it(self, tmp_path: Path):
        """Discussions of before 0006 get their start's client id from their first
        message where the creator sent it; of two that a race started with the same
        one, the earliest only (the unique index could not be built otherwise)."""
        path = str(tmp_path / "m.db")
        st = SqliteStore(path)
        await st.open()
        await _two_schools(st)
        e1, t1 = UserId("e1"), UserId("t1")
        a = await st.create_discussion(HUGO, e1, "A", [t1], now=SCHOOL_DAY, first=("s1", "a"))
        raced = await st.create_discussion(HUGO, e1, "B", [t1], now=SCHOOL_DAY,
                                           first=("s1b", "b"))
        replied = await st.create_discussion(HUGO, t1, "C", [e1], now=SCHOOL_DAY)
        await st.append_message(HUGO, replied.id, e1, "r1", "c", now=SCHOOL_DAY)
        own = await st.create_discussion(HUGO, t1, "D", [e1], now=SCHOOL_DAY)
        await st.append_message(HUGO, own.id, t1, "t1", "d", now=SCHOOL_DAY)
        await st.close()
        with closing(sqlite3.connect(path)) as db:  # back to 0005, the race's duplicate too
            db.executescript(
                "DROP INDEX discussions_by_start;"
                "ALTER TABLE discussions DROP COLUMN start_client_id;"
                "UPDATE messages SET client_id = 's1' WHERE client_id = 's1b';"
                "DELETE FROM schema_version WHERE version = 6;")
        st = SqliteStore(path)
        await st.open()
        try:
            assert await st.schema_version() == LATEST_MIGRATION
            starts = {r[0]: r[1] for r in await st.db.execute_fetchall(
                "SELECT id, start_client_id FROM discussions")}
            assert starts == {a.id: "s1", raced.id: None, replied.id: None, own.id: "t1"}
            found = await st.find_started(HUGO, e1, "s1")
            assert found is not None
            assert found.discussion_id == a.id
            with pytest.raises(AlreadyStarted) as race:
                await st.create_discussion(HUGO, e1, "A", [t1], now=SCHOOL_DAY,
                                           first=("s1", "a"))
            assert race.value.earlier == found
        finally:
            await st.close()

    async def test_0010_indexes_what_was_stored_before_it(self, tmp_path: Path):
        """Messages, subjects and names stored before the search indexes existed are
        found once 0010 has run."""
        path = str(tmp_path / "m.db")
        st = SqliteStore(path)
        await st.open()
        await _two_schools(st)
        e1, t1 = UserId("e1"), UserId("t1")
        d = await st.create_discussion(HUGO, t1, "Sortie au théâtre", [e1], now=SCHOOL_DAY,
                                       first=("s1", "Prévoir un pique-nique"))
        await st.close()
        with closing(sqlite3.connect(path)) as db:  # back to before 0010 (and 0011)
            db.executescript(
                "DROP TABLE message_text; DROP TABLE discussion_text; DROP TABLE user_text;"
                "DROP TABLE search_progress; DROP TRIGGER discussion_text_insert;"
                "DROP TRIGGER user_text_insert; DROP TRIGGER user_text_delete;"
                "DROP TRIGGER user_text_update;"
                "DELETE FROM schema_version WHERE version IN (10, 11);")
        st = SqliteStore(path)
        await st.open()
        try:
            assert await st.schema_version() == LATEST_MIGRATION
            # 0010 indexed the message, 0011 marked it as indexed: not indexed twice.
            await st.search(HUGO, e1, ["pique"])
            assert list(await st.db.execute_fetchall(
                "SELECT (SELECT count(*) FROM message_text_docsize), indexed_upto, "
                "(SELECT max(rowid) FROM messages) FROM search_progress")) == [(1, 1, 1)]
            hits = await st.search(HUGO, e1, ["pique", "nique"])
            assert [(h.discussion_id, h.kind, h.seq) for h in hits] == [(d.id, "message", 1)]
            assert [h.kind for h in await st.search(HUGO, e1, ["theatre"])] == ["subject"]
            assert [h.kind for h in await st.search(HUGO, e1, ["claire"])] == ["participant"]
        finally:
            await st.close()

    async def test_wal_mode(self, store: SqliteStore):
        row = await (await store.db.execute("PRAGMA journal_mode")).fetchone()
        assert row is not None
        assert row[0] == "wal"


class TestSearchBatches:
    """Messages are indexed in batches off the append's path (0011_search_batches.sql,
    server/store/sqlite_search.py); searches are exact whatever the batches did."""

    @staticmethod
    def _progress(path: str) -> tuple[int, int]:
        with closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT indexed_upto, (SELECT count(*) FROM message_text_docsize) "
                             "FROM search_progress").fetchone()
            return int(row[0]), int(row[1])

    async def _discussion(self, st: SqliteStore) -> DiscussionId:
        await _two_schools(st)
        return (await st.create_discussion(HUGO, UserId("t1"), "Sortie", [UserId("e1")],
                                           now=SCHOOL_DAY)).id

    async def test_a_backlog_is_indexed_in_the_background(self, tmp_path: Path):
        path = str(tmp_path / "b.db")
        st = SqliteStore(path)
        await st.open()
        try:
            d = await self._discussion(st)
            st.search_pending_seconds = 3600.0  # the backlog alone wakes it
            for i in range(BACKLOG):
                await st.append_message(HUGO, d, UserId("t1"), f"c{i}", "bonjour",
                                        now=SCHOOL_DAY)
            for _ in range(1000):  # no search: the background task does it
                if self._progress(path) == (BACKLOG, BACKLOG):
                    break
                await asyncio.sleep(0.01)
            assert self._progress(path) == (BACKLOG, BACKLOG)
        finally:
            await st.close()

    async def test_a_failed_batch_is_logged_and_the_next_search_indexes_it(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture):
        path = str(tmp_path / "f.db")
        st = SqliteStore(path)
        await st.open()
        try:
            d = await self._discussion(st)
            st.search_pending_seconds = 3600.0
            with closing(sqlite3.connect(path)) as db:  # every batch fails from now on
                db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON search_progress "
                           "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
                db.commit()
            for i in range(BACKLOG + 1):  # the senders never see it
                m, new = await st.append_message(HUGO, d, UserId("t1"), f"c{i}", "bonjour",
                                                 now=SCHOOL_DAY)
                assert (m.seq, new) == (i + 1, True)
            for _ in range(1000):
                if "indexing messages for search failed" in caplog.text:
                    break
                await asyncio.sleep(0.01)
            assert "refused by the test" in caplog.text
            assert self._progress(path) == (0, 0)  # rolled back whole
            with closing(sqlite3.connect(path)) as db:
                db.execute("DROP TRIGGER refuse")
                db.commit()
            hits = await st.search(HUGO, UserId("e1"), ["bonjour"], limit=1000)
            assert len(hits) == BACKLOG + 1
            assert self._progress(path) == (BACKLOG + 1, BACKLOG + 1)
        finally:
            await st.close()  # stops the background task (pytest fails on a pending one)


class TestArrivingLater:
    """docs/policy.md, "People who arrive later": the store's part (the rule itself is
    the gatekeeper's, tested in tests/gatekeeper/test_g7_invite.py). A file store (appends
    through the appender) shows it in the contract suite; these run the same on a
    ``:memory:`` store, whose appends do not go through the appender."""

    @pytest.fixture
    async def either(self) -> AsyncIterator[SqliteStore]:
        """A ``:memory:`` store."""
        st = SqliteStore(":memory:")
        await st.open()
        try:
            yield st
        finally:
            await st.close()

    async def test_earlier_messages_of_authors_not_readable_are_hidden(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("e1"), "S", [UserId("t1")],
                                       now=SCHOOL_DAY, first=("c0", "Bonjour madame"))
        await st.append_message(HUGO, m.id, UserId("t1"), "c1", "Oui ?", now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("e1"), "c2", "x", now=SCHOOL_DAY,
                                hidden_from=[UserId("zz")])
        joined = await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                          now=SCHOOL_DAY, members_version=m.version,
                                          readable_authors=[UserId("t1"), UserId("e2")])
        assert joined.version == m.version + 1
        seen = {x.seq: x.hidden_from for x in await st.messages(HUGO, m.id)}
        assert seen == {1: {"e2"}, 2: set(), 3: {"e2", "zz"}}
        assert [x.seq for x in await st.messages(HUGO, m.id, reader=UserId("e2"))] == [2]
        row = await (await st.db.execute(
            "SELECT hidden_from FROM messages WHERE discussion_id = ? AND seq = 3",
            (m.id,))).fetchone()
        assert row is not None
        assert row[0] == '["e2", "zz"]'  # still one sorted JSON list

    async def test_coming_back_hides_only_what_was_said_while_away(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1"), UserId("e2")],
                                       now=SCHOOL_DAY, first=("c0", "m1"))
        await st.append_message(HUGO, m.id, UserId("e1"), "c1", "m2", now=SCHOOL_DAY)
        gone = await st.leave(HUGO, m.id, UserId("e2"), now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("e1"), "c2", "m3", now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("t1"), "c3", "m4", now=SCHOOL_DAY)
        await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                 now=SCHOOL_DAY, members_version=gone.version,
                                 readable_authors=[UserId("t1"), UserId("e2")])
        # m2 was said while she was there (decided when it was posted); m3 while away.
        seen = [x.seq for x in await st.messages(HUGO, m.id, reader=UserId("e2"))]
        assert seen == [4, 2, 1]

    async def test_writes_checked_against_other_members_are_refused(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1")],
                                       now=SCHOOL_DAY, first=("c0", "m1"))
        await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                 now=SCHOOL_DAY)
        # A post decided before the invitation is not stored on that decision.
        with pytest.raises(MembersChanged):
            await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x", now=SCHOOL_DAY,
                                    members_version=m.version)
        with pytest.raises(MembersChanged):
            await st.add_participant(HUGO, m.id, UserId("p1"), invited_by=UserId("t1"),
                                     now=SCHOOL_DAY, members_version=m.version,
                                     readable_authors=[])
        now = await st.members(HUGO, m.id)
        assert [p.user_id for p in now.participants] == ["t1", "e1", "e2"]
        assert (await st.get_discussion(HUGO, m.id)).last_seq == 1
        # Decided against the members as they are: stored; a retry is still a duplicate.
        msg, new = await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x",
                                           now=SCHOOL_DAY, members_version=now.version)
        assert (msg.seq, new) == (2, True)
        again, new = await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x",
                                             now=SCHOOL_DAY, members_version=m.version)
        assert (again.seq, new) == (2, False)
        with pytest.raises(NotFound):
            await st.append_message(HUGO, DiscussionId(999), UserId("e1"), "c9", "x",
                                    now=SCHOOL_DAY, members_version=1)
