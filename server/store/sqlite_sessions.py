"""Sign-in sessions of :class:`~server.store.sqlite.SqliteStore` (migration 0007).

A mixin over the store's ``_transaction`` and ``_all``. Every write is a ``BEGIN
IMMEDIATE`` transaction: SQLite takes the file's write lock up front, so two server
processes rotating the same refresh token run one after the other and the second
finds it used (see :class:`~server.store.contract.SessionStore`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..errors import NotFound
from ..model import SchoolId, UserId
from .base import USED_REFRESH_KEPT, Rotation, RotationOutcome, SignInSession
from .times import dt, opt_dt, ts

__all__ = ["SqliteSessions"]

# Refresh tokens no rotation can accept any more: expired, used long ago, or of an
# ended session (arguments: now, now - USED_REFRESH_KEPT).
_PRUNABLE = ("expires_at <= ? OR used_at < ? "
             "OR session_id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL)")
_COLUMNS = ("id, school_id, user_id, provider, provider_session, created_at, last_used_at, "
            "revoked_at, revoked_reason")


class SqliteSessions:
    """Session storage for SqliteStore (see :class:`~server.store.contract.SessionStore`)."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

    async def create_session(
        self, school_id: SchoolId, user_id: UserId, *, session_id: str, provider: str,
        provider_session: str | None, refresh_hash: str, now: datetime,
        refresh_expires_at: datetime,
    ) -> SignInSession:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (session_id, school_id, user_id, provider, provider_session, ts(now), ts(now)))
            await db.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)", (refresh_hash, session_id, ts(now),
                                        ts(refresh_expires_at)))
        return SignInSession(session_id, school_id, user_id, provider, provider_session,
                             now, now)

    async def get_session(self, school_id: SchoolId, session_id: str) -> SignInSession:
        rows = list(await self._all(f"SELECT {_COLUMNS} FROM sessions WHERE id = ? "
                                    "AND school_id = ?", (session_id, school_id)))
        if not rows:
            raise NotFound(f"no session {session_id!r}")
        return _session(rows[0])

    async def rotate_refresh(
        self, refresh_hash: str, new_hash: str, *, now: datetime, refresh_expires_at: datetime
    ) -> Rotation:
        async with self._transaction() as db:
            token = await (await db.execute(
                "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?",
                (refresh_hash,))).fetchone()
            if token is None:
                return Rotation(RotationOutcome.UNKNOWN, None)
            session_id, expires_at, used_at = token
            row = await (await db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?",
                                          (session_id,))).fetchone()
            assert row is not None  # a foreign key
            session = _session(row)
            if session.revoked_at is not None:
                return Rotation(RotationOutcome.REVOKED, session)
            if used_at is not None:
                await _end(db, "id = ?", (session_id,), now, "reuse")
                row = await (await db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?",
                                              (session_id,))).fetchone()
                return Rotation(RotationOutcome.REUSED, _session(row))
            if dt(expires_at) <= now:
                return Rotation(RotationOutcome.EXPIRED, session)
            await db.execute("UPDATE refresh_tokens SET used_at = ? WHERE hash = ?",
                             (ts(now), refresh_hash))
            await db.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)", (new_hash, session_id, ts(now), ts(refresh_expires_at)))
            await db.execute("UPDATE sessions SET last_used_at = ? WHERE id = ?",
                             (ts(now), session_id))
        return Rotation(RotationOutcome.ROTATED, SignInSession(
            session.id, session.school_id, session.user_id, session.provider,
            session.provider_session, session.created_at, now))

    async def end_sessions(
        self, school_id: SchoolId, *, now: datetime, reason: str,
        session_id: str | None = None, user_id: UserId | None = None,
        provider: str | None = None, provider_session: str | None = None,
    ) -> list[str]:
        where, args = _filters(session_id, user_id, provider, provider_session)
        async with self._transaction() as db:
            return await _end(db, f"school_id = ? AND {where}", (school_id, *args), now,
                              reason)


    async def prune_refresh_tokens(self, now: datetime) -> int:
        args = (ts(now), ts(now - USED_REFRESH_KEPT))
        # Look first: nothing to prune opens no write (an empty write must not pass for
        # a healthy one in /readyz while real writes fail).
        if not list(await self._all(f"SELECT 1 FROM refresh_tokens WHERE {_PRUNABLE} LIMIT 1",
                                    args)):
            return 0
        async with self._transaction() as db:
            cursor = await db.execute(f"DELETE FROM refresh_tokens WHERE {_PRUNABLE}", args)
            return int(cursor.rowcount)


def _filters(session_id: str | None, user_id: UserId | None, provider: str | None,
             provider_session: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of the filters given; at least one, or ``ValueError``."""
    clauses, args = [], []
    for column, value in (("id", session_id), ("user_id", user_id), ("provider", provider),
                          ("provider_session", provider_session)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if not clauses:
        raise ValueError("end_sessions needs at least one filter")
    return " AND ".join(clauses), args


async def _end(db: aiosqlite.Connection, where: str, args: Sequence[Any], now: datetime,
               reason: str) -> list[str]:
    """End the open sessions matching ``where`` (in the caller's transaction) and return
    their ids. Their refresh tokens stay, answered ``REVOKED`` until they expire."""
    rows = await db.execute_fetchall(
        f"UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
        f"WHERE {where} AND revoked_at IS NULL RETURNING id", (ts(now), reason, *args))
    return sorted(str(r[0]) for r in rows)


async def end_deactivated(db: aiosqlite.Connection, school_id: SchoolId,
                          users: Sequence[UserId], now: datetime) -> None:
    """The directory deactivated ``users``: end their sessions (in the import's transaction)."""
    for user in users:
        await _end(db, "school_id = ? AND user_id = ?", (school_id, user), now, "deactivated")


def _session(r: Any) -> SignInSession:
    return SignInSession(str(r[0]), SchoolId(r[1]), UserId(r[2]), r[3], r[4], dt(r[5]),
                         dt(r[6]), opt_dt(r[7]), r[8])
