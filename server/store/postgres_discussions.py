"""Discussions of :class:`~server.store.postgres.PostgresStore`: starts, members, lists.

A mixin over the store's private helpers (see
:class:`~server.store.postgres_broadcasts.PostgresBroadcasts`), with the behaviour
of :class:`~server.store.sqlite.SqliteStore`. Joins and leaves bump the discussion's
``members_version`` under the lock on its row, the lock each message takes too
(:mod:`server.store.postgres_messages`): a message is ordered before or after a
change of members, never beside it. A start is one statement: the discussion, its
participants and its first message exist together or not at all, once per
(school, creator, client id).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import MembersChanged, NotFound, StoreBusy
from ..model import DiscussionId, DiscussionMembers, Participant, SchoolId, UserId
from .appender import hidden_set
from .base import AlreadyStarted, Discussion, DiscussionSummary, StoredMessage
from .postgres_messages import MESSAGE_COLUMNS, NOT_HIDDEN

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[Record]

__all__ = ["PostgresDiscussions"]


# The columns of a summary: the discussion, the reader's position, the last message
# they may see and how many after their read position are hidden from them.
_SUMMARY = f"""
SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq, p.read_seq,
       COALESCE(p.left_seq, d.last_seq) AS visible, d.last_at, p.user_id,
       m.seq, m.sender, m.client_id, m.body, m.created_at, m.hidden_from,
       (SELECT count(*) FROM messages h
        WHERE h.school_id = d.school_id AND h.discussion_id = d.id AND h.seq > p.read_seq
          AND h.seq <= COALESCE(p.left_seq, d.last_seq) AND h.hidden_from IS NOT NULL
          AND h.hidden_from ? p.user_id) AS hidden_unread
