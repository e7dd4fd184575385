"""Held messages (defer mode) of :class:`~server.store.postgres.PostgresStore`.

A mixin over the store's private helpers (see
:class:`~server.store.postgres_broadcasts.PostgresBroadcasts`), with the behaviour
of :class:`~server.store.sqlite.SqliteStore`. Every node asks every second for the
held messages that are due: :meth:`PostgresHeld.claim_due` takes them with
``FOR UPDATE SKIP LOCKED``, so that of several nodes claiming at once exactly one
gets each item, and none waits for another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..model import DiscussionId, SchoolId, UserId
from .base import HeldMessage

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = ["PostgresHeld"]

_HELD = ("id, school_id, sender, client_id, discussion_id, subject, recipients, body, "
         "created_at, release_at")


class PostgresHeld:
    """Held messages for PostgresStore."""

    if TYPE_CHECKING:
        async def _fetch(self, sql: str, *args: Any) -> list[Record]: ...
        async def _fetchrow(self, sql: str, *args: Any) -> Record | None: ...
        async def _write(self, sql: str, *args: Any) -> list[Record]: ...

    async def hold(
        self, school_id: SchoolId, sender: UserId, client_id: str, body: str, *,
        discussion_id: DiscussionId | None, subject: str | None,
        recipients: Sequence[UserId], now: datetime, release_at: datetime,
    ) -> tuple[HeldMessage, bool]:
        rows = await self._write(
            "INSERT INTO held (school_id, sender, client_id, discussion_id, subject, "
            "recipients, body, created_at, release_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            f"ON CONFLICT (school_id, sender, client_id) DO NOTHING RETURNING {_HELD}",
            school_id, sender, client_id, discussion_id, subject,
            json.dumps(list(recipients)), body, now, release_at)
        if rows:
            return _held(rows[0]), True
        # Held before (a retry): a new statement, whose snapshot sees the first one.
        rows = await self._fetch(
            f"SELECT {_HELD} FROM held WHERE school_id = $1 AND sender = $2 "
            "AND client_id = $3", school_id, sender, client_id)
        return _held(rows[0]), False

    async def claim_due(self, now: datetime, *, limit: int = 100) -> list[HeldMessage]:
        # Every node asks at every tick: look first, so that an empty answer opens no
        # write transaction (and an empty write does not pass for a healthy one in
        # /readyz while real writes fail).
        if await self._fetchrow("SELECT 1 FROM held WHERE release_at <= $1 LIMIT 1",
                                now) is None:
            return []
        # SKIP LOCKED: rows another node is claiming are left to it; a row it claimed
        # meanwhile is re-checked once locked and no longer matches (claimed_at).
        rows = await self._write(
            f"UPDATE held SET claimed_at = $1 WHERE id IN (SELECT id FROM held "
            "WHERE release_at <= $1 AND (claimed_at IS NULL OR claimed_at < $2) "
            f"ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {_HELD}",
            now, now - timedelta(minutes=1), limit)
        return sorted((_held(r) for r in rows), key=lambda h: h.id)

    async def release_held(self, held_id: int, *, later: datetime | None = None) -> None:
        if later is None:
            await self._write("DELETE FROM held WHERE id = $1", held_id)
        else:
            await self._write("UPDATE held SET release_at = $2, claimed_at = NULL "
                              "WHERE id = $1", held_id, later)

    async def schools_holding(self, now: datetime) -> list[SchoolId]:
        rows = await self._fetch(
            "SELECT school_id FROM held WHERE release_at > $1 UNION "
            "SELECT school_id FROM broadcasts WHERE status = 'scheduled' "
            "AND held_for_hours AND publish_at > $1", now)
        return [SchoolId(r[0]) for r in rows]

    async def release_for_opening(self, school_id: SchoolId, now: datetime) -> None:
        # One statement, one transaction: the held messages and the broadcasts together.
        await self._write(
            "WITH m AS (UPDATE held SET release_at = $2 WHERE school_id = $1 "
            "AND release_at > $2) "
            "UPDATE broadcasts SET publish_at = $2 WHERE school_id = $1 "
            "AND status = 'scheduled' AND held_for_hours AND publish_at > $2",
            school_id, now)


def _held(r: Record) -> HeldMessage:
    return HeldMessage(int(r[0]), SchoolId(r[1]), UserId(r[2]), r[3],
                       None if r[4] is None else DiscussionId(int(r[4])), r[5],
                       tuple(UserId(u) for u in json.loads(r[6] or "[]")), r[7], r[8], r[9])
