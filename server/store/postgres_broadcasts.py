"""The broadcasts tables of :class:`~server.store.postgres.PostgresStore` (migration 0002).

A mixin: :class:`PostgresBroadcasts` uses the store's ``_transaction``, ``_snapshot``,
``_fetch`` and ``_fetchrow``, so its errors are translated like every other query's.

Several nodes write at once here, unlike SQLite's single writer, so one rule keeps
the author's figures exact: every write that changes a recipient's row first locks
the broadcast's row (``FOR NO KEY UPDATE``) and moves its counters, its ``version``
and its ``poll_counts`` in the same transaction. Writes to one broadcast therefore
queue behind each other (a few milliseconds each), each sees the rows the previous
one committed, and as they all take their locks in the same order (broadcast, then
recipients, then counts) they never deadlock. Writes to different broadcasts do not
wait for each other. Publication of scheduled broadcasts is claimed with
``FOR UPDATE SKIP LOCKED``: when several nodes ask at once, each broadcast goes to
exactly one of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..broadcasts import Answer, Draft, questions_to_json, tally_changes, target_to_json
from ..errors import NotFound
from ..model import SchoolId, UserId
from ..protocol import MAX_INT
from .base import Broadcast, BroadcastStats, Receipt
from .broadcast_rows import (
    COLUMNS,
    NCOLS,
    RECEIPT,
    Row,
    broadcast_from_row,
    counter,
    is_poll,
    receipt_from_row,
)

__all__ = ["PostgresBroadcasts"]

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Db = PoolConnectionProxy[Record]

_SELECT = f"SELECT {COLUMNS} FROM broadcasts b "


class PostgresBroadcasts:
    """Broadcast storage for PostgresStore (see :class:`~server.store.contract.BroadcastStore`)."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[Db]:
            """A connection inside a read-write transaction (READ COMMITTED), committed
            when the block ends; any failure rolls it back, and a driver error comes
            out as the store's own (:mod:`server.store.postgres_failures`). Statements
            on the connection raise asyncpg's errors; leave them to this helper."""

        def _snapshot(self) -> AbstractAsyncContextManager[Db]:
            """A connection inside a read-only REPEATABLE READ transaction: several
            reads that must agree with each other (one snapshot); errors translated."""

        async def _fetch(self, sql: str, *args: Any) -> list[Record]:
            """One read in autocommit mode on a pooled connection; errors translated."""

        async def _fetchrow(self, sql: str, *args: Any) -> Record | None:
            """One row (or ``None``) read in autocommit mode; errors translated."""

    async def create_broadcast(
        self, school_id: SchoolId, author: UserId, draft: Draft, *, now: datetime,
        publish_at: datetime, deadline: datetime | None,
        recipients: Sequence[UserId] | None, held_for_hours: bool = False,
    ) -> tuple[Broadcast, bool]:
        async with self._transaction() as db:
            # A retry racing the original waits for it here, then finds its row below.
            new = await db.fetchval(
                "INSERT INTO broadcasts (school_id, author, client_id, kind, title, body, "
                "audience, ack_requested, questions, anonymous, deadline, created_at, "
                "publish_at, expires_at, status, published_at, n_recipients, held_for_hours) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, $10, $11, $12, $13, "
                "$14, $15, $16, $17, $18) "
                "ON CONFLICT (school_id, author, client_id) DO NOTHING RETURNING id",
                school_id, author, draft.client_id, draft.kind.value, draft.title, draft.body,
                json.dumps(target_to_json(draft.target)), draft.ack_requested,
                json.dumps(questions_to_json(draft.questions)), draft.anonymous, deadline, now,
                publish_at, draft.expires_at,
                "scheduled" if recipients is None else "published",
                None if recipients is None else now,
                0 if recipients is None else len(recipients), held_for_hours)
            if new is not None and recipients:
                await _insert_recipients(db, school_id, int(new), recipients)
            row = await db.fetchrow(_SELECT + "WHERE b.school_id = $1 AND b.author = $2 "
                                    "AND b.client_id = $3", school_id, author, draft.client_id)
            assert row is not None
            return await _broadcast(db, row), new is not None

    async def find_broadcast(
        self, school_id: SchoolId, author: UserId, client_id: str
    ) -> Broadcast | None:
        async with self._snapshot() as db:
            row = await db.fetchrow(_SELECT + "WHERE b.school_id = $1 AND b.author = $2 "
                                    "AND b.client_id = $3", school_id, author, client_id)
            return None if row is None else await _broadcast(db, row)

    async def get_broadcast(self, school_id: SchoolId, broadcast_id: int) -> Broadcast:
        async with self._snapshot() as db:
            return await _get(db, school_id, broadcast_id)

    async def claim_due_broadcasts(self, now: datetime, *, limit: int = 100) -> list[Broadcast]:
        # Asked every second by every node: an empty answer opens no write transaction.
        if await self._fetchrow("SELECT 1 FROM broadcasts WHERE status = 'scheduled' "
                                "AND publish_at <= $1 LIMIT 1", now) is None:
            return []
        async with self._transaction() as db:
            # Rows another node is claiming right now are skipped, not waited for: it
            # gets them, this node gets the others, and none goes to both.
            rows = await db.fetch(
                f"UPDATE broadcasts b SET claimed_at = $1 WHERE (b.school_id, b.id) IN ("
                "SELECT school_id, id FROM broadcasts WHERE status = 'scheduled' "
                "AND publish_at <= $1 AND (claimed_at IS NULL OR claimed_at < $2) "
                "ORDER BY publish_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
                f"RETURNING {COLUMNS}", now, now - timedelta(minutes=1), limit)
            found = await _broadcasts(db, rows)
        return sorted(found, key=lambda b: (b.publish_at, b.id))

    async def publish_broadcast(
        self, school_id: SchoolId, broadcast_id: int, recipients: Sequence[UserId], *,
        now: datetime,
    ) -> Broadcast:
        async with self._transaction() as db:
            published = await db.fetchval(
                "UPDATE broadcasts SET status = 'published', published_at = $1, "
                "claimed_at = NULL, n_recipients = $2, version = version + 1 "
                "WHERE school_id = $3 AND id = $4 AND status = 'scheduled' RETURNING id",
                now, len(recipients), school_id, broadcast_id)
            if published is not None:
                await _insert_recipients(db, school_id, broadcast_id, recipients)
            return await _get(db, school_id, broadcast_id)

    async def reschedule_broadcast(
        self, school_id: SchoolId, broadcast_id: int, publish_at: datetime
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE broadcasts SET publish_at = $1, claimed_at = NULL, "
                "held_for_hours = true "
                "WHERE school_id = $2 AND id = $3 AND status = 'scheduled'",
                publish_at, school_id, broadcast_id)

    async def drop_broadcast(
        self, school_id: SchoolId, broadcast_id: int, code: str, message: str
    ) -> Broadcast:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE broadcasts SET status = 'dropped', dropped_code = $1, "
                "dropped_message = $2, claimed_at = NULL, version = version + 1 "
                "WHERE school_id = $3 AND id = $4 AND status = 'scheduled'",
                code, message, school_id, broadcast_id)
            return await _get(db, school_id, broadcast_id)

    async def broadcasts_received(
        self, school_id: SchoolId, user_id: UserId, *, now: datetime, limit: int = 100,
        undelivered: bool = False, before: tuple[datetime, int] | None = None,
    ) -> list[tuple[Broadcast, Receipt]]:
        only = "AND r.received_at IS NULL " if undelivered else ""
        if before is not None:
            only += "AND (b.published_at, b.id) < ($5, $6) "
        # Asked at every connection, and almost always for nothing: one cheap look first.
        if undelivered and await self._fetchrow(
                "SELECT 1 FROM broadcast_recipients WHERE school_id = $1 AND user_id = $2 "
                "AND received_at IS NULL LIMIT 1", school_id, user_id) is None:
            return []
        async with self._snapshot() as db:
            rows = await db.fetch(
                f"SELECT {COLUMNS}, {RECEIPT} FROM broadcast_recipients r "
                "JOIN broadcasts b ON b.school_id = r.school_id AND b.id = r.broadcast_id "
                "WHERE r.school_id = $1 AND r.user_id = $2 AND b.status = 'published' "
                f"AND (b.expires_at IS NULL OR b.expires_at > $3) {only}"
                "ORDER BY b.published_at DESC, b.id DESC LIMIT $4",
                school_id, user_id, now, limit, *(() if before is None else before))
            found = await _broadcasts(db, [r[:NCOLS] for r in rows])
        return [(b, _receipt(r[NCOLS:])) for b, r in zip(found, rows, strict=True)]

    async def broadcasts_sent(
        self, school_id: SchoolId, author: UserId, *, limit: int = 100,
        before: int | None = None,
    ) -> list[Broadcast]:
        async with self._snapshot() as db:
            rows = await db.fetch(_SELECT + "WHERE b.school_id = $1 AND b.author = $2 "
                                  "AND b.id < $4 ORDER BY b.id DESC LIMIT $3", school_id,
                                  author, limit, MAX_INT if before is None else before)
            return await _broadcasts(db, rows)

    async def receipt(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId
    ) -> Receipt | None:
        row = await self._fetchrow(
            f"SELECT {RECEIPT} FROM broadcast_recipients r "
            "WHERE r.school_id = $1 AND r.broadcast_id = $2 AND r.user_id = $3",
            school_id, broadcast_id, user_id)
        return None if row is None else _receipt(row)

    async def receipts(self, school_id: SchoolId, broadcast_id: int) -> list[Receipt]:
        rows = await self._fetch(
            f"SELECT {RECEIPT} FROM broadcast_recipients r "
            "WHERE r.school_id = $1 AND r.broadcast_id = $2 ORDER BY r.user_id",
            school_id, broadcast_id)
        return [_receipt(r) for r in rows]

    async def mark_broadcast_received(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> BroadcastStats | None:
        if not users:
            return None
        async with self._transaction() as db:
            if not await _lock(db, school_id, broadcast_id):
                return None
            changed = await db.fetch(
                "UPDATE broadcast_recipients SET received_at = $1 WHERE school_id = $2 "
                "AND broadcast_id = $3 AND received_at IS NULL AND user_id = ANY($4::text[]) "
                "RETURNING 1", now, school_id, broadcast_id, list(users))
            if not changed:
                return None
            return await _count(db, school_id, broadcast_id, {"received_at": len(changed)})

    async def mark_broadcast_read(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId, *, now: datetime,
        acknowledge: bool = False,
    ) -> tuple[Receipt, BroadcastStats | None]:
        async with self._transaction() as db:
            before = await _locked_receipt(db, school_id, broadcast_id, user_id)
            columns = ["received_at", "read_at"] + (["acknowledged_at"] if acknowledge else [])
            missing = [c for c in columns if getattr(before, c) is None]
            if not missing:
                return before, None
            sets = ", ".join(f"{c} = $4" for c in missing)
            row = await db.fetchrow(
                f"UPDATE broadcast_recipients r SET {sets} WHERE r.school_id = $1 "
                f"AND r.broadcast_id = $2 AND r.user_id = $3 RETURNING {RECEIPT}",
                school_id, broadcast_id, user_id, now)
            assert row is not None
            return _receipt(row), await _count(db, school_id, broadcast_id,
                                               dict.fromkeys(missing, 1))

    async def answer_poll(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId,
        answers: Sequence[Answer], *, now: datetime,
    ) -> tuple[Receipt, BroadcastStats]:
        async with self._transaction() as db:
            before = await _locked_receipt(db, school_id, broadcast_id, user_id)
            firsts = [c for c in ("received_at", "read_at", "answered_at")
                      if getattr(before, c) is None]
            row = await db.fetchrow(
                "UPDATE broadcast_recipients r SET answers = $4::jsonb, answered_at = $5, "
                "received_at = COALESCE(received_at, $5), read_at = COALESCE(read_at, $5) "
                f"WHERE r.school_id = $1 AND r.broadcast_id = $2 AND r.user_id = $3 "
                f"RETURNING {RECEIPT}",
                school_id, broadcast_id, user_id, json.dumps(list(answers)), now)
            assert row is not None
            changes = tally_changes(before.answers, answers)
            if changes:
                await db.execute(
                    "INSERT INTO poll_counts (school_id, broadcast_id, question, choice, votes) "
                    "SELECT $1, $2, q, c, v FROM unnest($3::integer[], $4::integer[], "
                    "$5::integer[]) AS t (q, c, v) "
                    "ON CONFLICT (school_id, broadcast_id, question, choice) "
                    "DO UPDATE SET votes = poll_counts.votes + excluded.votes",
                    school_id, broadcast_id, [q for q, _ in changes], [c for _, c in changes],
                    list(changes.values()))
            return _receipt(row), await _count(db, school_id, broadcast_id,
                                               dict.fromkeys(firsts, 1))

    async def remind_broadcast(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> None:
        async with self._transaction() as db:
            # The broadcast's row first, as every write to its recipients does.
            await db.execute("UPDATE broadcasts SET reminded_at = $1 WHERE school_id = $2 "
                             "AND id = $3", now, school_id, broadcast_id)
            await db.execute(
                "UPDATE broadcast_recipients SET reminded_at = $1 WHERE school_id = $2 "
                "AND broadcast_id = $3 AND user_id = ANY($4::text[])",
                now, school_id, broadcast_id, list(users))


# ---------------------------------------------------------------------- rows


async def _insert_recipients(db: Db, school_id: SchoolId, broadcast_id: int,
                             recipients: Sequence[UserId]) -> None:
    await db.execute(
        "INSERT INTO broadcast_recipients (school_id, broadcast_id, user_id) "
        "SELECT $1, $2, u FROM unnest($3::text[]) AS t (u) ON CONFLICT DO NOTHING",
        school_id, broadcast_id, list(recipients))


async def _lock(db: Db, school_id: SchoolId, broadcast_id: int) -> bool:
    """Take the broadcast's row for this transaction (see the module's docstring)."""
    return await db.fetchval("SELECT true FROM broadcasts WHERE school_id = $1 AND id = $2 "
                             "FOR NO KEY UPDATE", school_id, broadcast_id) is not None


async def _locked_receipt(db: Db, school_id: SchoolId, broadcast_id: int,
                          user_id: UserId) -> Receipt:
    """The recipient's row as the last write to the broadcast left it."""
    row = None
    if await _lock(db, school_id, broadcast_id):
        row = await db.fetchrow(
            f"SELECT {RECEIPT} FROM broadcast_recipients r WHERE r.school_id = $1 "
            "AND r.broadcast_id = $2 AND r.user_id = $3", school_id, broadcast_id, user_id)
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id} for you")  # same words as a stranger gets
    return _receipt(row)


async def _count(db: Db, school_id: SchoolId, broadcast_id: int,
                 firsts: dict[str, int]) -> BroadcastStats:
    """Move the counters of the recipients' columns set for the first time
    (``{"read_at": 1}`` moves ``n_read``), bump the version, return the figures."""
    counters = "".join(f"{counter(c)} = {counter(c)} + {int(n)}, " for c, n in firsts.items())
    row = await db.fetchrow(
        f"UPDATE broadcasts b SET {counters}version = version + 1 "
        f"WHERE b.school_id = $1 AND b.id = $2 RETURNING {COLUMNS}", school_id, broadcast_id)
    assert row is not None  # locked by this transaction
    return (await _broadcast(db, row)).stats


async def _get(db: Db, school_id: SchoolId, broadcast_id: int) -> Broadcast:
    row = await db.fetchrow(_SELECT + "WHERE b.school_id = $1 AND b.id = $2",
                            school_id, broadcast_id)
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id} for you")  # same words as a stranger gets
    return await _broadcast(db, row)


