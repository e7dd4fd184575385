"""Held messages (defer mode) of :class:`~server.store.sqlite.SqliteStore`.

A mixin over the store's ``_transaction`` and ``_all`` (see :mod:`server.store.sqlite`).
Every node asks every second for the held messages that are due:
:meth:`SqliteHeld.claim_due` looks before it takes the write lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..model import DiscussionId, SchoolId, UserId
from .base import HeldMessage
from .times import dt, ts

__all__ = ["SqliteHeld"]

_HELD = ("id, school_id, sender, client_id, discussion_id, subject, recipients, body, "
         "created_at, release_at")


def _held(r: Any) -> HeldMessage:
    return HeldMessage(int(r[0]), SchoolId(r[1]), UserId(r[2]), r[3],
                       None if r[4] is None else DiscussionId(r[4]), r[5],
                       tuple(UserId(u) for u in json.loads(r[6] or "[]")), r[7], dt(r[8]),
                       dt(r[9]))


class SqliteHeld:
    """Held messages for SqliteStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

    async def hold(
        self,
        school_id: SchoolId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        discussion_id: DiscussionId | None,
        subject: str | None,
        recipients: Sequence[UserId],
        now: datetime,
        release_at: datetime,
    ) -> tuple[HeldMessage, bool]:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO held (school_id, sender, client_id, discussion_id, subject, "
                "recipients, body, created_at, release_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (school_id, sender, client_id) DO NOTHING",
                (school_id, sender, client_id, discussion_id, subject,
                 json.dumps(list(recipients)), body, ts(now), ts(release_at)),
            )
            new = cursor.rowcount == 1
            row = await (
                await db.execute(f"SELECT {_HELD} FROM held "
                                 "WHERE school_id = ? AND sender = ? AND client_id = ?",
                                 (school_id, sender, client_id))
            ).fetchone()
        assert row is not None
        return _held(row), new

    async def claim_due(self, now: datetime, *, limit: int = 100) -> list[HeldMessage]:
        # Every node asks every second: look first, so that an empty answer takes no
        # write lock away from the appender's commits.
        if not await self._all("SELECT 1 FROM held WHERE release_at <= ? LIMIT 1", (ts(now),)):
            return []
        stale = ts(now - timedelta(minutes=1))
        async with self._transaction() as db:
            rows = await (
                await db.execute(
                    f"UPDATE held SET claimed_at = ? WHERE id IN (SELECT id FROM held "
                    "WHERE release_at <= ? AND (claimed_at IS NULL OR claimed_at < ?) "
                    f"ORDER BY id LIMIT ?) RETURNING {_HELD}",
                    (ts(now), ts(now), stale, limit),
                )
            ).fetchall()
        return sorted((_held(r) for r in rows), key=lambda h: h.id)

    async def release_held(self, held_id: int, *, later: datetime | None = None) -> None:
        async with self._transaction() as db:
            if later is None:
                await db.execute("DELETE FROM held WHERE id = ?", (held_id,))
            else:
                await db.execute("UPDATE held SET release_at = ?, claimed_at = NULL "
                                 "WHERE id = ?", (ts(later), held_id))

    async def schools_holding(self, now: datetime) -> list[SchoolId]:
        rows = await self._all(
            "SELECT school_id FROM held WHERE release_at > ? UNION "
            "SELECT school_id FROM broadcasts WHERE status = 'scheduled' "
            "AND held_for_hours = 1 AND publish_at > ?", (ts(now), ts(now)))
        return [SchoolId(r[0]) for r in rows]

    async def release_for_opening(self, school_id: SchoolId, now: datetime) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE held SET release_at = ? "
                             "WHERE school_id = ? AND release_at > ?",
                             (ts(now), school_id, ts(now)))
            await db.execute("UPDATE broadcasts SET publish_at = ? WHERE school_id = ? "
                             "AND status = 'scheduled' AND held_for_hours = 1 "
                             "AND publish_at > ?", (ts(now), school_id, ts(now)))
