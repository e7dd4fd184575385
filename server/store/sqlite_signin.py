"""Sign-in grants of :class:`~server.store.sqlite.SqliteStore`
(see :class:`~server.store.contract.SigninStore`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..model import SchoolId
from .times import ts

__all__ = ["SqliteSignin"]


class SqliteSignin:
    """Sign-in grants for SqliteStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

    async def put_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, payload: str, *,
        expires_at: datetime, now: datetime,
    ) -> bool:
        async with self._transaction() as db:
            await db.execute("DELETE FROM signin_grants WHERE expires_at <= ?", (ts(now),))
            cursor = await db.execute(
                "INSERT INTO signin_grants (kind, key, school_id, payload, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO NOTHING",
                (kind, key, school_id, payload, ts(expires_at)))
            return cursor.rowcount == 1

    async def take_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, *, now: datetime,
    ) -> str | None:
        # The write transaction makes the read and the delete one step: a second take
        # waits for it, then finds nothing.
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM signin_grants WHERE kind = ? AND key = ? AND school_id = ? "
                "RETURNING payload, expires_at", (kind, key, school_id))
            row = await cursor.fetchone()
            await cursor.close()
        if row is None or str(row[1]) <= ts(now):
            return None
        return str(row[0])
