"""Sign-in sessions of :class:`~server.store.postgres.PostgresStore` (migration 0004).

A mixin over the store's private helpers, with the behaviour of
:class:`~server.store.sqlite_sessions.SqliteSessions`. A rotation locks the refresh
token's row (``SELECT … FOR UPDATE``): of several nodes presenting the same token at
once, one rotates it and the others, once the lock is theirs, find it used: reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..model import SchoolId, UserId
from .base import USED_REFRESH_KEPT, Rotation, RotationOutcome, SignInSession

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[Record]

__all__ = ["PostgresSessions", "end_deactivated"]

# Refresh tokens no rotation can accept any more: expired, used long ago, or of an
# ended session (arguments: now, now - USED_REFRESH_KEPT).
_PRUNABLE = ("expires_at <= $1 OR used_at < $2 "
             "OR session_id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL)")
_COLUMNS = ("id, school_id, user_id, provider, provider_session, created_at, last_used_at, "
            "revoked_at, revoked_reason")


class PostgresSessions:
    """Session storage for PostgresStore (see :class:`~server.store.contract.SessionStore`)."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[Connection]: ...
        async def _fetchrow(self, sql: str, *args: Any) -> Record | None: ...
        async def _write(self, sql: str, *args: Any) -> list[Record]: ...

    async def create_session(
        self, school_id: SchoolId, user_id: UserId, *, session_id: str, provider: str,
        provider_session: str | None, refresh_hash: str, now: datetime,
        refresh_expires_at: datetime,
    ) -> SignInSession:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO sessions ({_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $6, NULL, NULL)",
                session_id, school_id, user_id, provider, provider_session, now)
            await db.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4)", refresh_hash, session_id, now, refresh_expires_at)
        return SignInSession(session_id, school_id, user_id, provider, provider_session,
                             now, now)

    async def get_session(self, school_id: SchoolId, session_id: str) -> SignInSession:
        row = await self._fetchrow(f"SELECT {_COLUMNS} FROM sessions WHERE id = $1 "
                                   "AND school_id = $2", session_id, school_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return _session(row)

    async def rotate_refresh(
        self, refresh_hash: str, new_hash: str, *, now: datetime, refresh_expires_at: datetime
    ) -> Rotation:
        async with self._transaction() as db:
            token = await db.fetchrow(
                "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = $1 "
                "FOR UPDATE", refresh_hash)
            if token is None:
                return Rotation(RotationOutcome.UNKNOWN, None)
            session_id, expires_at, used_at = token
            row = await db.fetchrow(f"SELECT {_COLUMNS} FROM sessions WHERE id = $1 "
                                    "FOR UPDATE", session_id)
            assert row is not None  # a foreign key
            session = _session(row)
            if session.revoked_at is not None:
                return Rotation(RotationOutcome.REVOKED, session)
            if used_at is not None:
                row = await db.fetchrow(
                    "UPDATE sessions SET revoked_at = $2, revoked_reason = 'reuse' "
                    f"WHERE id = $1 RETURNING {_COLUMNS}", session_id, now)
                assert row is not None
                return Rotation(RotationOutcome.REUSED, _session(row))
            if expires_at <= now:
                return Rotation(RotationOutcome.EXPIRED, session)
            await db.execute("UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1",
                             refresh_hash, now)
            await db.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4)", new_hash, session_id, now, refresh_expires_at)
            await db.execute("UPDATE sessions SET last_used_at = $2 WHERE id = $1",
                             session_id, now)
        return Rotation(RotationOutcome.ROTATED, SignInSession(
            session.id, session.school_id, session.user_id, session.provider,
            session.provider_session, session.created_at, now))

    async def end_sessions(
        self, school_id: SchoolId, *, now: datetime, reason: str,
        session_id: str | None = None, user_id: UserId | None = None,
        provider: str | None = None, provider_session: str | None = None,
    ) -> list[str]:
        clauses, args = ["school_id = $1"], [school_id, now, reason]
        for column, value in (("id", session_id), ("user_id", user_id),
                              ("provider", provider), ("provider_session", provider_session)):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        if len(clauses) == 1:
            raise ValueError("end_sessions needs at least one filter")
        async with self._transaction() as db:
            rows = await db.fetch(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 "
                f"WHERE {' AND '.join(clauses)} AND revoked_at IS NULL RETURNING id", *args)
        return sorted(str(r[0]) for r in rows)

    async def prune_refresh_tokens(self, now: datetime) -> int:
        args = (now, now - USED_REFRESH_KEPT)
        # Look first: nothing to prune opens no write (an empty write must not pass for
        # a healthy one in /readyz while real writes fail).
        if await self._fetchrow(f"SELECT 1 FROM refresh_tokens WHERE {_PRUNABLE} LIMIT 1",
                                *args) is None:
            return 0
        rows = await self._write(f"WITH gone AS (DELETE FROM refresh_tokens WHERE {_PRUNABLE} "
                                 "RETURNING 1) SELECT count(*) FROM gone", *args)
        return int(rows[0][0])


async def end_deactivated(db: Connection, school_id: SchoolId, users: Sequence[UserId],
                          now: datetime) -> None:
    """The directory deactivated ``users``: end their sessions (in the import's transaction)."""
    if users:
        await db.execute(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = 'deactivated' "
            "WHERE school_id = $1 AND user_id = ANY($2::text[]) AND revoked_at IS NULL",
            school_id, list(users), now)


def _session(r: Record) -> SignInSession:
    return SignInSession(str(r[0]), SchoolId(r[1]), UserId(r[2]), r[3], r[4], r[5], r[6],
                         r[7], r[8])
