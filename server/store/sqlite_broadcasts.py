"""The broadcasts tables of :class:`~server.store.sqlite.SqliteStore` (migration 0002).

A mixin: :class:`SqliteBroadcasts` uses the store's ``_transaction`` and ``_all``,
so its writes take the same lock and ``BEGIN IMMEDIATE`` as every other write.
The author's figures are counters on the ``broadcasts`` row and in
``poll_counts``, moved in the transaction that changes a recipient's row: they
are exact at each ``version``, whichever server process wrote last.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..broadcasts import (
    Answer,
    Draft,
    questions_to_json,
    tally_changes,
    target_to_json,
)
from ..errors import NotFound
from ..model import SchoolId, UserId
from ..protocol import MAX_INT
from .base import Broadcast, BroadcastStats, Receipt
from .broadcast_rows import (
    COLUMNS,
    NCOLS,
    RECEIPT,
    broadcast_from_row,
    counter,
    is_poll,
    receipt_from_row,
)
from .times import opt_dt, ts

__all__ = ["SqliteBroadcasts"]


class SqliteBroadcasts:
    """Broadcast storage for SqliteStore (see :class:`~server.store.contract.BroadcastStore`)."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        def _snapshot(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

    async def create_broadcast(
        self, school_id: SchoolId, author: UserId, draft: Draft, *, now: datetime,
        publish_at: datetime, deadline: datetime | None,
        recipients: Sequence[UserId] | None, held_for_hours: bool = False,
    ) -> tuple[Broadcast, bool]:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO broadcasts (school_id, author, client_id, kind, title, body, "
                "audience, ack_requested, questions, anonymous, deadline, created_at, "
                "publish_at, expires_at, status, published_at, n_recipients, held_for_hours) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (school_id, author, client_id) DO NOTHING",
                (school_id, author, draft.client_id, draft.kind.value, draft.title, draft.body,
                 json.dumps(target_to_json(draft.target)), int(draft.ack_requested),
                 json.dumps(questions_to_json(draft.questions)), int(draft.anonymous),
                 None if deadline is None else ts(deadline), ts(now), ts(publish_at),
                 None if draft.expires_at is None else ts(draft.expires_at),
                 "scheduled" if recipients is None else "published",
                 None if recipients is None else ts(now),
                 0 if recipients is None else len(recipients), int(held_for_hours)),
            )
            new = cursor.rowcount == 1
            row = await _fetch_one(db, f"SELECT {COLUMNS} FROM broadcasts b WHERE "
                                   "b.school_id = ? AND b.author = ? AND b.client_id = ?",
                                   (school_id, author, draft.client_id))
            assert row is not None
            if new and recipients:
                await _insert_recipients(db, int(row[0]), school_id, recipients)
            return await _broadcast(db, row), new

    async def find_broadcast(
        self, school_id: SchoolId, author: UserId, client_id: str
    ) -> Broadcast | None:
        async with self._snapshot() as db:
            row = await _fetch_one(db, f"SELECT {COLUMNS} FROM broadcasts b WHERE "
                                   "b.school_id = ? AND b.author = ? AND b.client_id = ?",
                                   (school_id, author, client_id))
            return None if row is None else await _broadcast(db, row)

    async def get_broadcast(self, school_id: SchoolId, broadcast_id: int) -> Broadcast:
        async with self._snapshot() as db:
            return await _get(db, school_id, broadcast_id)

    async def claim_due_broadcasts(self, now: datetime, *, limit: int = 100) -> list[Broadcast]:
        # Asked every second by every node: an empty answer takes no write lock.
        if not await self._all("SELECT 1 FROM broadcasts WHERE status = 'scheduled' "
                               "AND publish_at <= ? LIMIT 1", (ts(now),)):
            return []
        stale = ts(now - timedelta(minutes=1))
        async with self._transaction() as db:
            rows = await (await db.execute(
                "UPDATE broadcasts SET claimed_at = ? WHERE id IN (SELECT id FROM broadcasts "
                "WHERE status = 'scheduled' AND publish_at <= ? AND (claimed_at IS NULL OR "
                "claimed_at < ?) ORDER BY publish_at, id LIMIT ?) RETURNING id, school_id",
                (ts(now), ts(now), stale, limit))).fetchall()
            found = [await _get(db, SchoolId(r[1]), int(r[0])) for r in rows]
        return sorted(found, key=lambda b: (b.publish_at, b.id))

    async def publish_broadcast(
        self, school_id: SchoolId, broadcast_id: int, recipients: Sequence[UserId], *,
        now: datetime,
    ) -> Broadcast:
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE broadcasts SET status = 'published', published_at = ?, claimed_at = NULL, "
                "n_recipients = ?, version = version + 1 "
                "WHERE school_id = ? AND id = ? AND status = 'scheduled'",
                (ts(now), len(recipients), school_id, broadcast_id))
            if cursor.rowcount == 1:
                await _insert_recipients(db, broadcast_id, school_id, recipients)
            return await _get(db, school_id, broadcast_id)

    async def reschedule_broadcast(
        self, school_id: SchoolId, broadcast_id: int, publish_at: datetime
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE broadcasts SET publish_at = ?, claimed_at = NULL, held_for_hours = 1 "
                "WHERE school_id = ? AND id = ? AND status = 'scheduled'",
                (ts(publish_at), school_id, broadcast_id))

    async def drop_broadcast(
        self, school_id: SchoolId, broadcast_id: int, code: str, message: str
    ) -> Broadcast:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE broadcasts SET status = 'dropped', dropped_code = ?, "
                "dropped_message = ?, claimed_at = NULL, version = version + 1 "
                "WHERE school_id = ? AND id = ? AND status = 'scheduled'",
                (code, message, school_id, broadcast_id))
            return await _get(db, school_id, broadcast_id)

    async def broadcasts_received(
        self, school_id: SchoolId, user_id: UserId, *, now: datetime, limit: int = 100,
        undelivered: bool = False, before: tuple[datetime, int] | None = None,
    ) -> list[tuple[Broadcast, Receipt]]:
        only = "AND r.received_at IS NULL " if undelivered else ""
        args: tuple[object, ...] = (school_id, user_id, ts(now))
        if before is not None:
            only += "AND (b.published_at < ? OR (b.published_at = ? AND b.id < ?)) "
            args += (ts(before[0]), ts(before[0]), before[1])
        # Asked at every connection, and almost always for nothing: one cheap look first.
        if undelivered and not await self._all(
                "SELECT 1 FROM broadcast_recipients WHERE school_id = ? AND user_id = ? "
                "AND received_at IS NULL LIMIT 1", (school_id, user_id)):
            return []
        async with self._snapshot() as db:
            rows = await (await db.execute(
                f"SELECT {COLUMNS}, {RECEIPT} FROM broadcast_recipients r "
                "JOIN broadcasts b ON b.id = r.broadcast_id "
                "WHERE r.school_id = ? AND r.user_id = ? AND b.status = 'published' "
                f"AND (b.expires_at IS NULL OR b.expires_at > ?) {only}"
                "ORDER BY b.published_at DESC, b.id DESC LIMIT ?",
                (*args, limit))).fetchall()
            return [(await _broadcast(db, r[:NCOLS]), _receipt(r[NCOLS:])) for r in rows]

    async def broadcasts_sent(
        self, school_id: SchoolId, author: UserId, *, limit: int = 100,
        before: int | None = None,
    ) -> list[Broadcast]:
        async with self._snapshot() as db:
            rows = await (await db.execute(
                f"SELECT {COLUMNS} FROM broadcasts b WHERE b.school_id = ? AND b.author = ? "
                "AND b.id < ? ORDER BY b.id DESC LIMIT ?",
                (school_id, author, MAX_INT if before is None else before, limit))).fetchall()
            return [await _broadcast(db, r) for r in rows]

    async def receipt(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId
    ) -> Receipt | None:
        rows = list(await self._all(
            f"SELECT {RECEIPT} FROM broadcast_recipients r "
            "WHERE r.school_id = ? AND r.broadcast_id = ? AND r.user_id = ?",
            (school_id, broadcast_id, user_id)))
        return _receipt(rows[0]) if rows else None

    async def receipts(self, school_id: SchoolId, broadcast_id: int) -> list[Receipt]:
        rows = await self._all(
            f"SELECT {RECEIPT} FROM broadcast_recipients r "
            "WHERE r.school_id = ? AND r.broadcast_id = ? ORDER BY r.user_id",
            (school_id, broadcast_id))
        return [_receipt(r) for r in rows]

    async def mark_broadcast_received(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> BroadcastStats | None:
        if not users:
            return None
        async with self._transaction() as db:
            changed = 0
            for chunk in _chunks(users):
                marks = ",".join("?" * len(chunk))
                cursor = await db.execute(
                    "UPDATE broadcast_recipients SET received_at = ? WHERE school_id = ? AND "
                    f"broadcast_id = ? AND received_at IS NULL AND user_id IN ({marks})",
                    (ts(now), school_id, broadcast_id, *chunk))
                changed += cursor.rowcount
            if not changed:
                return None
            await db.execute("UPDATE broadcasts SET n_received = n_received + ?, "
                             "version = version + 1 WHERE id = ?", (changed, broadcast_id))
            return await _stats_of(db, broadcast_id)

    async def mark_broadcast_read(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId, *, now: datetime,
        acknowledge: bool = False,
    ) -> tuple[Receipt, BroadcastStats | None]:
        async with self._transaction() as db:
            before = await _receipt_in(db, school_id, broadcast_id, user_id)
            columns = ["received_at", "read_at"] + (["acknowledged_at"] if acknowledge else [])
            missing = [c for c in columns if getattr(before, c) is None]
            if not missing:
                return before, None
            sets = ", ".join(f"{c} = ?" for c in missing)
            await db.execute(
                f"UPDATE broadcast_recipients SET {sets} WHERE broadcast_id = ? AND user_id = ?",
                (*[ts(now)] * len(missing), broadcast_id, user_id))
            return await _counted(db, school_id, broadcast_id, user_id, missing)

    async def answer_poll(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId,
        answers: Sequence[Answer], *, now: datetime,
    ) -> tuple[Receipt, BroadcastStats]:
        async with self._transaction() as db:
            before = await _receipt_in(db, school_id, broadcast_id, user_id)
            firsts = [c for c in ("received_at", "read_at", "answered_at")
                      if getattr(before, c) is None]
            await db.execute(
                "UPDATE broadcast_recipients SET answers = ?, answered_at = ?, "
                "received_at = COALESCE(received_at, ?), read_at = COALESCE(read_at, ?) "
                "WHERE broadcast_id = ? AND user_id = ?",
                (json.dumps(list(answers)), ts(now), ts(now), ts(now), broadcast_id, user_id))
            for (question, choice), delta in tally_changes(before.answers, answers).items():
                await db.execute(
                    "INSERT INTO poll_counts (broadcast_id, question, choice, votes) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (broadcast_id, question, choice) "
                    "DO UPDATE SET votes = votes + excluded.votes",
                    (broadcast_id, question, choice, delta))
            return await _counted(db, school_id, broadcast_id, user_id, firsts)

    async def remind_broadcast(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE broadcasts SET reminded_at = ? WHERE school_id = ? "
                             "AND id = ?", (ts(now), school_id, broadcast_id))
            for chunk in _chunks(users):
                marks = ",".join("?" * len(chunk))
                await db.execute(
                    "UPDATE broadcast_recipients SET reminded_at = ? WHERE school_id = ? AND "
                    f"broadcast_id = ? AND user_id IN ({marks})",
                    (ts(now), school_id, broadcast_id, *chunk))


# ---------------------------------------------------------------------- rows


def _chunks(users: Sequence[UserId], size: int = 500) -> list[list[UserId]]:
    """SQLite caps the number of ``?`` in a statement: IN lists go in chunks."""
    items = list(users)
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _fetch_one(db: aiosqlite.Connection, sql: str, args: Sequence[Any]) -> Any:
    return await (await db.execute(sql, args)).fetchone()


async def _insert_recipients(db: aiosqlite.Connection, broadcast_id: int, school_id: SchoolId,
                             recipients: Sequence[UserId]) -> None:
    await db.executemany(
        "INSERT OR IGNORE INTO broadcast_recipients (broadcast_id, school_id, user_id) "
        "VALUES (?, ?, ?)", [(broadcast_id, school_id, u) for u in recipients])


async def _get(db: aiosqlite.Connection, school_id: SchoolId, broadcast_id: int) -> Broadcast:
    row = await _fetch_one(db, f"SELECT {COLUMNS} FROM broadcasts b "
                           "WHERE b.school_id = ? AND b.id = ?", (school_id, broadcast_id))
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id} for you")  # same words as a stranger gets
    return await _broadcast(db, row)


