"""The two ends of ``preau store copy`` (:mod:`server.store.copy`): SQLite and
PostgreSQL, each able to be read from one snapshot or written in one transaction.

Each side reads its own catalogue (``sqlite_master`` and its pragmas, or
``information_schema`` and ``pg_constraint``) and turns every driver error into the
store's own (:func:`server.store.failures.translate`,
:func:`server.store.postgres_failures.translate`), keeping the cause.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import quote

import aiosqlite
import asyncpg

from ..errors import StoreBusy, StoreError
from . import failures as sqlite_failures
from . import open_store, postgres_failures, postgres_options, sqlite_path
from .copy import (
    ROWID,
    SCHOOL_COLUMN,
    Column,
    CopyRefused,
    CopyReport,
    Destination,
    Link,
    Progress,
    Row,
    Source,
    Table,
    copy_between,
)

__all__ = ["PostgresSide", "SqliteSide", "copy_database", "open_destination", "open_source",
           "prepare"]


# SQLite's own state of its full-text indexes (0011_search_batches.sql): not data, the
# destination keeps its own.
_INDEX_STATE = frozenset({"search_progress"})


def _quote(name: str) -> str:
    """An identifier from a catalogue, quoted for SQL (both dialects)."""
    return '"' + name.replace('"', '""') + '"'


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def _read_only_uri(path: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode=ro"


async def prepare(url: str, *, must_exist: bool) -> None:
    """Open ``url`` as a store once, which brings its schema to the latest migration.
    A source must already exist: opening a missing SQLite file would create it."""
    path = sqlite_path(url)
    if path == ":memory:":
        raise CopyRefused("an in-memory SQLite database cannot be copied from or to")
    if must_exist and path is not None and not _is_file(path):
        raise CopyRefused(f"there is no SQLite database at {path!r}")
    store = await open_store(url)
    await store.close()


async def _connect(url: str, *, reading: bool) -> SqliteSide | PostgresSide:
    path = sqlite_path(url)
    if path is not None:
        return await SqliteSide.connect(path, reading=reading)
    return await PostgresSide.connect(url)


@asynccontextmanager
async def open_source(url: str) -> AsyncIterator[Source]:
    """The database at ``url``, to be read (a SQLite file is opened read-only)."""
    side = await _connect(url, reading=True)
    try:
        yield side
    finally:
        await side.close()


@asynccontextmanager
async def open_destination(url: str) -> AsyncIterator[Destination]:
    """The database at ``url``, to be written."""
    side = await _connect(url, reading=False)
    try:
        yield side
    finally:
        await side.close()


# ---------------------------------------------------------------------- SQLite


def _sqlite_kind(declared: str) -> str:
    # SQLite's type affinity: Préau's schema declares INTEGER and TEXT only.
    return "integer" if "INT" in declared.upper() else "text"


class SqliteSide:
    """One SQLite file: read from one snapshot, or written in one ``BEGIN IMMEDIATE``."""

    def __init__(self, path: str, db: aiosqlite.Connection) -> None:
        self.path = path
        self.db = db
        self._rowid_tables: set[str] = set()

    @classmethod
    async def connect(cls, path: str, *, reading: bool) -> SqliteSide:
        # The source is opened read-only: a copy never writes to it, whatever happens.
        target = _read_only_uri(path) if reading else path
        with cls._translated(f"opening {path!r}"):
            db = await aiosqlite.connect(target, uri=reading, isolation_level=None)
            await db.execute("PRAGMA busy_timeout=10000")
        return cls(path, db)

    async def close(self) -> None:
        await self.db.close()

    @staticmethod
    @contextmanager
    def _translated(doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise sqlite_failures.translate(exc, doing) from exc

    async def _all(self, sql: str) -> list[sqlite3.Row]:
        async with self.db.execute(sql) as cursor:
            return list(await cursor.fetchall())

    async def tables(self) -> dict[str, Table]:
        with self._translated(f"reading the catalogue of {self.path!r}"):
            found = {}
            listed = await self._all("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT LIKE 'sqlite_%'")
            # Full-text indexes (0010_search.sql) and their shadow tables are not data:
            # the destination's triggers index what the copy writes, and its own
            # search_progress (0011_search_batches.sql, 0 in a new database) makes its
            # first search index every message copied.
            virtual = [name for name, sql in listed
                       if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
            for name, sql in listed:
                if name in _INDEX_STATE:
                    continue
                if not any(name == v or name.startswith(f"{v}_") for v in virtual):
                    found[name] = await self._table(name, sql or "")
            return found

    async def _table(self, name: str, sql: str) -> Table:
        info = await self._all(f"PRAGMA table_info({_quote(name)})")
        keys = [row for row in info if row[5]]
        alias = len(keys) == 1 and keys[0][2].upper() == "INTEGER"  # the rowid itself
        columns = [Column(row[1], _sqlite_kind(row[2]), identity=alias and bool(row[5]))
                   for row in info]
        if not alias and "WITHOUT ROWID" not in sql.upper():
            columns.append(Column(ROWID, "integer", identity=True, implicit=True))
            self._rowid_tables.add(name)
        elif alias:
            self._rowid_tables.add(name)
        by_key: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
        for row in await self._all(f"PRAGMA foreign_key_list({_quote(name)})"):
            by_key[row[0]].append((row[3], row[2], row[4] or "id"))
        links = tuple(Link(*pairs[0]) for pairs in by_key.values() if len(pairs) == 1)
        parents = frozenset(p[0][1] for p in by_key.values())
        return Table(name, tuple(columns), parents, links)

    # -- reading

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        # A deferred transaction: its first read fixes the snapshot (WAL) that every
        # later read of the copy sees, whatever other processes write meanwhile.
        with self._translated(f"reading {self.path!r}"):
            await self.db.execute("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):  # it only read
                await self.db.execute("ROLLBACK")

    async def count(self, table: str) -> int:
        with self._translated(f"counting the rows of {table}"):
            rows = await self._all(f"SELECT count(*) FROM {_quote(table)}")
        return int(rows[0][0])

    async def rows(self, table: str, columns: Sequence[str], *, school_via: Link | None,
                   batch: int) -> AsyncIterator[Sequence[Row]]:
        select = ", ".join(f"t.{_quote(c)}" for c in columns)
        join = ""
        if school_via is not None:
            select += f", p.{_quote(SCHOOL_COLUMN)}"
            # LEFT: an orphan row gets no school and fails the copy, instead of vanishing.
            join = (f" LEFT JOIN {_quote(school_via.parent)} AS p ON "
                    f"p.{_quote(school_via.parent_column)} = t.{_quote(school_via.column)}")
        order = " ORDER BY t.rowid" if table in self._rowid_tables else ""
        sql = f"SELECT {select} FROM {_quote(table)} AS t{join}{order}"
        with self._translated(f"reading the rows of {table}"):
            async with self.db.execute(sql) as cursor:
                while chunk := await cursor.fetchmany(batch):
                    yield [tuple(row) for row in chunk]

    # -- writing

    @asynccontextmanager
    async def transaction(self, tables: Sequence[str]) -> AsyncIterator[None]:
        # BEGIN IMMEDIATE takes the file's write lock: no other writer until the end.
        with self._translated(f"writing {self.path!r}"):
            await self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the error that stopped the copy counts
                await self.db.execute("ROLLBACK")
            raise
        with self._translated(f"committing the copy into {self.path!r}"):
            await self.db.execute("COMMIT")

    async def occupied(self, tables: Sequence[str]) -> list[str]:
        with self._translated(f"reading {self.path!r}"):
            return [t for t in tables
                    if (await self._all(f"SELECT EXISTS (SELECT 1 FROM {_quote(t)})"))[0][0]]

    async def write(self, table: str, columns: Sequence[str],
                    rows: AsyncIterator[Row], *, batch: int = 5000) -> int:
        sql = (f"INSERT INTO {_quote(table)} ({', '.join(map(_quote, columns))}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        written = 0
        pending: list[Row] = []
        with self._translated(f"writing the rows of {table}"):
            async for row in rows:
                pending.append(row)
                if len(pending) >= batch:
                    await self.db.executemany(sql, pending)
                    written, pending = written + len(pending), []
            if pending:
                await self.db.executemany(sql, pending)
                written += len(pending)
        return written

    async def reset_identities(self, table: Table) -> None:
        """Nothing to do: SQLite moves ``sqlite_sequence`` past an explicit id itself."""


# ---------------------------------------------------------------------- PostgreSQL

_PG_KINDS = {
    "bigint": "integer", "integer": "integer", "smallint": "integer",
    "text": "text", "character varying": "text", "boolean": "boolean",
    "timestamp with time zone": "timestamp", "jsonb": "json", "json": "json",
}
_PG_ERRORS = postgres_failures.DRIVER_ERRORS
# How long the copy waits for the destination's tables when someone else is writing.
LOCK_WAIT = 10.0



async def _quietly(ending: Callable[[], Awaitable[None]]) -> None:
    """End a transaction whose outcome no longer matters (see the callers)."""
    with contextlib.suppress(*_PG_ERRORS):
        await ending()


_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type,
       c.is_identity = 'YES' OR coalesce(c.column_default, '') LIKE 'nextval(%' AS identity
FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""
# One row per column pair of each foreign key (single- and multi-column alike).
_FOREIGN_KEYS = """
SELECT k.oid, child.relname AS child, parent.relname AS parent,
       a.attname AS column_name, pa.attname AS parent_column
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS pair(child_att, parent_att)
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = pair.child_att
JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = pair.parent_att
WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace
"""


class PostgresSide:
    """One PostgreSQL database, on a connection of its own (not a store's pool)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str) -> PostgresSide:
        dsn, _pool = postgres_options(url)  # the pool's options are not the driver's
        with cls._translated("connecting to PostgreSQL"):
            conn = await asyncpg.connect(dsn, timeout=30)
        return cls(conn)

    async def close(self) -> None:
        # Closing says nothing about the copy (committed or not by now): a connection
        # that cannot close politely is dropped, and the copy's own outcome stands.
        try:
            await self.conn.close(timeout=10)
        except _PG_ERRORS:
            self.conn.terminate()

    @staticmethod
    @contextmanager
    def _translated(doing: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except _PG_ERRORS as exc:
            raise postgres_failures.translate(exc, doing) from exc

    async def tables(self) -> dict[str, Table]:
        with self._translated("reading the catalogue"):
            columns = await self.conn.fetch(_COLUMNS)
            keys = await self.conn.fetch(_FOREIGN_KEYS)
        by_table: dict[str, list[Column]] = defaultdict(list)
        for row in columns:
            kind = _PG_KINDS.get(row["data_type"])
            if kind is None:
                raise CopyRefused(f"column {row['table_name']}.{row['column_name']} has the "
                                  f"type {row['data_type']}, which a copy does not know")
            by_table[row["table_name"]].append(
                Column(row["column_name"], kind, identity=bool(row["identity"])))
        pairs: dict[int, list[tuple[str, str, str, str]]] = defaultdict(list)
        for row in keys:
            pairs[row["oid"]].append((row["child"], row["column_name"], row["parent"],
                                      row["parent_column"]))
        parents: dict[str, set[str]] = defaultdict(set)
        links: dict[str, list[Link]] = defaultdict(list)
        for key in pairs.values():
            parents[key[0][0]].add(key[0][2])
            if len(key) == 1:
                links[key[0][0]].append(Link(key[0][1], key[0][2], key[0][3]))
        return {name: Table(name, tuple(cols), frozenset(parents[name]), tuple(links[name]))
                for name, cols in by_table.items()}

    # -- reading

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        transaction = self.conn.transaction(isolation="repeatable_read", readonly=True)
        with self._translated("reading the database"):
            await transaction.start()
        try:
            yield
        finally:
            await _quietly(transaction.rollback)  # it only read

    async def count(self, table: str) -> int:
        with self._translated(f"counting the rows of {table}"):
            return int(await self.conn.fetchval(f"SELECT count(*) FROM {_quote(table)}"))

    async def rows(self, table: str, columns: Sequence[str], *, school_via: Link | None,
                   batch: int) -> AsyncIterator[Sequence[Row]]:
        select = ", ".join(f"t.{_quote(c)}" for c in columns)
        join = ""
        if school_via is not None:
            select += f", p.{_quote(SCHOOL_COLUMN)}"
            join = (f" LEFT JOIN {_quote(school_via.parent)} AS p ON "
                    f"p.{_quote(school_via.parent_column)} = t.{_quote(school_via.column)}")
        sql = f"SELECT {select} FROM {_quote(table)} AS t{join}"
        chunk: list[Row] = []
        with self._translated(f"reading the rows of {table}"):
            async for record in self.conn.cursor(sql, prefetch=batch):
                chunk.append(tuple(record))
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    # -- writing

    @asynccontextmanager
    async def transaction(self, tables: Sequence[str]) -> AsyncIterator[None]:
        transaction = self.conn.transaction()
        with self._translated("starting the copy"):
            await transaction.start()
        try:
            await self._lock(tables)
            yield
        except BaseException:
            # If even this fails, the connection is gone, and PostgreSQL undoes what a
            # lost connection left uncommitted: the error that stopped the copy is the
            # one to report.
            await _quietly(transaction.rollback)
            raise
        with self._translated("committing the copy"):
            await transaction.commit()

    async def _lock(self, tables: Sequence[str]) -> None:
        """EXCLUSIVE: readers go on, writers (a server started too early) wait until the
        copy ends. Waiting for one already writing is bounded by :data:`LOCK_WAIT`."""
        if not tables:
            return
        try:
            with self._translated("locking the destination's tables"):
                await self.conn.execute(f"SET LOCAL lock_timeout = {int(LOCK_WAIT * 1000)}")
                await self.conn.execute(
                    f"LOCK TABLE {', '.join(map(_quote, tables))} IN EXCLUSIVE MODE")
                await self.conn.execute("SET LOCAL lock_timeout = 0")
        except StoreBusy as exc:
            raise CopyRefused(
                f"the destination's tables stayed in use for {LOCK_WAIT:g} s (is a server "
                "already running on it?): stop it and run the copy again. Nothing was "
                "written.") from exc

    async def occupied(self, tables: Sequence[str]) -> list[str]:
        with self._translated("reading the destination"):
            return [t for t in tables
                    if await self.conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_quote(t)})")]

    async def write(self, table: str, columns: Sequence[str], rows: AsyncIterator[Row]) -> int:
        with self._translated(f"writing the rows of {table}"):
            status = await self.conn.copy_records_to_table(
                table, records=rows, columns=list(columns))
        return int(status.rpartition(" ")[2])

    async def reset_identities(self, table: Table) -> None:
        for column in table.columns:
            if column.identity:
                with self._translated(f"resetting the sequence of {table.name}"):
                    await self.conn.execute(
                        f"SELECT setval(pg_get_serial_sequence($1, $2), "
                        f"coalesce(max({_quote(column.name)}), 0) + 1, false) "
                        f"FROM {_quote(table.name)}", _quote(table.name), column.name)


async def copy_database(source_url: str, destination_url: str, *, batch: int = 5000,
                        progress: Progress | None = None) -> CopyReport:
    """Copy everything at ``source_url`` into the empty database at ``destination_url``.

    :class:`CopyRefused` (nothing written) when the destination holds anything, the
    source does not exist, or the two schemas differ; a :class:`StoreError` when the
    copy failed (nothing written either).
    """
    if source_url == destination_url:
        raise CopyRefused("the source and the destination are the same database")
    await prepare(source_url, must_exist=True)
    await prepare(destination_url, must_exist=False)
    async with open_source(source_url) as source, \
            open_destination(destination_url) as destination:
        return await copy_between(source, destination, batch=batch, progress=progress)