FROM participants p
JOIN discussions d ON d.school_id = p.school_id AND d.id = p.discussion_id
LEFT JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM messages m
    WHERE m.school_id = d.school_id AND m.discussion_id = d.id
      AND m.seq <= COALESCE(p.left_seq, d.last_seq)
      AND {NOT_HIDDEN.format(reader="p.user_id")}
    ORDER BY m.seq DESC LIMIT 1
) m ON true
"""


class PostgresDiscussions:
    """Discussions, participants and discussion lists for PostgresStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[Connection]: ...
        def _snapshot(self) -> AbstractAsyncContextManager[Connection]: ...
        async def _fetch(self, sql: str, *args: Any) -> list[Record]: ...
        async def _fetchrow(self, sql: str, *args: Any) -> Record | None: ...
        async def _write(self, sql: str, *args: Any) -> list[Record]: ...

    async def create_discussion(
        self, school_id: SchoolId, creator: UserId, subject: str,
        recipients: Sequence[UserId], *, now: datetime,
        first: tuple[str, str] | None = None,
    ) -> DiscussionMembers:
        others = [r for r in dict.fromkeys(recipients) if r != creator]
        users = [creator, *others]
        # One statement, so one transaction: the discussion, its participants (the
        # creator first, then the recipients in order) and its first message. A start
        # is unique by (school, creator, client id): the same start being stored by
        # another connection makes this insert wait for it, then insert nothing (and
        # nothing after it, all selected from its rows).
        row = await self._write(
            "WITH d AS (INSERT INTO discussions (school_id, subject, created_by, created_at, "
            "last_at, last_seq, start_client_id) VALUES ($1, $2, $3, $4, $4, $5, $7) "
            "ON CONFLICT (school_id, created_by, start_client_id) "
            "WHERE start_client_id IS NOT NULL DO NOTHING RETURNING id), "
            "p AS (INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
            "joined_at) SELECT $1, d.id, u.user_id, CASE WHEN u.n > 1 THEN $3 END, $4 "
            "FROM d, unnest($6::text[]) WITH ORDINALITY AS u(user_id, n) ORDER BY u.n), "
            "m AS (INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, "
            "body, created_at) SELECT $1, d.id, 1, $3, $7, $8, $4 FROM d "
            "WHERE $7::text IS NOT NULL) "
            "SELECT id FROM d",
            school_id, subject, creator, now, 0 if first is None else 1, users,
            None if first is None else first[0], None if first is None else first[1])
        if not row:
            assert first is not None
            earlier = await self.find_started(school_id, creator, first[0])
            if earlier is None:  # the other start was committed: only if it has gone since
                raise StoreBusy(f"starting {first[0]!r}: another start of it came and went")
            raise AlreadyStarted(earlier)
        did = DiscussionId(int(row[0][0]))
        return DiscussionMembers(did, 1, tuple(
            Participant(u, None if u == creator else creator, now) for u in users))

    async def get_discussion(self, school_id: SchoolId, discussion_id: DiscussionId) -> Discussion:
        row = await self._fetchrow(
            "SELECT subject, created_by, created_at, last_seq FROM discussions "
            "WHERE school_id = $1 AND id = $2", school_id, discussion_id)
        if row is None:
            raise NotFound(f"no discussion {discussion_id}")
        return Discussion(discussion_id, school_id, row[0], UserId(row[1]), row[2], int(row[3]))

    async def find_started(
        self, school_id: SchoolId, creator: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._fetchrow(
            "SELECT d.id, m.body, m.created_at FROM discussions d "
            "JOIN messages m ON m.school_id = d.school_id AND m.discussion_id = d.id "
            "AND m.seq = 1 WHERE d.school_id = $1 AND d.created_by = $2 "
            "AND d.start_client_id = $3", school_id, creator, client_id)
        if row is None:
            return None
        return StoredMessage(DiscussionId(int(row[0])), 1, creator, client_id, row[1], row[2])

    async def members(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> DiscussionMembers:
        return _members(discussion_id, await self._fetch(_MEMBERS, school_id, discussion_id))

    async def add_participant(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, *,
        invited_by: UserId, now: datetime, members_version: int | None = None,
        readable_authors: Collection[UserId] | None = None,
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            last_seq = await _bump_members(db, school_id, discussion_id, members_version)
            left_seq = await db.fetchrow(
                "SELECT left_seq FROM participants WHERE school_id = $1 "
                "AND discussion_id = $2 AND user_id = $3", school_id, discussion_id, user_id)
            # What they have not been part of: everything for a newcomer, what came after
            # they left for someone coming back (left_seq is NULL while present).
            since = (0 if left_seq is None else last_seq if left_seq[0] is None
                     else int(left_seq[0]))
            await db.execute(
                "INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
                "joined_at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (school_id, discussion_id, user_id) "
                "DO UPDATE SET invited_by = excluded.invited_by, "
                "joined_at = excluded.joined_at, left_at = NULL, left_seq = NULL",
                school_id, discussion_id, user_id, invited_by, now)
            if readable_authors is not None and since < last_seq:
                # Kept a sorted list (by code point, as Python sorts: COLLATE "C").
                await db.execute(
                    "UPDATE messages SET hidden_from = (SELECT jsonb_agg(u ORDER BY u "
                    "COLLATE \"C\") FROM (SELECT jsonb_array_elements_text("
                    "COALESCE(hidden_from, '[]'::jsonb)) UNION SELECT $3::text) AS s(u)) "
                    "WHERE school_id = $1 AND discussion_id = $2 AND seq > $4 AND seq <= $5 "
                    "AND sender <> ALL($6::text[])",
                    school_id, discussion_id, user_id, since, last_seq,
                    sorted(readable_authors))
            return _members(discussion_id, await db.fetch(_MEMBERS, school_id, discussion_id))

    async def leave(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, *,
        now: datetime,
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            last_seq = await _bump_members(db, school_id, discussion_id)
            done = await db.fetchval(
                "UPDATE participants SET left_at = $4, left_seq = $5 WHERE school_id = $1 "
                "AND discussion_id = $2 AND user_id = $3 AND left_at IS NULL RETURNING true",
                school_id, discussion_id, user_id, now, last_seq)
            if done is None:
                raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
            return _members(discussion_id, await db.fetch(_MEMBERS, school_id, discussion_id))

    async def discussions_of(self, school_id: SchoolId, user_id: UserId) -> list[Discussion]:
        rows = await self._fetch(
            "SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq FROM discussions d "
            "JOIN participants p ON p.school_id = d.school_id AND p.discussion_id = d.id "
            "WHERE p.school_id = $1 AND p.user_id = $2 ORDER BY d.last_at DESC, d.id DESC",
            school_id, user_id)
        return [Discussion(DiscussionId(int(r[0])), school_id, r[1], UserId(r[2]), r[3],
                           int(r[4])) for r in rows]

    async def present_discussions(self, school_id: SchoolId, user_id: UserId) -> list[DiscussionId]:
        rows = await self._fetch(
            "SELECT discussion_id FROM participants "
            "WHERE school_id = $1 AND user_id = $2 AND left_at IS NULL", school_id, user_id)
        return [DiscussionId(int(r[0])) for r in rows]

    async def summaries(
        self, school_id: SchoolId, user_id: UserId, *, limit: int = 200,
        discussion_id: DiscussionId | None = None,
        before: tuple[datetime, DiscussionId] | None = None,
    ) -> list[DiscussionSummary]:
        where = "WHERE p.school_id = $1 AND p.user_id = $2 AND ($3::bigint IS NULL OR d.id = $3) "
        args: list[Any] = [school_id, user_id, discussion_id, limit]
        if before is not None:
            where += "AND (d.last_at < $5 OR (d.last_at = $5 AND d.id < $6)) "
            args += [before[0], before[1]]
        # One snapshot: the members agree with the positions and messages read.
        async with self._snapshot() as db:
            rows = await db.fetch(f"{_SUMMARY} {where} ORDER BY d.last_at DESC, d.id DESC "
                                  "LIMIT $4", *args)
            members = await _members_of(db, school_id, [int(r[0]) for r in rows])
        return [_summary(school_id, r, members[int(r[0])], with_last_at=True) for r in rows]

    async def discussion_summaries(
        self, school_id: SchoolId, discussion_id: DiscussionId, users: Sequence[UserId]
    ) -> dict[UserId, DiscussionSummary]:
        async with self._snapshot() as db:
            rows = await db.fetch(
                f"{_SUMMARY} WHERE p.school_id = $1 AND p.discussion_id = $2 "
                "AND p.user_id = ANY($3::text[])", school_id, discussion_id, sorted(set(users)))
            if not rows:
                return {}
            members = await _members_of(db, school_id, [discussion_id])
        return {UserId(r[8]): _summary(school_id, r, members[discussion_id], with_last_at=False)
                for r in rows}

    async def recent_starts(self, school_id: SchoolId, user_id: UserId, *, since: datetime,
                            limit: int) -> list[datetime]:
        rows = await self._fetch(
            "SELECT at FROM (SELECT created_at AS at FROM discussions "
            "WHERE school_id = $1 AND created_by = $2 AND created_at > $3 "
            "UNION ALL SELECT created_at FROM held WHERE school_id = $1 AND sender = $2 "
            "AND discussion_id IS NULL AND created_at > $3) AS starts "
            "ORDER BY at DESC LIMIT $4", school_id, user_id, since, limit)
        return [r[0] for r in rows]


# ---------------------------------------------------------------------- helpers

# A discussion's membership version and participants in their order (one row per
# participant; one row with NULLs if it has none; no row if it is not in the school).
_MEMBERS = ("SELECT d.members_version, p.user_id, p.invited_by, p.joined_at, p.left_at "
            "FROM discussions d LEFT JOIN participants p "
            "ON p.school_id = d.school_id AND p.discussion_id = d.id "
            "WHERE d.school_id = $1 AND d.id = $2 ORDER BY p.rowid")


def _members(discussion_id: DiscussionId, rows: Sequence[Record]) -> DiscussionMembers:
    if not rows:
        raise NotFound(f"no discussion {discussion_id}")
    return DiscussionMembers(
        id=discussion_id, version=int(rows[0][0]),
        participants=tuple(
            Participant(UserId(r[1]), None if r[2] is None else UserId(r[2]), r[3], r[4])
            for r in rows if r[1] is not None))


async def _members_of(db: Connection, school_id: SchoolId,
                      ids: Sequence[int]) -> dict[int, DiscussionMembers]:
    """The members of several discussions, in one query."""
    rows = await db.fetch(
        "SELECT d.id, d.members_version, p.user_id, p.invited_by, p.joined_at, p.left_at "
        "FROM discussions d JOIN participants p "
        "ON p.school_id = d.school_id AND p.discussion_id = d.id "
        "WHERE d.school_id = $1 AND d.id = ANY($2::bigint[]) ORDER BY d.id, p.rowid",
        school_id, list(ids))
    grouped: dict[int, list[Record]] = {}
    for r in rows:
        grouped.setdefault(int(r[0]), []).append(r)
    return {did: DiscussionMembers(DiscussionId(did), int(rs[0][1]), tuple(
        Participant(UserId(r[2]), None if r[3] is None else UserId(r[3]), r[4], r[5])
        for r in rs)) for did, rs in grouped.items()}


def _summary(school_id: SchoolId, r: Record, members: DiscussionMembers, *,
             with_last_at: bool) -> DiscussionSummary:
    did = DiscussionId(int(r[0]))
    last = None if r[9] is None else StoredMessage(
        did, int(r[9]), UserId(r[10]), r[11], r[12], r[13], hidden_set(r[14]))
    return DiscussionSummary(
        Discussion(did, school_id, r[1], UserId(r[2]), r[3], int(r[4])), members,
        int(r[5]), int(r[6]), last, r[7] if with_last_at else None, int(r[15]))


async def _bump_members(db: Connection, school_id: SchoolId, discussion_id: DiscussionId,
                        expected: int | None = None) -> int:
    """Move the membership version on (only from ``expected`` if given), taking the
    discussion's row lock until the end of the transaction; returns its ``last_seq``,
    exact under that lock."""
    last_seq = await db.fetchval(
        "UPDATE discussions SET members_version = members_version + 1 "
        "WHERE school_id = $1 AND id = $2 AND ($3::integer IS NULL OR members_version = $3) "
        "RETURNING last_seq", school_id, discussion_id, expected)
    if last_seq is None:
        await _changed_or_missing(db, school_id, discussion_id)
    return int(last_seq)


async def _changed_or_missing(db: Connection, school_id: SchoolId,
                              discussion_id: DiscussionId) -> NoReturn:
    """A write conditional on the membership version matched nothing: say why."""
    if await db.fetchval("SELECT 1 FROM discussions WHERE school_id = $1 AND id = $2",
                         school_id, discussion_id) is None:
        raise NotFound(f"no discussion {discussion_id}")
    raise MembersChanged(f"the members of discussion {discussion_id} changed")
