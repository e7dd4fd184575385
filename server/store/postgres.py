"""PostgresStore: the :class:`~server.store.contract.Store` for several machines sharing one
PostgreSQL database, through an asyncpg connection pool.

- Writes run in READ COMMITTED transactions (:meth:`PostgresStore._transaction`); what
  must not race takes a row lock in the same transaction: the discussion's row for
  each message (gap-free ``seq``, see ``docs/design/postgresql.md``), ``FOR UPDATE
  SKIP LOCKED`` for claiming held items, so that exactly one node claims each.
- Reads run in autocommit on any pooled connection (:meth:`PostgresStore._fetch`), or
  in one read-only REPEATABLE READ transaction when several must agree
  (:meth:`PostgresStore._snapshot`).
- Migrations (``migrations_postgresql/NNNN_name.sql``) run at :meth:`open`, all in one
  transaction under an advisory lock: nodes starting at once migrate once.

asyncpg's errors become :class:`~server.errors.StoreError` here and nowhere else
(:func:`~server.store.postgres_failures.translate`); nothing is reported stored
unless its transaction committed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ..errors import StoreError
from .failures import WriteHealth
from .postgres_appender import PostgresAppender
from .postgres_broadcasts import PostgresBroadcasts
from .postgres_directory import PostgresDirectory
from .postgres_discussions import PostgresDiscussions
from .postgres_failures import DRIVER_ERRORS, translate
from .postgres_held import PostgresHeld
from .postgres_messages import PostgresMessages

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import Pool, PoolConnectionProxy

    Connection = PoolConnectionProxy[Record]

__all__ = ["PostgresStore"]

log = logging.getLogger("preau.store")

# The advisory lock migrations take (per database): any constant, the same on every node.
_MIGRATION_LOCK = 0x707265_6175_6D67  # "preau" "mg"


# Every session: a statement that waits over 10 s for a row lock gives up (StoreBusy,
# retryable) and frees its connection; a transaction left open by a node that vanished
# (no TCP reset) releases its locks after 30 s instead of at the keepalive hours later.
_SESSION = {"application_name": "preau", "lock_timeout": "10s",
            "idle_in_transaction_session_timeout": "30s"}
# A server that stops answering without closing the connection (a failover, a cut
# network) fails a call after this many seconds (StoreBusy) instead of holding it.
_COMMAND_TIMEOUT = 60.0
_MIGRATION_TIMEOUT = 3600.0


def _session(url: str) -> dict[str, str]:
    """The session settings, but an ``application_name`` the URL gives is kept."""
    if "application_name" in parse_qs(urlsplit(url).query):
        return {k: v for k, v in _SESSION.items() if k != "application_name"}
    return dict(_SESSION)


def _where(url: str) -> str:
    """``dbname at host:port`` from a URL, for messages: never its password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.path.lstrip('/') or '(default)'!r} at {host}:{parts.port or 5432}"


def _migrations() -> list[tuple[int, str]]:
    """The numbered ``NNNN_name.sql`` files shipped with the package, in order."""
    folder = resources.files("server.store") / "migrations_postgresql"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


