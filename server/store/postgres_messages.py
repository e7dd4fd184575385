"""Messages of :class:`~server.store.postgres.PostgresStore`: appending, history, replay
and read positions.

A mixin over the store's private helpers (see
:class:`~server.store.postgres_broadcasts.PostgresBroadcasts`), with the behaviour
of :class:`~server.store.sqlite.SqliteStore`. Each message takes its number from its
discussion's row, locked by the ``UPDATE`` that moves ``last_seq`` on, in the
transaction that stores it: numbers are gap-free whichever node appends, and a
message checked against the members at one version is stored only if they are still
at that version once the lock is held.

Appending a message is one statement (one round trip, its own transaction), and the
messages queued meanwhile go together in the next one
(:class:`~server.store.postgres_appender.PostgresAppender`): see
``docs/design/postgresql.md`` for why and what it costs.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import MembersChanged, NotFound, StoreError
from ..model import DiscussionId, SchoolId, UserId
from .appender import hidden_json, hidden_set
from .base import StoredMessage
from .postgres_appender import Append, PostgresAppender

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = ["MESSAGE_COLUMNS", "NOT_HIDDEN", "PostgresMessages"]

# The columns of a StoredMessage, from the messages table aliased ``m``.
MESSAGE_COLUMNS = "m.seq, m.sender, m.client_id, m.body, m.created_at, m.hidden_from"
# "Not hidden from the reader": NULL (nobody hidden, the usual case) short-circuits.
NOT_HIDDEN = "(m.hidden_from IS NULL OR NOT m.hidden_from ? {reader})"

# One message in one statement: the idempotency check, the discussion's row lock and
# seq (only on the members version the post was checked against), the insert. When
# the client's id is already stored, nothing is bumped. Two retries racing each other
# both pass the check; the second's INSERT then violates the unique key, and the whole
# statement, its seq with it, is undone (the caller then reads the first).
_APPEND = """
WITH existing AS (
    SELECT seq, body, created_at, hidden_from FROM messages
    WHERE school_id = $1 AND discussion_id = $2 AND sender = $3 AND client_id = $4
), bumped AS (
    UPDATE discussions SET last_seq = last_seq + 1, last_at = $6
    WHERE school_id = $1 AND id = $2 AND ($8::integer IS NULL OR members_version = $8)
      AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING last_seq
), inserted AS (
    INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, body,
                          created_at, hidden_from)
    SELECT $1, $2, last_seq, $3, $4, $5, $6, $7::jsonb FROM bumped
    RETURNING seq
)
SELECT (SELECT seq FROM inserted) AS new_seq, e.seq, e.body, e.created_at, e.hidden_from,
       EXISTS (SELECT 1 FROM discussions WHERE school_id = $1 AND id = $2) AS found
