"""Messages of :class:`~server.store.sqlite.SqliteStore`: append, history, read marks.

A mixin over the store's ``_transaction``, ``_one``, ``_all`` and ``_appender`` (see
:mod:`server.store.sqlite`). On a file, messages go through the group-committing
:class:`~server.store.appender.Appender` and its own connection; for ``":memory:"``
(no appender) :meth:`SqliteMessages.append_message` writes in a ``BEGIN IMMEDIATE``
transaction of its own. Either way, each new message is counted for search, which
indexes them in batches (``_search_appended``, :mod:`server.store.sqlite_search`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import aiosqlite

from ..errors import MembersChanged, NotFound
from ..model import DiscussionId, SchoolId, UserId
from .appender import Appender, hidden_json, hidden_set
from .base import StoredMessage
from .times import dt, ts

__all__ = ["MESSAGE_COLUMNS", "NOT_HIDDEN", "SqliteMessages", "changed_or_missing",
           "message_from_row"]

MESSAGE_COLUMNS = "seq, sender, client_id, body, created_at, hidden_from"

# "Not hidden from the reader ?": NULL (nobody hidden, the usual case) short-circuits.
NOT_HIDDEN = ("(hidden_from IS NULL OR NOT EXISTS "
              "(SELECT 1 FROM json_each(hidden_from) WHERE value = ?))")


async def changed_or_missing(db: aiosqlite.Connection, school_id: SchoolId,
                             discussion_id: DiscussionId) -> NoReturn:
    """A write conditional on the membership version matched nothing: say why."""
    row = await (await db.execute("SELECT 1 FROM discussions WHERE school_id = ? AND id = ?",
                                  (school_id, discussion_id))).fetchone()
    if row is None:
        raise NotFound(f"no discussion {discussion_id}")
    raise MembersChanged(f"the members of discussion {discussion_id} changed")


def message_from_row(d: DiscussionId, r: Any) -> StoredMessage:
    """A :class:`StoredMessage` from a row of the ``MESSAGE_COLUMNS`` columns."""
    return StoredMessage(d, int(r[0]), UserId(r[1]), r[2], r[3], dt(r[4]), hidden_set(r[5]))


class SqliteMessages:
    """Messages and read positions for SqliteStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _one(self, sql: str, args: Sequence[Any]) -> Any: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...
        _appender: Appender | None
        def _search_appended(self) -> None: ...

    async def find_message(
        self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._one(
            "SELECT seq, body, created_at, hidden_from FROM messages "
            "WHERE school_id = ? AND discussion_id = ? AND sender = ? AND client_id = ?",
            (school_id, discussion_id, sender, client_id),
        )
        if row is None:
            return None
        return StoredMessage(discussion_id, int(row[0]), sender, client_id, row[1], dt(row[2]),
                             hidden_set(row[3]))

    async def append_message(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        now: datetime,
        hidden_from: Collection[UserId] = (),
        members_version: int | None = None,
    ) -> tuple[StoredMessage, bool]:
        hidden = frozenset(hidden_from)
        if self._appender is not None:
            appended = await self._appender.append(school_id, discussion_id, sender, client_id,
                                                   body, now=now, hidden_from=hidden,
                                                   members_version=members_version)
            self._search_appended()  # indexed in batches (sqlite_search.py)
            return appended
        at = ts(now)
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT seq, body, created_at, hidden_from FROM messages "
                    "WHERE discussion_id = ? AND sender = ? AND client_id = ?",
                    (discussion_id, sender, client_id),
                )
            ).fetchone()
            if row is not None:
                return (StoredMessage(discussion_id, int(row[0]), sender, client_id, row[1],
                                      dt(row[2]), hidden_set(row[3])), False)
            seq_row = await (
                await db.execute(
                    "UPDATE discussions SET last_seq = last_seq + 1, last_at = ? "
                    "WHERE school_id = ? AND id = ? AND (? IS NULL OR members_version = ?) "
                    "RETURNING last_seq",
                    (at, school_id, discussion_id, members_version, members_version),
                )
            ).fetchone()
            if seq_row is None:
                await changed_or_missing(db, school_id, discussion_id)
            seq = int(seq_row[0])
            await db.execute(
                "INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, body, "
                "created_at, hidden_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (school_id, discussion_id, seq, sender, client_id, body, at,
                 hidden_json(hidden)),
            )
        self._search_appended()
        return StoredMessage(discussion_id, seq, sender, client_id, body, now, hidden), True

    async def messages(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        reader: UserId | None = None,
    ) -> list[StoredMessage]:
        hidden = "" if reader is None else f"AND {NOT_HIDDEN} "
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages "
            f"WHERE school_id = ? AND discussion_id = ? AND seq < ? {hidden}"
            "ORDER BY seq DESC LIMIT ?",
            (school_id, discussion_id, before_seq if before_seq is not None else 2**62,
             *(() if reader is None else (reader,)), limit),
        )
        return [message_from_row(discussion_id, r) for r in rows]

    async def mark_read(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, seq: int
    ) -> int:
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "UPDATE participants SET read_seq = MAX(read_seq, MIN(?, "
                    "COALESCE(left_seq, (SELECT last_seq FROM discussions WHERE id = ?)))) "
                    "WHERE school_id = ? AND discussion_id = ? AND user_id = ? "
                    "RETURNING read_seq",
                    (seq, discussion_id, school_id, discussion_id, user_id),
                )
            ).fetchone()
        if row is None:
            raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
        return int(row[0])

    async def read_positions(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> dict[UserId, int]:
        rows = await self._all(
            "SELECT user_id, read_seq FROM participants "
            "WHERE school_id = ? AND discussion_id = ?", (school_id, discussion_id))
        return {UserId(r[0]): int(r[1]) for r in rows}

    async def visible_seq(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId
    ) -> int | None:
        row = await self._one(
            "SELECT COALESCE(p.left_seq, d.last_seq) FROM participants p "
            "JOIN discussions d ON d.id = p.discussion_id "
            "WHERE p.school_id = ? AND p.discussion_id = ? AND p.user_id = ?",
            (school_id, discussion_id, user_id),
        )
        return None if row is None else int(row[0])

    async def messages_after(
        self, school_id: SchoolId, discussion_id: DiscussionId, after_seq: int, *,
        upto: int | None = None, limit: int = 1000, newest: bool = False
    ) -> list[StoredMessage]:
        order = "DESC" if newest else "ASC"
        rows = list(await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages "
            "WHERE school_id = ? AND discussion_id = ? AND seq > ? AND seq <= ? "
            f"ORDER BY seq {order} LIMIT ?",
            (school_id, discussion_id, after_seq, upto if upto is not None else 2**62, limit),
        ))
        if newest:
            rows.reverse()
        return [message_from_row(discussion_id, r) for r in rows]