class PostgresStore(PostgresDirectory, PostgresDiscussions, PostgresMessages, PostgresBroadcasts,
                    PostgresHeld):
    """A :class:`~server.store.contract.Store` in a PostgreSQL database (``url``: a libpq
    URL without Préau's own options, which come as arguments).

    ``pool_min``/``pool_max``: connections kept open / at most; ``acquire_timeout``:
    seconds an operation waits for a free connection before failing as
    :class:`~server.errors.StoreBusy` (retryable).
    """

    def __init__(self, url: str, *, pool_min: int = 1, pool_max: int = 10,
                 acquire_timeout: float = 5.0) -> None:
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise ValueError(f"pool sizes must satisfy 0 <= pool_min <= pool_max >= 1, "
                             f"not {pool_min} and {pool_max}")
        self.url = url
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.acquire_timeout = acquire_timeout
        self._pool: Pool[Record] | None = None
        self.health = WriteHealth()
        # Messages go through a group-committing appender (one statement per batch).
        self._appender = PostgresAppender(self._write, self._append_alone)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self.pool_min, max_size=self.pool_max,
                server_settings=_session(self.url), command_timeout=_COMMAND_TIMEOUT)
            await self._migrate()
        except BaseException as exc:
            # Whatever stopped it (cancelled too), no connection is left open.
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.terminate()
            if not isinstance(exc, (*DRIVER_ERRORS, StoreError)):
                raise
            error = translate(exc, "opening the database")
            raise type(error)(f"cannot open the PostgreSQL database {_where(self.url)}: "
                              f"{error}") from exc

    async def close(self) -> None:
        await self._appender.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except DRIVER_ERRORS as exc:
                log.warning("closing the PostgreSQL pool: %s", exc)
                pool.terminate()

    def write_failure(self) -> str | None:
        return self.health.failure()

    @property
    def pool(self) -> Pool[Record]:
        if self._pool is None:
            raise RuntimeError("PostgresStore used before open() or after close()")
        return self._pool

    async def _migrate(self) -> None:
        """Apply the migrations not yet recorded, in one transaction. The advisory lock
        makes a second node starting at once wait, then find them applied."""
        async with self._transaction() as db:
            # Another node's migration may take its time: wait for it, however long (an
            # hour at most: the command timeout does not apply to migrations).
            await db.execute("SET LOCAL lock_timeout = 0")
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK,
                             timeout=_MIGRATION_TIMEOUT)
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version "
                             "(version integer PRIMARY KEY)")
            # Each migration not recorded yet, in number order (not just those above the
            # highest: two branches merged may number theirs below one applied earlier).
            applied = {r[0] for r in await db.fetch("SELECT version FROM schema_version")}
            for number, script in _migrations():
                if number in applied:
                    continue
                # Several statements: the simple query protocol.
                await db.execute(script, timeout=_MIGRATION_TIMEOUT)
                await db.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                log.info("PostgreSQL schema migrated to version %d", number)

    async def schema_version(self) -> int:
        row = await self._fetchrow("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return 0 if row is None else int(row[0])

    # ------------------------------------------------------------------ helpers

    @asynccontextmanager
    async def _connection(self, doing: str) -> AsyncIterator[Connection]:
        """A pooled connection, waited for at most ``acquire_timeout`` seconds."""
        pool = self.pool
        try:
            db = await pool.acquire(timeout=self.acquire_timeout)
        except DRIVER_ERRORS as exc:
            raise translate(exc, f"{doing} (waiting for a database connection)") from exc
        try:
            yield db
        finally:
            try:
                await pool.release(db)
            except DRIVER_ERRORS as exc:  # a broken connection: the pool drops it
                log.warning("releasing a PostgreSQL connection: %s", exc)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A read-write transaction; any failure, the driver's or the body's, rolls it
        back, and the driver's comes out translated. A failed ``COMMIT`` is reported as
        itself: nothing of the block is then acknowledged."""
        try:
            async with self._connection("writing") as db:
                tx = db.transaction()
                await tx.start()
                try:
                    yield db
                except BaseException as exc:
                    await _rollback(tx, exc)
                    raise
                await tx.commit()
        except DRIVER_ERRORS as exc:
            raise self._failed(exc, "writing") from exc
        except StoreError as exc:
            self.health.observe(exc)
            raise
        self.health.succeeded()

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Connection]:
        """Several reads that must agree: one read-only REPEATABLE READ transaction."""
        try:
            async with self._connection("reading") as db, db.transaction(
                    isolation="repeatable_read", readonly=True):
                yield db
        except DRIVER_ERRORS as exc:
            raise translate(exc, "reading") from exc

    async def _fetch(self, sql: str, *args: Any) -> list[Record]:
        try:
            async with self._connection("reading") as db:
                return await db.fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "reading") from exc

    async def _fetchrow(self, sql: str, *args: Any) -> Record | None:
        try:
            async with self._connection("reading") as db:
                return await db.fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "reading") from exc

    async def _write(self, sql: str, *args: Any) -> list[Record]:
        """One statement that writes, in its own transaction (autocommit: one round
        trip), returning its rows once committed; errors translated and counted."""
        try:
            async with self._connection("writing") as db:
                rows = await db.fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            raise self._failed(exc, "writing") from exc
        except StoreError as exc:  # no connection free in time
            self.health.observe(exc)
            raise
        self.health.succeeded()
        return rows

    def _failed(self, exc: BaseException, doing: str) -> StoreError:
        error = translate(exc, doing)
        self.health.observe(error)
        return error


async def _rollback(tx: asyncpg.transaction.Transaction, cause: BaseException) -> None:
    """Undo a failed transaction without hiding ``cause`` (after a lost connection the
    rollback fails too; the pool then drops the connection)."""
    try:
        await tx.rollback()
    except DRIVER_ERRORS as exc:
        log.warning("rollback after %r failed too: %s", cause, exc)
