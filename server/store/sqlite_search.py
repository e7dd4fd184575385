"""Search for :class:`~server.store.sqlite.SqliteStore` (see
:class:`~server.store.contract.SearchStore`): FTS5 indexes of message text, subjects and
names (migration ``0010_search.sql``), read through the same rules as ``history`` and
``list``: the user's participant rows bound what they may find.

Messages are indexed in batches (migration ``0011_search_batches.sql``), not in the
append's transaction: FTS5 writes a segment at every commit, and the appender's CPU is
taken from fan-out. A catch-up indexes the messages after ``search_progress`` and moves
it on, in write transactions of its own; it runs at the start of every search (so a
search finds every message committed before it started) and in the background, after
:data:`BACKLOG` appends or :data:`PENDING_SECONDS` after the first pending one, so that
searches seldom have much to do. Counting an append is all it adds to the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..model import DiscussionId, SchoolId, UserId
from .base import MATCH_END, MATCH_START, SearchHit
from .times import dt, ts

__all__ = ["SqliteSearch"]

log = logging.getLogger(__name__)

# Messages indexed per write transaction: the appender waits for the write lock
# meanwhile, so a large backlog (after a store copy) goes in several turns.
BATCH = 5000
# The background catch-up runs once this many messages were appended since the last
# one, or this long after the first of fewer.
BACKLOG = 500
PENDING_SECONDS = 5.0

# The rows after the progress mark, in rowid order (the order they were committed in:
# one writer at a time, and SQLite gives each new row the largest rowid plus one).
_NEXT = ("SELECT max(r), count(*) "
         "FROM (SELECT rowid AS r FROM messages WHERE rowid > ? ORDER BY rowid LIMIT ?)")
_INDEX = ("INSERT INTO message_text (rowid, body) "
          "SELECT rowid, body FROM messages WHERE rowid > ? AND rowid <= ?")

# Words a snippet keeps around the matches (FTS5 counts tokens).
SNIPPET_WORDS = 16

_MARKS = f"'{MATCH_START}', '{MATCH_END}'"

# The user's discussions and how far they may read each: ``history``'s bound
# (visible_seq) and, once they left, when (``list`` shows the members as they were).
# Each full-text index is read once, for the row ids it matches (MATERIALIZED: were an
# index the inner side of a join, SQLite would run the whole match again for every
# row of the outer side). ``r`` is the matched row (message, discussion or user), whose
# snippet is made afterwards, for the page only.
_SEARCH = """
WITH mine AS MATERIALIZED (
    SELECT p.discussion_id AS id, COALESCE(p.left_seq, d.last_seq) AS upto,
           p.left_at AS gone, d.subject, d.last_at
    FROM participants p JOIN discussions d ON d.id = p.discussion_id
    WHERE p.school_id = :school AND p.user_id = :user
), said_rows AS MATERIALIZED (
    SELECT rowid AS r FROM message_text WHERE message_text MATCH :words
), subject_rows AS MATERIALIZED (
    SELECT rowid AS r FROM discussion_text WHERE discussion_text MATCH :words
), name_rows AS MATERIALIZED (
    SELECT rowid AS r FROM user_text WHERE user_text MATCH :words
), said AS (
    SELECT mine.id, mine.subject, 'message' AS kind, m.seq, m.created_at AS at, m.rowid AS r
    FROM said_rows f
    JOIN messages m ON m.rowid = f.r
    JOIN mine ON mine.id = m.discussion_id
    WHERE m.school_id = :school AND m.seq <= mine.upto
      AND (m.hidden_from IS NULL
           OR NOT EXISTS (SELECT 1 FROM json_each(m.hidden_from) WHERE value = :user))
), named AS (
    SELECT mine.id, mine.subject, 'subject' AS kind, mine.last_at AS at, f.r, 1 AS rank
    FROM subject_rows f JOIN mine ON mine.id = f.r
    UNION ALL
    SELECT mine.id, mine.subject, 'participant', mine.last_at, u.rowid, 2
    FROM name_rows f
    JOIN users u ON u.rowid = f.r
    JOIN participants o ON o.school_id = u.school_id AND o.user_id = u.id
    JOIN mine ON mine.id = o.discussion_id
    WHERE u.school_id = :school AND u.active = 1 AND o.user_id <> :user
      AND (mine.gone IS NULL OR o.joined_at <= mine.gone)
), hits AS (
    SELECT id, subject, kind, seq, at, r FROM said
    UNION ALL
    -- One hit per discussion: its subject if that matched, else one participant
    -- (SQLite takes the other columns from the row that has the MIN).
    SELECT id, subject, kind, 0, at, r
    FROM (SELECT id, subject, kind, at, r, MIN(rank) FROM named GROUP BY id)
)
SELECT id, subject, kind, seq, at, r FROM hits
WHERE :at IS NULL OR (at, id, seq) < (:at, :id, :seq)
ORDER BY at DESC, id DESC, seq DESC
LIMIT :limit
"""

# The snippet of one matched row, by kind: a message's text shortened around the
# matches, a subject likewise, a name in full.
_SNIPPETS = {
    "message": f"SELECT snippet(message_text, 0, {_MARKS}, '…', {SNIPPET_WORDS}) "
               "FROM message_text WHERE message_text MATCH :words AND rowid = :r",
    "subject": f"SELECT snippet(discussion_text, 0, {_MARKS}, '…', {SNIPPET_WORDS}) "
               "FROM discussion_text WHERE discussion_text MATCH :words AND rowid = :r",
    "participant": f"SELECT highlight(user_text, 0, {_MARKS}) || ' ' || "
                   f"highlight(user_text, 1, {_MARKS}) "
                   "FROM user_text WHERE user_text MATCH :words AND rowid = :r",
}


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 query: every word, as the start of a word. The words are letters and
    digits (the caller's), quoted all the same so that no FTS5 syntax can slip in."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


class SqliteSearch:
    """Search for SqliteStore."""

    if TYPE_CHECKING:
        async def _all(self, sql: str, args: Any) -> Iterable[Any]: ...
        async def _one(self, sql: str, args: Any) -> Any: ...
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    # Appended since the last catch-up (this process's), and the task that catches up.
    _search_pending: int = 0
    _search_task: asyncio.Task[None] | None = None
    _search_wake: asyncio.Event | None = None
    _search_closing: bool = False
    # How long a pending backlog may wait (tests make it long, to see a search alone).
    search_pending_seconds: float = PENDING_SECONDS

    def _search_appended(self) -> None:
        """Called after each message this process appends: a count, and a wake-up once
        the backlog is worth a batch (the task itself is started at the first)."""
        self._search_pending += 1
        if self._search_task is None:
            if self._search_closing:
                return
            self._search_wake = asyncio.Event()
            self._search_task = asyncio.create_task(self._search_background(),
                                                    name="search catch-up")
        if self._search_pending >= BACKLOG and self._search_wake is not None:
            self._search_wake.set()

    async def _search_background(self) -> None:
        wake = self._search_wake
        assert wake is not None
        while not self._search_closing:
            with suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.search_pending_seconds)
            wake.clear()
            if self._search_closing:
                return
            if self._search_pending == 0:
                continue
            try:
                await self.index_messages()
            except Exception:  # the next search or turn retries; the sender never sees it
                log.exception("indexing messages for search failed")

    async def _search_close(self) -> None:
        """Stop the background catch-up (what it left is indexed by the next search,
        in this process or another)."""
        self._search_closing = True
        task, self._search_task = self._search_task, None
        if task is not None:
            if self._search_wake is not None:
                self._search_wake.set()
            await task

    async def index_messages(self) -> int:
        """Index the messages not in ``message_text`` yet; returns how many."""
        self._search_pending = 0
        # Nothing new (the usual case): a read, no write lock. Whatever the reader sees
        # was committed before this call, so a mark at or past it leaves nothing behind.
        row = await self._one(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM messages) - indexed_upto "
            "FROM search_progress", ())
        if row is None or row[0] <= 0:
            return 0
        total = 0
        while True:
            done = await self._index_batch()
            total += done
            if done < BATCH:
                return total

    async def _index_batch(self) -> int:
        # The mark is read under the write lock: two processes catching up at once
        # take turns, the second starting where the first stopped.
        async with self._transaction() as db:
            found = await (await db.execute("SELECT indexed_upto FROM search_progress")).fetchone()
            mark = 0 if found is None else int(found[0])
            found = await (await db.execute(_NEXT, (mark, BATCH))).fetchone()
            upto, count = (None, 0) if found is None else found
            if upto is None:
                return 0
            await db.execute(_INDEX, (mark, upto))
            await db.execute("UPDATE search_progress SET indexed_upto = ?", (upto,))
            return int(count)

    async def search(
        self,
        school_id: SchoolId,
        user_id: UserId,
        words: Sequence[str],
        *,
        before: tuple[datetime, DiscussionId, int] | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        if not words:
            return []
        await self.index_messages()
        at, did, seq = (None, 0, 0) if before is None else (ts(before[0]), *before[1:])
        match = match_expression(words)
        rows = await self._all(_SEARCH, {
            "school": school_id, "user": user_id, "words": match,
            "at": at, "id": did, "seq": seq, "limit": limit})
        hits = []
        for r in rows:
            found = list(await self._all(_SNIPPETS[r[2]], {"words": match, "r": r[5]}))
            snippet = found[0][0] if found else r[1]
            hits.append(SearchHit(DiscussionId(r[0]), r[1], r[2], int(r[3]), dt(r[4]), snippet))
        return hits
