"""SqliteStore: the embedded :class:`~server.store.contract.Store`, one file in WAL mode.

Two connections per process, each driven by ``aiosqlite`` (a thread that owns the
``sqlite3`` connection), plus the :class:`~server.store.appender.Appender`'s own for
messages:

- writes run as ``BEGIN IMMEDIATE`` transactions on the write connection, one at a
  time (an asyncio lock), so that several server processes sharing the file take the
  write lock up front instead of failing half-way; ``busy_timeout`` makes them wait
  for each other;
- reads run on the read connection (``query_only``), under their own lock. WAL lets
  them go on while another process holds the write lock: a write of this node
  waiting for that lock (up to the busy timeout) never holds up its reads.

``sqlite3`` errors become :class:`~server.errors.StoreError` here and nowhere else
(:func:`~server.store.failures.translate`), with the driver's message kept; a
failed ``COMMIT`` is reported as itself, never as the ``ROLLBACK`` after it.

This module keeps the opening, the migrations, the connections, their locks and
the transactions (:meth:`SqliteStore._transaction`, :meth:`SqliteStore._snapshot`,
:meth:`SqliteStore._all`); the roles of :mod:`server.store.contract` are mixins over
them, one module each: ``sqlite_directory``, ``sqlite_discussions``,
``sqlite_messages``, ``sqlite_broadcasts``, ``sqlite_held``, ``sqlite_sessions``,
``sqlite_signin`` and ``sqlite_search``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import aiosqlite

from ..errors import StoreError
from .appender import Appender
from .failures import WriteHealth, translate
from .sqlite_broadcasts import SqliteBroadcasts
from .sqlite_directory import SqliteDirectory
from .sqlite_discussions import SqliteDiscussions
from .sqlite_held import SqliteHeld
from .sqlite_messages import SqliteMessages
from .sqlite_search import SqliteSearch
from .sqlite_sessions import SqliteSessions
from .sqlite_signin import SqliteSignin

__all__ = ["SqliteStore"]

log = logging.getLogger("preau.store")


def _migrations() -> list[tuple[int, str]]:
    """The numbered ``NNNN_name.sql`` files shipped with the package, in order."""
    folder = resources.files("server.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file.

    Migration files keep ``--`` and ``;`` out of string literals, so comments can
    be cut at ``--`` and statements split at ``;``; a ``CREATE TRIGGER`` runs to the
    ``END`` that closes its body, on a line of its own.
    """
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    pieces = [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
    # A trigger's body holds statements of its own: it runs to its END.
    statements: list[str] = []
    body: list[str] = []
    for piece in pieces:
        if body or piece.upper().startswith("CREATE TRIGGER"):
            body.append(piece)
            if piece.upper() == "END":
                statements.append(";\n".join(body))
                body = []
        else:
            statements.append(piece)
    return statements


class SqliteStore(SqliteDirectory, SqliteDiscussions, SqliteMessages, SqliteBroadcasts,
                  SqliteHeld, SqliteSessions, SqliteSignin, SqliteSearch):
    """A :class:`~server.store.contract.Store` in one SQLite file (``":memory:"`` for tests)."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # One operation at a time on each connection. aiosqlite runs each call in its
        # thread, but an operation is several calls: without this, a read left half
        # fetched by one coroutine keeps an old snapshot open under another's
        # transaction (SQLITE_BUSY_SNAPSHOT at BEGIN, and stale reads).
        self._lock = asyncio.Lock()
        # A second connection to ":memory:" would be another database: there, reads share
        # the write connection and its lock.
        self._separate_reads = path != ":memory:"
        self._read_lock = asyncio.Lock() if self._separate_reads else self._lock
        self.health = WriteHealth()
        # Messages go through a group-committing appender with its own connection.
        self._appender = (Appender(path, busy_timeout_ms=busy_timeout_ms, health=self.health)
                          if self._separate_reads else None)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            self._db = await self._connect()
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._migrate()
            if self._separate_reads:
                self._reader = await self._connect()
                await self._reader.execute("PRAGMA query_only=ON")
        except (sqlite3.Error, StoreError) as exc:
            await self.close()
            error = translate(exc, f"opening the database {self.path!r}")
            raise type(error)(f"cannot open the database {self.path!r}: {exc}") from exc

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        await self._search_close()
        if self._appender is not None:
            await self._appender.close()
            self._appender = None
        for db in (self._reader, self._db):
            if db is not None:
                await db.close()
        self._reader = self._db = None

    def write_failure(self) -> str | None:
        return self.health.failure()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore used before open() or after close()")
        return self._db

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            # Each migration not recorded yet, in number order: not just those above the
            # highest recorded, so that a migration numbered below one applied earlier
            # (two branches merged, each with its own numbers) still runs.
            applied = {r[0] for r in await (
                await db.execute("SELECT version FROM schema_version")).fetchall()}
            for number, script in _migrations():
                if number in applied:
                    continue
                # executescript would COMMIT our transaction; run statement by statement.
                for statement in _split_sql(script):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    async def schema_version(self) -> int:
        row = await self._one("SELECT MAX(version) FROM schema_version", ())
        return int(row[0]) if row and row[0] is not None else 0

    @property
    def reader(self) -> aiosqlite.Connection:
        """The connection reads use (the write connection for ``":memory:"``)."""
        if not self._separate_reads:
            return self.db
        if self._reader is None:
            raise RuntimeError("SqliteStore used before open() or after close()")
        return self._reader

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; any failure, the driver's or the body's, rolls it back,
        and the driver's comes out translated."""
        async with self._lock:
            db = self.db
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(exc, "starting a write") from exc
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException as exc:
                await self._rollback(db, exc)
                if isinstance(exc, sqlite3.Error | UnicodeEncodeError | OverflowError):
                    raise self._failed(exc, "writing") from exc
                raise
            self.health.succeeded()

    def _failed(self, exc: BaseException, doing: str) -> StoreError:
        error = translate(exc, doing)
        self.health.observe(error)
        return error

    @staticmethod
    async def _rollback(db: aiosqlite.Connection, cause: BaseException) -> None:
        """Undo what is left of a failed transaction without hiding ``cause``: after
        SQLITE_FULL or an I/O error SQLite has already rolled it back itself."""
        if not db.in_transaction:
            return
        try:
            await db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback after %r failed too: %s", cause, exc)

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several reads that must agree: a deferred transaction on the read connection,
        which takes no write lock (writers, the appender included, go on meanwhile)."""
        async with self._read_lock:
            db = self.reader
            try:
                await db.execute("BEGIN")
                yield db
            except sqlite3.Error as exc:
                raise translate(exc, "reading") from exc
            finally:
                if db.in_transaction:
                    try:
                        await db.execute("COMMIT")
                    except sqlite3.Error as exc:
                        log.warning("ending a read failed: %s", exc)

    async def _one(self, sql: str, args: Sequence[Any]) -> Any:
        rows = await self._all(sql, args)
        return next(iter(rows), None)

    async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]:
        """A read in autocommit mode: executed and fetched in one call to the database
        thread, so no statement stays open (and no old snapshot with it)."""
        async with self._read_lock:
            try:
                return await self.reader.execute_fetchall(sql, args)
            except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
                raise translate(exc, "reading") from exc
