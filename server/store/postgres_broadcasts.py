"""The broadcasts tables of :class:`~server.store.postgres.PostgresStore` (migration 0002).

A mixin, as :class:`~server.store.sqlite_broadcasts.SqliteBroadcasts` is for SQLite:
it uses the store's private helpers below, so that its writes are translated,
rolled back on failure and counted in the store's write health like every other.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["PostgresBroadcasts"]


class PostgresBroadcasts:
    """Broadcast storage for PostgresStore (see :class:`~server.store.base.BroadcastStore`)."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[PoolConnectionProxy[Record]]:
            """A connection inside a read-write transaction (READ COMMITTED), committed
            when the block ends; any failure rolls it back, and a driver error comes
            out as the store's own (:mod:`server.store.postgres_failures`). Statements
            on the connection raise asyncpg's errors; leave them to this helper."""

        def _snapshot(self) -> AbstractAsyncContextManager[PoolConnectionProxy[Record]]:
            """A connection inside a read-only REPEATABLE READ transaction: several
            reads that must agree with each other (one snapshot); errors translated."""

        async def _fetch(self, sql: str, *args: Any) -> list[Record]:
            """One read in autocommit mode on a pooled connection; errors translated."""

        async def _fetchrow(self, sql: str, *args: Any) -> Record | None:
            """One row (or ``None``) read in autocommit mode; errors translated."""