async def _broadcast(db: Db, row: Row) -> Broadcast:
    return (await _broadcasts(db, [row]))[0]


async def _broadcasts(db: Db, rows: Sequence[Row]) -> list[Broadcast]:
    """Rows of :data:`COLUMNS`, with the counts of the polls among them (one query per
    school: a poll's counts are keyed by its school)."""
    polls: dict[str, list[int]] = {}
    for r in rows:
        if is_poll(r):
            polls.setdefault(r[1], []).append(int(r[0]))
    votes: dict[int, dict[tuple[int, int], int]] = {}
    for school_id, ids in polls.items():
        for broadcast_id, q, c, n in await db.fetch(
                "SELECT broadcast_id, question, choice, votes FROM poll_counts "
                "WHERE school_id = $1 AND broadcast_id = ANY($2::bigint[])", school_id, ids):
            votes.setdefault(int(broadcast_id), {})[(int(q), int(c))] = int(n)
    return [broadcast_from_row(r, votes.get(int(r[0]), {}), time=_time, data=_data)
            for r in rows]


def _receipt(row: Row) -> Receipt:
    return receipt_from_row(row, time=_time, data=_data)


def _time(value: datetime | None) -> datetime | None:
    return value  # timestamptz comes back as an aware datetime in UTC


def _data(value: str) -> Any:
    return json.loads(value)  # jsonb comes back as its text
