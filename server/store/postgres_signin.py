"""Sign-in grants of :class:`~server.store.postgres.PostgresStore`
(see :class:`~server.store.contract.SigninStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..model import SchoolId

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = ["PostgresSignin"]


class PostgresSignin:
    """Sign-in grants for PostgresStore."""

    if TYPE_CHECKING:
        async def _write(self, sql: str, *args: Any) -> list[Record]: ...

    async def put_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, payload: str, *,
        expires_at: datetime, now: datetime,
    ) -> bool:
        await self._write("DELETE FROM signin_grants WHERE expires_at <= $1", now)
        rows = await self._write(
            "INSERT INTO signin_grants (kind, key, school_id, payload, expires_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, key) DO NOTHING RETURNING 1",
            kind, key, school_id, payload, expires_at)
        return bool(rows)

    async def take_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, *, now: datetime,
    ) -> str | None:
        # DELETE … RETURNING is one statement: of two concurrent takes, the second
        # waits for the first's row lock, then deletes nothing.
        rows = await self._write(
            "DELETE FROM signin_grants WHERE kind = $1 AND key = $2 AND school_id = $3 "
            "RETURNING payload, expires_at", kind, key, school_id)
        if not rows or rows[0]["expires_at"] <= now:
            return None
        return str(rows[0]["payload"])