FROM (SELECT 1) AS one LEFT JOIN existing e ON true
"""


class PostgresMessages:
    """Messages for PostgresStore."""

    if TYPE_CHECKING:
        async def _fetch(self, sql: str, *args: Any) -> list[Record]: ...
        async def _fetchrow(self, sql: str, *args: Any) -> Record | None: ...
        async def _write(self, sql: str, *args: Any) -> list[Record]: ...
        _appender: PostgresAppender

    async def append_message(
        self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId,
        client_id: str, body: str, *, now: datetime, hidden_from: Collection[UserId] = (),
        members_version: int | None = None,
    ) -> tuple[StoredMessage, bool]:
        return await self._appender.append(Append(
            school_id, discussion_id, sender, client_id, body, now, frozenset(hidden_from),
            members_version))

    async def _append_alone(self, a: Append) -> tuple[StoredMessage, bool]:
        """One message in one statement (:data:`_APPEND`)."""
        try:
            rows = await self._write(_APPEND, a.school_id, a.discussion_id, a.sender,
                                     a.client_id, a.body, a.now, hidden_json(a.hidden_from),
                                     a.members_version)
        except StoreError as exc:
            if not isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise
            # A retry of the same message committed first (see _APPEND): it is the one.
            found = await self.find_message(a.school_id, a.discussion_id, a.sender,
                                            a.client_id)
            if found is None:
                raise
            return found, False
        row = rows[0]
        if row["new_seq"] is not None:
            return StoredMessage(a.discussion_id, int(row["new_seq"]), a.sender, a.client_id,
                                 a.body, a.now, a.hidden_from), True
        if row["seq"] is not None:
            return StoredMessage(a.discussion_id, int(row["seq"]), a.sender, a.client_id,
                                 row["body"], row["created_at"],
                                 hidden_set(row["hidden_from"])), False
        if not row["found"]:
            raise NotFound(f"no discussion {a.discussion_id}")
        raise MembersChanged(f"the members of discussion {a.discussion_id} changed")

    async def messages(
        self, school_id: SchoolId, discussion_id: DiscussionId, *,
        before_seq: int | None = None, limit: int = 50, reader: UserId | None = None,
    ) -> list[StoredMessage]:
        hidden = "" if reader is None else f"AND {NOT_HIDDEN.format(reader='$5')} "
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE school_id = $1 AND discussion_id = $2 "
            f"AND seq < $3 {hidden}ORDER BY seq DESC LIMIT $4",
            school_id, discussion_id, before_seq if before_seq is not None else 2**62, limit,
            *(() if reader is None else (reader,)))
        return [_message_from_row(discussion_id, r) for r in rows]

    async def find_message(
        self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE school_id = $1 AND discussion_id = $2 "
            "AND sender = $3 AND client_id = $4", school_id, discussion_id, sender, client_id)
        return None if row is None else _message_from_row(discussion_id, row)

    async def mark_read(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, seq: int
    ) -> int:
        rows = await self._write(
            "UPDATE participants p SET read_seq = GREATEST(p.read_seq, "
            "LEAST($4, COALESCE(p.left_seq, d.last_seq))) FROM discussions d "
            "WHERE d.school_id = p.school_id AND d.id = p.discussion_id "
            "AND p.school_id = $1 AND p.discussion_id = $2 AND p.user_id = $3 "
            "RETURNING p.read_seq", school_id, discussion_id, user_id, seq)
        if not rows:
            raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
        return int(rows[0][0])

    async def read_positions(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> dict[UserId, int]:
        rows = await self._fetch(
            "SELECT user_id, read_seq FROM participants "
            "WHERE school_id = $1 AND discussion_id = $2", school_id, discussion_id)
        return {UserId(r[0]): int(r[1]) for r in rows}

    async def visible_seq(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId
    ) -> int | None:
        row = await self._fetchrow(
            "SELECT COALESCE(p.left_seq, d.last_seq) FROM participants p "
            "JOIN discussions d ON d.school_id = p.school_id AND d.id = p.discussion_id "
            "WHERE p.school_id = $1 AND p.discussion_id = $2 AND p.user_id = $3",
            school_id, discussion_id, user_id)
        return None if row is None else int(row[0])

    async def messages_after(
        self, school_id: SchoolId, discussion_id: DiscussionId, after_seq: int, *,
        upto: int | None = None, limit: int = 1000, newest: bool = False
    ) -> list[StoredMessage]:
        order = "DESC" if newest else "ASC"
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE school_id = $1 AND discussion_id = $2 "
            f"AND seq > $3 AND seq <= $4 ORDER BY seq {order} LIMIT $5",
            school_id, discussion_id, after_seq, upto if upto is not None else 2**62, limit)
        out = [_message_from_row(discussion_id, r) for r in rows]
        if newest:
            out.reverse()
        return out


def _message_from_row(discussion_id: DiscussionId, r: Record) -> StoredMessage:
    """A :class:`StoredMessage` from a row of the ``MESSAGE_COLUMNS``."""
    return StoredMessage(discussion_id, int(r[0]), UserId(r[1]), r[2], r[3], r[4],
                         hidden_set(r[5]))
