"""``preau store copy``: a whole database, from one store URL into another.

The case that matters is a school (or a region) moving from SQLite to PostgreSQL;
nothing here names a direction. Both databases are first opened as stores, which
brings each to its latest migration; then every table is copied

- table by table, parents before children (the destination's foreign keys),
- column by column by *name*, each value converted to the destination column's
  type as the destination's catalogue gives it (SQLite's ISO text becomes a
  ``timestamptz``, 0/1 a ``boolean``, JSON text ``jsonb``; and back),
- filling ``school_id`` where the destination has it and the source does not,
  from the parent row (a poll's counts take their broadcast's school), and
  SQLite's implicit ``rowid`` where the destination keeps it as a column,
- streamed in batches: a table of a million messages is never held in memory.

All of it runs in ONE destination transaction, which locks the destination's
tables against writers: a copy that fails half-way leaves the destination as it
was. A destination that holds any row (``schema_version`` aside) is refused with
:class:`CopyRefused`; there is no ``--replace``: emptying a database is left to
its administrator, on purpose. The source is read from one snapshot. Before the
commit, every table's count in the destination is checked against the source's,
and identity sequences are moved past the largest copied id.

This module is the engine, on two small protocols (:class:`Source`,
:class:`Destination`); :mod:`server.store.copy_sides` implements them for SQLite and
PostgreSQL and holds the entry point, ``copy_database(source_url, destination_url)``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..errors import ConfigurationError, StoreError, UnstorableValue
from .times import ts

__all__ = [
    "Column",
    "CopyRefused",
    "CopyReport",
    "Destination",
    "Link",
    "Source",
    "Table",
    "TableCopied",
    "copy_between",
]

# Not data: each side's own record of its migrations.
SKIPPED = frozenset({"schema_version"})
SCHOOL_COLUMN = "school_id"
# SQLite's implicit row id, which a destination may keep as a real column.
ROWID = "rowid"

Row = tuple[object, ...]


class CopyRefused(ConfigurationError):
    """The copy was not attempted: nothing was written (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column as a catalogue describes it. ``kind`` is one of ``integer``, ``text``,
    ``boolean``, ``timestamp``, ``json``; ``implicit`` marks SQLite's ``rowid``,
    copied only where the destination asks for it by name."""

    name: str
    kind: str
    identity: bool = False
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class Link:
    """A single-column foreign key: ``column`` refers to ``parent.parent_column``."""

    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    parents: frozenset[str]        # tables this one refers to (any foreign key)
    links: tuple[Link, ...] = ()   # its single-column foreign keys

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True, slots=True)
class TableCopied:
    """One table done: ``rows`` copied (and counted again in the destination)."""

    table: str
    rows: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CopyReport:
    tables: tuple[TableCopied, ...]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


class Source(Protocol):
    """A database read from one snapshot (entered as a context manager)."""

    async def tables(self) -> dict[str, Table]: ...

    def snapshot(self) -> AbstractAsyncContextManager[None]: ...

    async def count(self, table: str) -> int: ...

    def rows(self, table: str, columns: Sequence[str], *, school_via: Link | None,
             batch: int) -> AsyncIterator[Sequence[Row]]:
        """The rows' ``columns`` (plus, with ``school_via``, the ``school_id`` of the
        parent row it links to, last), in batches, in the order they were written where
        the source knows it."""
        ...


class Destination(Protocol):
    """A database written in one transaction (entered as a context manager)."""

    async def tables(self) -> dict[str, Table]: ...

    def transaction(self, tables: Sequence[str]) -> AbstractAsyncContextManager[None]:
        """Everything until the block ends, committed only if it ends normally; the
        ``tables`` are locked against other writers meanwhile."""
        ...

    async def occupied(self, tables: Sequence[str]) -> list[str]:
        """Those of ``tables`` that hold at least one row."""
        ...

    async def write(self, table: str, columns: Sequence[str],
                    rows: AsyncIterator[Row]) -> int:
        """Insert every row; how many were inserted."""
        ...

    async def count(self, table: str) -> int: ...

    async def reset_identities(self, table: Table) -> None:
        """The next generated id of each identity column is past the largest present."""
        ...


Progress = Callable[[TableCopied], None]


@dataclass(frozen=True, slots=True)
class _Plan:
    table: Table                  # the destination's
    read: tuple[str, ...]         # source columns, in this order
    school_via: Link | None       # school_id from the parent row, appended to ``read``

    @property
    def written(self) -> tuple[str, ...]:
        return self.read + ((SCHOOL_COLUMN,) if self.school_via else ())


async def copy_between(source: Source, destination: Destination, *, batch: int = 5000,
                       progress: Progress | None = None) -> CopyReport:
    """Copy every table of ``source`` into the empty ``destination`` (see the module)."""
    plans = _plan(await source.tables(), await destination.tables())
    started = time.monotonic()
    done: list[TableCopied] = []
    names = [p.table.name for p in plans]
    async with destination.transaction(names):
        occupied = await destination.occupied(names)
        if occupied:
            raise CopyRefused(
                "the destination already holds data (in " + ", ".join(occupied) + "): "
                "a copy goes into an empty database only. Nothing was written.")
        async with source.snapshot():
            for plan in plans:
                done.append(await _copy_table(source, destination, plan, batch))
                if progress is not None:
                    progress(done[-1])
        for plan in plans:
            await destination.reset_identities(plan.table)
    return CopyReport(tuple(done), time.monotonic() - started)


async def _copy_table(source: Source, destination: Destination, plan: _Plan,
                      batch: int) -> TableCopied:
    name = plan.table.name
    started = time.monotonic()
    expected = await source.count(name)
    convert = _row_converter(plan)
    batches = source.rows(name, plan.read, school_via=plan.school_via, batch=batch)

    async def rows() -> AsyncIterator[Row]:
        async for chunk in batches:
            for row in chunk:
                yield convert(row)

    try:
        written = await destination.write(name, plan.written, rows())
    except StoreError as exc:
        raise type(exc)(f"copying table {name}: {exc}; nothing was committed") from exc
    stored = await destination.count(name)
    if not written == stored == expected:
        raise StoreError(
            f"copying table {name}: the source holds {expected} rows, {written} were "
            f"written and the destination counts {stored}; nothing was committed")
    return TableCopied(name, stored, time.monotonic() - started)


def _plan(source: Mapping[str, Table], destination: Mapping[str, Table]) -> list[_Plan]:
    """What to read for each destination table, parents first; refuses schemas that
    differ by more than ``school_id`` and ``rowid``."""
    wanted = {n for n in destination if n not in SKIPPED}
    have = {n for n in source if n not in SKIPPED}
    if wanted != have:
        missing = ", ".join(sorted(wanted - have)) or "none"
        extra = ", ".join(sorted(have - wanted)) or "none"
        raise CopyRefused(
            f"the two schemas differ (tables missing from the source: {missing}; "
            f"missing from the destination: {extra}): are both at the latest Préau "
            "version? Nothing was written.")
    plans = []
    for name in _dependency_order({n: destination[n] for n in wanted}):
        plans.append(_plan_table(source[name], destination[name], source))
    return plans


def _plan_table(src: Table, dst: Table, source: Mapping[str, Table]) -> _Plan:
    read: list[str] = []
    school_via: Link | None = None
    for column in dst.columns:
        if src.column(column.name) is not None:
            read.append(column.name)
        elif column.implicit:
            continue  # SQLite numbers its rows itself
        elif column.name == SCHOOL_COLUMN:
            school_via = _school_link(src, source)
        else:
            raise CopyRefused(
                f"the source's table {src.name} has no column {column.name}: are both "
                "databases at the latest Préau version? Nothing was written.")
    ignored = {c.name for c in src.columns if c.implicit} | {SCHOOL_COLUMN}
    lost = [c.name for c in src.columns if dst.column(c.name) is None and c.name not in ignored]
    if lost:
        raise CopyRefused(
            f"the destination's table {dst.name} has no column {', '.join(lost)}: are "
            "both databases at the latest Préau version? Nothing was written.")
    return _Plan(dst, tuple(read), school_via)


def _school_link(src: Table, source: Mapping[str, Table]) -> Link:
    """The foreign key through which a row of ``src`` finds its school."""
    for link in src.links:
        parent = source.get(link.parent)
        if parent is not None and parent.column(SCHOOL_COLUMN) is not None:
            return link
    raise CopyRefused(
        f"the destination's table {src.name} has a school_id and the source's has "
        "neither that column nor a parent to take it from. Nothing was written.")


def _dependency_order(tables: Mapping[str, Table]) -> list[str]:
    """Parents before children (alphabetical among equals, for a stable report)."""
    order: list[str] = []
    placed: set[str] = set()
    pending = sorted(tables)
    while pending:
        ready = [n for n in pending
                 if all(p in placed or p == n or p not in tables for p in tables[n].parents)]
        if not ready:
            raise CopyRefused("the destination's foreign keys form a cycle between "
                              + ", ".join(pending))
        order.extend(ready)
        placed.update(ready)
        pending = [n for n in pending if n not in placed]
    return order


# ---------------------------------------------------------------------- conversion


def _to_time(value: object) -> object:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time without its offset from UTC")
        return value
    raise TypeError(f"a {type(value).__name__}, not a time")


def _to_boolean(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("neither 0 nor 1")


def _to_integer(value: object) -> object:
    if isinstance(value, int):
        return int(value)  # a boolean becomes 0 or 1
    raise TypeError(f"a {type(value).__name__}, not an integer")


def _to_text(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return ts(value)  # SQLite keeps times as ISO 8601 text in UTC
    raise TypeError(f"a {type(value).__name__}, not text")


def _to_json(value: object) -> object:
    # JSON travels as its text both ways (asyncpg's default jsonb codec), and the
    # destination checks it: invalid JSON fails the copy there, with its reason.
    if isinstance(value, str):
        return value
    raise TypeError(f"a {type(value).__name__}, not JSON text")


_CONVERTERS: dict[str, Callable[[object], object]] = {
    "timestamp": _to_time, "boolean": _to_boolean, "integer": _to_integer,
    "text": _to_text, "json": _to_json,
}


def _row_converter(plan: _Plan) -> Callable[[Sequence[object]], Row]:
    columns = [plan.table.column(name) for name in plan.written]
    kinds = [c.kind if c is not None else "text" for c in columns]
    converters = [_CONVERTERS[kind] for kind in kinds]

    def convert(row: Sequence[object]) -> Row:
        out: list[object] = []
        for index, value in enumerate(row):
            if value is None:
                out.append(None)
                continue
            try:
                out.append(converters[index](value))
            except (ValueError, TypeError, OverflowError) as exc:
                raise UnstorableValue(
                    f"column {plan.written[index]} holds {value!r}, which cannot "
                    f"become {kinds[index]} ({exc})") from exc
        return tuple(out)

    return convert
