"""Discussions of :class:`~server.store.sqlite.SqliteStore`: starts, members, lists.

A mixin over the store's ``_transaction``, ``_one`` and ``_all`` (see
:mod:`server.store.sqlite`). Joins and leaves bump the discussion's
``members_version`` in a ``BEGIN IMMEDIATE`` transaction, and a start writes the
discussion, its participants and its first message together, once per (school,
creator, client id).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..errors import NotFound
from ..model import DiscussionId, DiscussionMembers, Participant, SchoolId, UserId
from .appender import hidden_json, hidden_set
from .base import AlreadyStarted, Discussion, DiscussionSummary, StoredMessage
from .sqlite_messages import MESSAGE_COLUMNS, NOT_HIDDEN, changed_or_missing, message_from_row
from .times import dt, ts

__all__ = ["SqliteDiscussions"]

# The first message of the discussion a creator started with a client id (by the
# discussions_by_start index): retries and racing starts are answered with it.
_STARTED = ("SELECT d.id, m.body, m.created_at FROM discussions d "
            "JOIN messages m ON m.discussion_id = d.id AND m.seq = 1 "
            "WHERE d.school_id = ? AND d.created_by = ? AND d.start_client_id = ?")


def _started(r: Any, creator: UserId, client_id: str) -> StoredMessage:
    return StoredMessage(DiscussionId(r[0]), 1, creator, client_id, r[1], dt(r[2]))


class SqliteDiscussions:
    """Discussions, their members and the lists of a user's discussions for SqliteStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _one(self, sql: str, args: Sequence[Any]) -> Any: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

    async def create_discussion(
        self,
        school_id: SchoolId,
        creator: UserId,
        subject: str,
        recipients: Sequence[UserId],
        *,
        now: datetime,
        first: tuple[str, str] | None = None,
    ) -> DiscussionMembers:
        at = ts(now)
        start = None if first is None else first[0]
        async with self._transaction() as db:
            # Unique by (school, creator, start client id): a start stored meanwhile by
            # another connection leaves this insert without a row, and this transaction
            # is undone with nothing written.
            inserted = await (await db.execute(
                "INSERT INTO discussions (school_id, subject, created_by, created_at, last_at, "
                "last_seq, start_client_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (school_id, created_by, start_client_id) "
                "WHERE start_client_id IS NOT NULL DO NOTHING RETURNING id",
                (school_id, subject, creator, at, at, 0 if first is None else 1, start),
            )).fetchone()
            if inserted is None:
                assert start is not None
                row = await (await db.execute(_STARTED, (school_id, creator, start))).fetchone()
                assert row is not None  # the conflicting row, seen by this write transaction
                raise AlreadyStarted(_started(row, creator, start))
            did = int(inserted[0])
            rows: list[tuple[SchoolId, int, UserId, UserId | None, str]] = [
                (school_id, did, creator, None, at)]
            rows += [(school_id, did, r, creator, at) for r in dict.fromkeys(recipients)
                     if r != creator]
            await db.executemany(
                "INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
                "joined_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if first is not None:
                await db.execute(
                    "INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, "
                    "body, created_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
                    (school_id, did, creator, *first, at),
                )
        return await self.members(school_id, DiscussionId(did))

    async def get_discussion(self, school_id: SchoolId, discussion_id: DiscussionId) -> Discussion:
        row = await self._one(
            "SELECT id, subject, created_by, created_at, last_seq FROM discussions "
            "WHERE school_id = ? AND id = ?",
            (school_id, discussion_id),
        )
        if row is None:
            raise NotFound(f"no discussion {discussion_id}")
        return Discussion(DiscussionId(row[0]), school_id, row[1], UserId(row[2]),
                          dt(row[3]), int(row[4]))

    async def find_started(
        self, school_id: SchoolId, creator: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._one(_STARTED, (school_id, creator, client_id))
        return None if row is None else _started(row, creator, client_id)

    async def members(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> DiscussionMembers:
        row = await self._one(
            "SELECT members_version FROM discussions WHERE school_id = ? AND id = ?",
            (school_id, discussion_id),
        )
        if row is None:
            raise NotFound(f"no discussion {discussion_id}")
        rows = await self._all(
            "SELECT user_id, invited_by, joined_at, left_at FROM participants "
            "WHERE discussion_id = ? ORDER BY rowid",
            (discussion_id,),
        )
        return DiscussionMembers(
            id=discussion_id,
            version=int(row[0]),
            participants=tuple(
                Participant(UserId(r[0]), None if r[1] is None else UserId(r[1]), dt(r[2]),
                            None if r[3] is None else dt(r[3]))
                for r in rows
            ),
        )

    async def add_participant(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        user_id: UserId,
        *,
        invited_by: UserId,
        now: datetime,
        members_version: int | None = None,
        readable_authors: Collection[UserId] | None = None,
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            last_seq = await self._bump_members(db, school_id, discussion_id, members_version)
            row = await (await db.execute(
                "SELECT left_seq FROM participants WHERE discussion_id = ? AND user_id = ?",
                (discussion_id, user_id))).fetchone()
            # What they have not been part of: everything for a newcomer, what came after
            # they left for someone coming back (left_seq is NULL while present).
            since = 0 if row is None else last_seq if row[0] is None else int(row[0])
            await db.execute(
                "INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
                "joined_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (discussion_id, user_id) "
                "DO UPDATE SET invited_by = excluded.invited_by, "
                "joined_at = excluded.joined_at, left_at = NULL, left_seq = NULL",
                (school_id, discussion_id, user_id, invited_by, ts(now)),
            )
            if readable_authors is not None and since < last_seq:
                await _hide_earlier(db, discussion_id, user_id, since, last_seq,
                                    readable_authors)
        return await self.members(school_id, discussion_id)

    async def leave(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, *, now: datetime
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            await self._bump_members(db, school_id, discussion_id)
            cursor = await db.execute(
                "UPDATE participants SET left_at = ?, "
                "left_seq = (SELECT last_seq FROM discussions WHERE id = ?) "
                "WHERE discussion_id = ? AND user_id = ? AND left_at IS NULL",
                (ts(now), discussion_id, discussion_id, user_id),
            )
            if cursor.rowcount != 1:
                raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
        return await self.members(school_id, discussion_id)

    async def _bump_members(
        self, db: aiosqlite.Connection, school_id: SchoolId, discussion_id: DiscussionId,
        expected: int | None = None,
    ) -> int:
        """Move the membership version on (only from ``expected`` if given); returns the
        discussion's ``last_seq``, exact under the write lock."""
        row = await (await db.execute(
            "UPDATE discussions SET members_version = members_version + 1 "
            "WHERE school_id = ? AND id = ? AND (? IS NULL OR members_version = ?) "
            "RETURNING last_seq",
            (school_id, discussion_id, expected, expected),
        )).fetchone()
        if row is None:
            await changed_or_missing(db, school_id, discussion_id)
        return int(row[0])

    async def discussions_of(self, school_id: SchoolId, user_id: UserId) -> list[Discussion]:
        rows = await self._all(
            "SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq FROM discussions d "
            "JOIN participants p ON p.discussion_id = d.id "
            "WHERE p.school_id = ? AND p.user_id = ? ORDER BY d.last_at DESC, d.id DESC",
            (school_id, user_id),
        )
        return [Discussion(DiscussionId(r[0]), school_id, r[1], UserId(r[2]), dt(r[3]),
                           int(r[4])) for r in rows]

    async def present_discussions(self, school_id: SchoolId, user_id: UserId) -> list[DiscussionId]:
        rows = await self._all(
            "SELECT discussion_id FROM participants "
            "WHERE school_id = ? AND user_id = ? AND left_at IS NULL",
            (school_id, user_id),
        )
        return [DiscussionId(r[0]) for r in rows]

    async def summaries(
        self, school_id: SchoolId, user_id: UserId, *, limit: int = 200,
        discussion_id: DiscussionId | None = None,
        before: tuple[datetime, DiscussionId] | None = None,
    ) -> list[DiscussionSummary]:
        only = "" if discussion_id is None else "AND d.id = ? "
        args: list[Any] = [school_id, user_id]
        if discussion_id is not None:
            args.append(discussion_id)
        if before is not None:
            only += "AND (d.last_at < ? OR (d.last_at = ? AND d.id < ?)) "
            args += [ts(before[0]), ts(before[0]), before[1]]
        rows = await self._all(
            "SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq, p.read_seq, "
            "COALESCE(p.left_seq, d.last_seq), d.last_at FROM discussions d "
            "JOIN participants p ON p.discussion_id = d.id "
            f"WHERE p.school_id = ? AND p.user_id = ? {only}"
            "ORDER BY d.last_at DESC, d.id DESC LIMIT ?",
            (*args, limit),
        )
        out = []
        for r in rows:
            did = DiscussionId(r[0])
            visible, read = int(r[6]), int(r[5])
            message = await self._last_message(did, visible, user_id)
            out.append(DiscussionSummary(
                Discussion(did, school_id, r[1], UserId(r[2]), dt(r[3]), int(r[4])),
                await self.members(school_id, did), read, visible, message, dt(r[7]),
                await self._hidden_unread(did, read, visible, user_id)))
        return out

    async def _last_message(self, d: DiscussionId, visible: int,
                            reader: UserId) -> StoredMessage | None:
        """The newest message up to ``visible`` that is not hidden from ``reader``."""
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE discussion_id = ? AND seq <= ? "
            f"AND {NOT_HIDDEN} ORDER BY seq DESC LIMIT 1",
            (d, visible, reader),
        )
        return next((message_from_row(d, m) for m in rows), None)

    async def _hidden_unread(self, d: DiscussionId, read: int, visible: int,
                             reader: UserId) -> int:
        """How many messages in ``(read, visible]`` are hidden from ``reader`` (a partial
        index keeps this to the rare rows that hide from anyone)."""
        if visible <= read:
            return 0
        row = await self._one(
            "SELECT COUNT(*) FROM messages WHERE discussion_id = ? AND seq > ? AND seq <= ? "
            f"AND hidden_from IS NOT NULL AND NOT {NOT_HIDDEN}",
            (d, read, visible, reader),
        )
        return 0 if row is None else int(row[0])

    async def discussion_summaries(
        self, school_id: SchoolId, discussion_id: DiscussionId, users: Sequence[UserId]
    ) -> dict[UserId, DiscussionSummary]:
        wanted = sorted(set(users))
        found: list[Any] = []
        for i in range(0, len(wanted), 500):  # SQLite caps the ? of a statement
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found += await self._all(
                "SELECT p.user_id, d.subject, d.created_by, d.created_at, d.last_seq, "
                "p.read_seq, COALESCE(p.left_seq, d.last_seq) FROM discussions d "
                "JOIN participants p ON p.discussion_id = d.id "
                f"WHERE p.school_id = ? AND d.id = ? AND p.user_id IN ({marks})",
                (school_id, discussion_id, *chunk))
        if not found:
            return {}
        members = await self.members(school_id, discussion_id)
        last_visible: dict[int, StoredMessage | None] = {}
        out = {}
        for r in found:
            user, visible, read = UserId(r[0]), int(r[6]), int(r[5])
            if visible not in last_visible:
                rows = await self._all(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages "
                    "WHERE discussion_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
                    (discussion_id, visible))
                last_visible[visible] = next(
                    (message_from_row(discussion_id, m) for m in rows), None)
            last = last_visible[visible]
            if last is not None and user in last.hidden_from:
                last = await self._last_message(discussion_id, visible, user)
            out[user] = DiscussionSummary(
                Discussion(discussion_id, school_id, r[1], UserId(r[2]), dt(r[3]), int(r[4])),
                members, read, visible, last,
                hidden_unread=await self._hidden_unread(discussion_id, read, visible, user))
        return out

    async def recent_starts(self, school_id: SchoolId, user_id: UserId, *, since: datetime,
                            limit: int) -> list[datetime]:
        rows = await self._all(
            "SELECT at FROM (SELECT created_at AS at FROM discussions "
            "WHERE school_id = ? AND created_by = ? AND created_at > ? "
            "UNION ALL SELECT created_at FROM held WHERE school_id = ? AND sender = ? "
            "AND discussion_id IS NULL AND created_at > ?) ORDER BY at DESC LIMIT ?",
            (school_id, user_id, ts(since), school_id, user_id, ts(since), limit))
        return [dt(r[0]) for r in rows]


async def _hide_earlier(db: aiosqlite.Connection, discussion_id: DiscussionId, user: UserId,
                        since: int, upto: int, readable: Collection[UserId]) -> None:
    """Add ``user`` to the ``hidden_from`` of the messages in ``(since, upto]`` whose
    author is not in ``readable`` (kept a sorted JSON list, as the appender writes it)."""
    rows = await (await db.execute(
        "SELECT seq, hidden_from FROM messages WHERE discussion_id = ? AND seq > ? "
        "AND seq <= ? AND sender NOT IN (SELECT value FROM json_each(?))",
        (discussion_id, since, upto, json.dumps(sorted(readable))),
    )).fetchall()
    await db.executemany(
        "UPDATE messages SET hidden_from = ? WHERE discussion_id = ? AND seq = ?",
        [(hidden_json(hidden_set(r[1]) | {user}), discussion_id, int(r[0])) for r in rows])