async def _receipt_in(db: aiosqlite.Connection, school_id: SchoolId, broadcast_id: int,
                      user_id: UserId) -> Receipt:
    row = await _fetch_one(db, f"SELECT {RECEIPT} FROM broadcast_recipients r WHERE "
                           "r.school_id = ? AND r.broadcast_id = ? AND r.user_id = ?",
                           (school_id, broadcast_id, user_id))
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id} for you")
    return _receipt(row)


async def _counted(db: aiosqlite.Connection, school_id: SchoolId, broadcast_id: int,
                   user_id: UserId, firsts: Sequence[str]) -> tuple[Receipt, BroadcastStats]:
    """Count the recipient's columns just set for the first time (``read_at`` moves
    ``n_read``…), bump the version, and return the row and the figures."""
    counters = "".join(f"{counter(c)} = {counter(c)} + 1, " for c in firsts)
    await db.execute(f"UPDATE broadcasts SET {counters}version = version + 1 WHERE id = ?",
                     (broadcast_id,))
    return (await _receipt_in(db, school_id, broadcast_id, user_id),
            await _stats_of(db, broadcast_id))


async def _stats_of(db: aiosqlite.Connection, broadcast_id: int) -> BroadcastStats:
    row = await _fetch_one(db, f"SELECT {COLUMNS} FROM broadcasts b WHERE b.id = ?",
                           (broadcast_id,))
    return (await _broadcast(db, row)).stats


async def _broadcast(db: aiosqlite.Connection, r: Sequence[Any]) -> Broadcast:
    votes: dict[tuple[int, int], int] = {}
    if is_poll(r):
        rows = await (await db.execute(
            "SELECT question, choice, votes FROM poll_counts WHERE broadcast_id = ?",
            (r[0],))).fetchall()
        votes = {(int(q), int(c)): int(n) for q, c, n in rows}
    return broadcast_from_row(r, votes, time=opt_dt, data=_json)


def _receipt(r: Sequence[Any]) -> Receipt:
    return receipt_from_row(r, time=opt_dt, data=_json)


def _json(text: str) -> Any:
    return json.loads(text)
