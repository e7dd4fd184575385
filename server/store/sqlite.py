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
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, NoReturn

import aiosqlite

from ..errors import MembersChanged, NotFound, StoreError
from ..model import (
    ClassId,
    Directory,
    DiscussionId,
    DiscussionMembers,
    Participant,
    Profile,
    ProfileId,
    Role,
    School,
    SchoolClass,
    SchoolId,
    SchoolSettings,
    SchoolState,
    User,
    UserId,
    UserPreferences,
)
from ..relations import relations_from_json, relations_to_json
from ..settings import (
    diff,
    flatten,
    preferences_from_json,
    preferences_to_json,
    settings_from_json,
    settings_to_json,
    without_unknown_profiles,
)
from .appender import Appender, hidden_json, hidden_set
from .base import (
    AlreadyStarted,
    AuditEntry,
    Discussion,
    DiscussionSummary,
    HeldMessage,
    ImportReport,
    StoredMessage,
)
from .failures import WriteHealth, translate
from .sqlite_broadcasts import SqliteBroadcasts
from .sqlite_search import SqliteSearch
from .sqlite_sessions import SqliteSessions, end_deactivated
from .sqlite_signin import SqliteSignin
from .times import dt, ts

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




class SqliteStore(SqliteBroadcasts, SqliteSessions, SqliteSignin, SqliteSearch):
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

    # ------------------------------------------------------------------ meta

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ schools

    async def list_schools(self) -> list[SchoolId]:
        rows = await self._all("SELECT id FROM schools ORDER BY id", ())
        return [SchoolId(r[0]) for r in rows]

    async def school_version(self, school_id: SchoolId) -> int:
        row = await self._one("SELECT version FROM schools WHERE id = ?", (school_id,))
        if row is None:
            raise NotFound(f"no school {school_id!r}")
        return int(row[0])

    async def load_school(
        self, school_id: SchoolId, *, known: SchoolState | None = None
    ) -> SchoolState:
        row = await self._one(
            "SELECT name, settings, version, directory_version FROM schools WHERE id = ?",
            (school_id,),
        )
        if row is None:
            raise NotFound(f"no school {school_id!r}")
        name, settings_json, version, directory_version = row
        settings = settings_from_json(json.loads(settings_json))
        if (known is not None and known.directory.school.id == school_id
                and known.directory_version == directory_version):
            # Only settings or preferences moved: the directory rows are unchanged.
            changed = {
                UserId(r[0]): preferences_from_json(json.loads(r[2]), Role(r[1]))
                for r in await self._all(
                    "SELECT id, role, preferences FROM users WHERE school_id = ? AND active = 1 "
                    "AND preferences IS NOT NULL",
                    (school_id,),
                )
            }
            settings = without_unknown_profiles(settings, known.directory.profiles)
            directory = known.directory
            if directory.timezone != settings.timezone:
                directory = replace(directory, timezone=settings.timezone)
            return SchoolState(directory, settings, changed, int(version),
                               int(directory_version))
        profiles = {
            ProfileId(r[0]): Profile(ProfileId(r[0]), r[1])
            for r in await self._all(
                "SELECT id, name FROM profiles WHERE school_id = ? AND active = 1 ORDER BY rowid",
                (school_id,),
            )
        }
        classes = {
            ClassId(r[0]): SchoolClass(ClassId(r[0]), r[1], r[2])
            for r in await self._all(
                "SELECT id, name, level FROM classes WHERE school_id = ? AND active = 1 "
                "ORDER BY rowid",
                (school_id,),
            )
        }
        users: dict[UserId, User] = {}
        preferences: dict[UserId, UserPreferences] = {}
        for r in await self._all(
            "SELECT id, role, first_name, last_name, profile, class_id, children, delegate_of, "
            "teaches, admin, preferences, relations FROM users WHERE school_id = ? AND active = 1 "
            "ORDER BY rowid",
            (school_id,),
        ):
            user = User(
                id=UserId(r[0]),
                role=Role(r[1]),
                first_name=r[2],
                last_name=r[3],
                profile=ProfileId(r[4]),
                class_id=None if r[5] is None else ClassId(r[5]),
                children=tuple(UserId(c) for c in json.loads(r[6])),
                delegate_of=frozenset(ClassId(c) for c in json.loads(r[7])),
                teaches=frozenset(ClassId(c) for c in json.loads(r[8])),
                admin=bool(r[9]),
                relations=relations_from_json(r[6], r[11]),
            )
            users[user.id] = user
            if r[10] is not None:
                preferences[user.id] = preferences_from_json(json.loads(r[10]), user.role)
        # A profile removed by a re-import cannot stay switched off in the settings.
        settings = without_unknown_profiles(settings, profiles)
        directory = Directory(
            school=School(school_id, name),
            timezone=settings.timezone,
            profiles=profiles,
            classes=classes,
            users=users,
        )
        return SchoolState(directory, settings, preferences, int(version),
                           int(directory_version))

    async def import_directory(
        self, directory: Directory, *, actor: str, now: datetime
    ) -> ImportReport:
        sid = directory.school.id
        async with self._transaction() as db:
            row = await (
                await db.execute("SELECT settings FROM schools WHERE id = ?", (sid,))
            ).fetchone()
            created = row is None
            if created:
                settings = (SchoolSettings() if directory.timezone is None
                            else SchoolSettings(timezone=directory.timezone))
                await db.execute(
                    "INSERT INTO schools (id, name, settings, version, created_at) "
                    "VALUES (?, ?, ?, 1, ?)",
                    (sid, directory.school.name,
                     json.dumps(settings_to_json(settings, directory.profiles)), ts(now)),
                )
            else:
                assert row is not None
                old = settings_from_json(json.loads(row[0]))
                if directory.timezone is not None and old.timezone != directory.timezone:
                    new = replace(old, timezone=directory.timezone)
                    await self._write_settings(db, sid, old, new, list(directory.profiles),
                                               actor=actor, now=now)
                await db.execute(
                    "UPDATE schools SET name = ?, version = version + 1, "
                    "directory_version = directory_version + 1 WHERE id = ?",
                    (directory.school.name, sid),
                )
            await _replace_rows(
                db, "profiles", sid, ["id", "name"],
                [(p.id, p.name) for p in directory.profiles.values()],
            )
            await _replace_rows(
                db, "classes", sid, ["id", "name", "level"],
                [(c.id, c.name, c.level) for c in directory.classes.values()],
            )
            existing = {
                r[0]: bool(r[1])
                for r in await (
                    await db.execute("SELECT id, active FROM users WHERE school_id = ?", (sid,))
                ).fetchall()
            }
            await db.executemany(
                "INSERT INTO users (school_id, id, role, first_name, last_name, profile, "
                "class_id, children, delegate_of, teaches, admin, relations, active) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (school_id, id) DO UPDATE SET role = excluded.role, "
                "first_name = excluded.first_name, last_name = excluded.last_name, "
                "profile = excluded.profile, class_id = excluded.class_id, "
                "children = excluded.children, delegate_of = excluded.delegate_of, "
                "teaches = excluded.teaches, admin = excluded.admin, "
                "relations = excluded.relations, active = 1, "
                # A user whose role changed starts again from that role's defaults.
                "preferences = CASE WHEN users.role = excluded.role THEN users.preferences "
                "ELSE NULL END",
                [
                    (sid, u.id, u.role.value, u.first_name, u.last_name, u.profile, u.class_id,
                     json.dumps(list(u.children)), json.dumps(sorted(u.delegate_of)),
                     json.dumps(sorted(u.teaches)), int(u.admin), relations_to_json(u))
                    for u in directory.users.values()
                ],
            )
            gone = [uid for uid, active in existing.items()
                    if active and uid not in directory.users]
            await db.executemany(
                "UPDATE users SET active = 0 WHERE school_id = ? AND id = ?",
                [(sid, uid) for uid in gone],
            )
            await end_deactivated(db, sid, gone, now)
            version_row = await (
                await db.execute("SELECT version FROM schools WHERE id = ?", (sid,))
            ).fetchone()
            assert version_row is not None
            added = sum(1 for uid in directory.users if uid not in existing)
            return ImportReport(
                school_id=sid,
                created=created,
                users_added=added,
                users_updated=len(directory.users) - added,
                users_deactivated=len(gone),
                version=int(version_row[0]),
            )

    async def update_settings(
        self, school_id: SchoolId, settings: SchoolSettings, *, actor: str, now: datetime
    ) -> list[AuditEntry]:
        async with self._transaction() as db:
            row = await (
                await db.execute("SELECT settings FROM schools WHERE id = ?", (school_id,))
            ).fetchone()
            if row is None:
                raise NotFound(f"no school {school_id!r}")
            old = settings_from_json(json.loads(row[0]))
            profiles = [
                r[0] for r in await (
                    await db.execute(
                        "SELECT id FROM profiles WHERE school_id = ? AND active = 1 "
                        "ORDER BY rowid", (school_id,)
                    )
                ).fetchall()
            ]
            entries = await self._write_settings(db, school_id, old, settings, profiles,
                                                 actor=actor, now=now)
            if entries:
                await db.execute(
                    "UPDATE schools SET version = version + 1 WHERE id = ?", (school_id,)
                )
            return entries

    async def _write_settings(
        self,
        db: aiosqlite.Connection,
        school_id: SchoolId,
        old: SchoolSettings,
        new: SchoolSettings,
        profiles: Sequence[str],
        *,
        actor: str,
        now: datetime,
    ) -> list[AuditEntry]:
        pids = [ProfileId(p) for p in profiles]
        new_doc = settings_to_json(new, pids)
        changes = diff(flatten(settings_to_json(old, pids)), flatten(new_doc))
        if not changes:
            return []
        await db.execute(
            "UPDATE schools SET settings = ? WHERE id = ?", (json.dumps(new_doc), school_id)
        )
        return await _audit(db, school_id, actor, now, changes)

    async def update_preferences(
        self,
        school_id: SchoolId,
        user_id: UserId,
        preferences: UserPreferences,
        *,
        actor: str,
        now: datetime,
    ) -> list[AuditEntry]:
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT role, preferences FROM users "
                    "WHERE school_id = ? AND id = ? AND active = 1",
                    (school_id, user_id),
                )
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            role = Role(row[0])
            old = (preferences_from_json(json.loads(row[1]), role)
                   if row[1] is not None else UserPreferences())
            old_doc = preferences_to_json(old, role)
            new_doc = preferences_to_json(preferences, role)
            changes = diff(flatten(old_doc, f"users.{user_id}."),
                           flatten(new_doc, f"users.{user_id}."))
            if not changes:
                return []
            await db.execute(
                "UPDATE users SET preferences = ? WHERE school_id = ? AND id = ?",
                (json.dumps(new_doc), school_id, user_id),
            )
            await db.execute(
                "UPDATE schools SET version = version + 1 WHERE id = ?", (school_id,)
            )
            return await _audit(db, school_id, actor, now, changes)

    async def audit_log(
        self, school_id: SchoolId, *, before: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        rows = await self._all(
            "SELECT id, at, actor, field, old, new FROM audit WHERE school_id = ? AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            (school_id, before if before is not None else 2**62, limit),
        )
        return [
            AuditEntry(r[0], school_id, dt(r[1]), r[2], r[3],
                       json.loads(r[4]) if r[4] is not None else None,
                       json.loads(r[5]) if r[5] is not None else None)
            for r in rows
        ]

    # ------------------------------------------------------------------ discussions

    async def create_discussion(
        self,
        school_id: SchoolId,
        creator: UserId,
        subject: str,
        recipients: Sequence[UserId],
        *,
        now: datetime,
        first: tuple[str, str] | None = None,
    ) -> DiscussionMembers:
        at = ts(now)
        start = None if first is None else first[0]
        async with self._transaction() as db:
            # Unique by (school, creator, start client id): a start stored meanwhile by
            # another connection leaves this insert without a row, and this transaction
            # is undone with nothing written.
            inserted = await (await db.execute(
                "INSERT INTO discussions (school_id, subject, created_by, created_at, last_at, "
                "last_seq, start_client_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (school_id, created_by, start_client_id) "
                "WHERE start_client_id IS NOT NULL DO NOTHING RETURNING id",
                (school_id, subject, creator, at, at, 0 if first is None else 1, start),
            )).fetchone()
            if inserted is None:
                assert start is not None
                row = await (await db.execute(_STARTED, (school_id, creator, start))).fetchone()
                assert row is not None  # the conflicting row, seen by this write transaction
                raise AlreadyStarted(_started(row, creator, start))
            did = int(inserted[0])
            rows: list[tuple[SchoolId, int, UserId, UserId | None, str]] = [
                (school_id, did, creator, None, at)]
            rows += [(school_id, did, r, creator, at) for r in dict.fromkeys(recipients)
                     if r != creator]
            await db.executemany(
                "INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
                "joined_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if first is not None:
                await db.execute(
                    "INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, "
                    "body, created_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
                    (school_id, did, creator, *first, at),
                )
        return await self.members(school_id, DiscussionId(did))

    async def get_discussion(self, school_id: SchoolId, discussion_id: DiscussionId) -> Discussion:
        row = await self._one(
            "SELECT id, subject, created_by, created_at, last_seq FROM discussions "
            "WHERE school_id = ? AND id = ?",
            (school_id, discussion_id),
        )
        if row is None:
            raise NotFound(f"no discussion {discussion_id}")
        return Discussion(DiscussionId(row[0]), school_id, row[1], UserId(row[2]),
                          dt(row[3]), int(row[4]))

    async def find_message(
        self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._one(
            "SELECT seq, body, created_at, hidden_from FROM messages "
            "WHERE school_id = ? AND discussion_id = ? AND sender = ? AND client_id = ?",
            (school_id, discussion_id, sender, client_id),
        )
        if row is None:
            return None
        return StoredMessage(discussion_id, int(row[0]), sender, client_id, row[1], dt(row[2]),
                             hidden_set(row[3]))

    async def find_started(
        self, school_id: SchoolId, creator: UserId, client_id: str
    ) -> StoredMessage | None:
        row = await self._one(_STARTED, (school_id, creator, client_id))
        return None if row is None else _started(row, creator, client_id)

    async def members(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> DiscussionMembers:
        row = await self._one(
            "SELECT members_version FROM discussions WHERE school_id = ? AND id = ?",
            (school_id, discussion_id),
        )
        if row is None:
            raise NotFound(f"no discussion {discussion_id}")
        rows = await self._all(
            "SELECT user_id, invited_by, joined_at, left_at FROM participants "
            "WHERE discussion_id = ? ORDER BY rowid",
            (discussion_id,),
        )
        return DiscussionMembers(
            id=discussion_id,
            version=int(row[0]),
            participants=tuple(
                Participant(UserId(r[0]), None if r[1] is None else UserId(r[1]), dt(r[2]),
                            None if r[3] is None else dt(r[3]))
                for r in rows
            ),
        )

    async def add_participant(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        user_id: UserId,
        *,
        invited_by: UserId,
        now: datetime,
        members_version: int | None = None,
        readable_authors: Collection[UserId] | None = None,
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            last_seq = await self._bump_members(db, school_id, discussion_id, members_version)
            row = await (await db.execute(
                "SELECT left_seq FROM participants WHERE discussion_id = ? AND user_id = ?",
                (discussion_id, user_id))).fetchone()
            # What they have not been part of: everything for a newcomer, what came after
            # they left for someone coming back (left_seq is NULL while present).
            since = 0 if row is None else last_seq if row[0] is None else int(row[0])
            await db.execute(
                "INSERT INTO participants (school_id, discussion_id, user_id, invited_by, "
                "joined_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (discussion_id, user_id) "
                "DO UPDATE SET invited_by = excluded.invited_by, "
                "joined_at = excluded.joined_at, left_at = NULL, left_seq = NULL",
                (school_id, discussion_id, user_id, invited_by, ts(now)),
            )
            if readable_authors is not None and since < last_seq:
                await _hide_earlier(db, discussion_id, user_id, since, last_seq,
                                    readable_authors)
        return await self.members(school_id, discussion_id)

    async def leave(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, *, now: datetime
    ) -> DiscussionMembers:
        async with self._transaction() as db:
            await self._bump_members(db, school_id, discussion_id)
            cursor = await db.execute(
                "UPDATE participants SET left_at = ?, "
                "left_seq = (SELECT last_seq FROM discussions WHERE id = ?) "
                "WHERE discussion_id = ? AND user_id = ? AND left_at IS NULL",
                (ts(now), discussion_id, discussion_id, user_id),
            )
            if cursor.rowcount != 1:
                raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
        return await self.members(school_id, discussion_id)

    async def _bump_members(
        self, db: aiosqlite.Connection, school_id: SchoolId, discussion_id: DiscussionId,
        expected: int | None = None,
    ) -> int:
        """Move the membership version on (only from ``expected`` if given); returns the
        discussion's ``last_seq``, exact under the write lock."""
        row = await (await db.execute(
            "UPDATE discussions SET members_version = members_version + 1 "
            "WHERE school_id = ? AND id = ? AND (? IS NULL OR members_version = ?) "
            "RETURNING last_seq",
            (school_id, discussion_id, expected, expected),
        )).fetchone()
        if row is None:
            await _changed_or_missing(db, school_id, discussion_id)
        return int(row[0])

    async def append_message(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        now: datetime,
        hidden_from: Collection[UserId] = (),
        members_version: int | None = None,
    ) -> tuple[StoredMessage, bool]:
        hidden = frozenset(hidden_from)
        if self._appender is not None:
            appended = await self._appender.append(school_id, discussion_id, sender, client_id,
                                                   body, now=now, hidden_from=hidden,
                                                   members_version=members_version)
            self._search_appended()  # indexed in batches (sqlite_search.py)
            return appended
        at = ts(now)
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT seq, body, created_at, hidden_from FROM messages "
                    "WHERE discussion_id = ? AND sender = ? AND client_id = ?",
                    (discussion_id, sender, client_id),
                )
            ).fetchone()
            if row is not None:
                return (StoredMessage(discussion_id, int(row[0]), sender, client_id, row[1],
                                      dt(row[2]), hidden_set(row[3])), False)
            seq_row = await (
                await db.execute(
                    "UPDATE discussions SET last_seq = last_seq + 1, last_at = ? "
                    "WHERE school_id = ? AND id = ? AND (? IS NULL OR members_version = ?) "
                    "RETURNING last_seq",
                    (at, school_id, discussion_id, members_version, members_version),
                )
            ).fetchone()
            if seq_row is None:
                await _changed_or_missing(db, school_id, discussion_id)
            seq = int(seq_row[0])
            await db.execute(
                "INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, body, "
                "created_at, hidden_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (school_id, discussion_id, seq, sender, client_id, body, at,
                 hidden_json(hidden)),
            )
        self._search_appended()
        return StoredMessage(discussion_id, seq, sender, client_id, body, now, hidden), True

    async def messages(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        reader: UserId | None = None,
    ) -> list[StoredMessage]:
        hidden = "" if reader is None else f"AND {_NOT_HIDDEN} "
        rows = await self._all(
            f"SELECT {_MESSAGE} FROM messages "
            f"WHERE school_id = ? AND discussion_id = ? AND seq < ? {hidden}"
            "ORDER BY seq DESC LIMIT ?",
            (school_id, discussion_id, before_seq if before_seq is not None else 2**62,
             *(() if reader is None else (reader,)), limit),
        )
        return [_message(discussion_id, r) for r in rows]

    async def discussions_of(self, school_id: SchoolId, user_id: UserId) -> list[Discussion]:
        rows = await self._all(
            "SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq FROM discussions d "
            "JOIN participants p ON p.discussion_id = d.id "
            "WHERE p.school_id = ? AND p.user_id = ? ORDER BY d.last_at DESC, d.id DESC",
            (school_id, user_id),
        )
        return [Discussion(DiscussionId(r[0]), school_id, r[1], UserId(r[2]), dt(r[3]),
                           int(r[4])) for r in rows]

    async def present_discussions(self, school_id: SchoolId, user_id: UserId) -> list[DiscussionId]:
        rows = await self._all(
            "SELECT discussion_id FROM participants "
            "WHERE school_id = ? AND user_id = ? AND left_at IS NULL",
            (school_id, user_id),
        )
        return [DiscussionId(r[0]) for r in rows]

    async def summaries(
        self, school_id: SchoolId, user_id: UserId, *, limit: int = 200,
        discussion_id: DiscussionId | None = None,
        before: tuple[datetime, DiscussionId] | None = None,
    ) -> list[DiscussionSummary]:
        only = "" if discussion_id is None else "AND d.id = ? "
        args: list[Any] = [school_id, user_id]
        if discussion_id is not None:
            args.append(discussion_id)
        if before is not None:
            only += "AND (d.last_at < ? OR (d.last_at = ? AND d.id < ?)) "
            args += [ts(before[0]), ts(before[0]), before[1]]
        rows = await self._all(
            "SELECT d.id, d.subject, d.created_by, d.created_at, d.last_seq, p.read_seq, "
            "COALESCE(p.left_seq, d.last_seq), d.last_at FROM discussions d "
            "JOIN participants p ON p.discussion_id = d.id "
            f"WHERE p.school_id = ? AND p.user_id = ? {only}"
            "ORDER BY d.last_at DESC, d.id DESC LIMIT ?",
            (*args, limit),
        )
        out = []
        for r in rows:
            did = DiscussionId(r[0])
            visible, read = int(r[6]), int(r[5])
            message = await self._last_message(did, visible, user_id)
            out.append(DiscussionSummary(
                Discussion(did, school_id, r[1], UserId(r[2]), dt(r[3]), int(r[4])),
                await self.members(school_id, did), read, visible, message, dt(r[7]),
                await self._hidden_unread(did, read, visible, user_id)))
        return out

    async def _last_message(self, d: DiscussionId, visible: int,
                            reader: UserId) -> StoredMessage | None:
        """The newest message up to ``visible`` that is not hidden from ``reader``."""
        rows = await self._all(
            f"SELECT {_MESSAGE} FROM messages WHERE discussion_id = ? AND seq <= ? "
            f"AND {_NOT_HIDDEN} ORDER BY seq DESC LIMIT 1",
            (d, visible, reader),
        )
        return next((_message(d, m) for m in rows), None)

    async def _hidden_unread(self, d: DiscussionId, read: int, visible: int,
                             reader: UserId) -> int:
        """How many messages in ``(read, visible]`` are hidden from ``reader`` (a partial
        index keeps this to the rare rows that hide from anyone)."""
        if visible <= read:
            return 0
        row = await self._one(
            "SELECT COUNT(*) FROM messages WHERE discussion_id = ? AND seq > ? AND seq <= ? "
            f"AND hidden_from IS NOT NULL AND NOT {_NOT_HIDDEN}",
            (d, read, visible, reader),
        )
        return 0 if row is None else int(row[0])

    async def discussion_summaries(
        self, school_id: SchoolId, discussion_id: DiscussionId, users: Sequence[UserId]
    ) -> dict[UserId, DiscussionSummary]:
        wanted = sorted(set(users))
        found: list[Any] = []
        for i in range(0, len(wanted), 500):  # SQLite caps the ? of a statement
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found += await self._all(
                "SELECT p.user_id, d.subject, d.created_by, d.created_at, d.last_seq, "
                "p.read_seq, COALESCE(p.left_seq, d.last_seq) FROM discussions d "
                "JOIN participants p ON p.discussion_id = d.id "
                f"WHERE p.school_id = ? AND d.id = ? AND p.user_id IN ({marks})",
                (school_id, discussion_id, *chunk))
        if not found:
            return {}
        members = await self.members(school_id, discussion_id)
        last_visible: dict[int, StoredMessage | None] = {}
        out = {}
        for r in found:
            user, visible, read = UserId(r[0]), int(r[6]), int(r[5])
            if visible not in last_visible:
                rows = await self._all(
                    f"SELECT {_MESSAGE} FROM messages "
                    "WHERE discussion_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
                    (discussion_id, visible))
                last_visible[visible] = next((_message(discussion_id, m) for m in rows), None)
            last = last_visible[visible]
            if last is not None and user in last.hidden_from:
                last = await self._last_message(discussion_id, visible, user)
            out[user] = DiscussionSummary(
                Discussion(discussion_id, school_id, r[1], UserId(r[2]), dt(r[3]), int(r[4])),
                members, read, visible, last,
                hidden_unread=await self._hidden_unread(discussion_id, read, visible, user))
        return out

    async def mark_read(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, seq: int
    ) -> int:
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "UPDATE participants SET read_seq = MAX(read_seq, MIN(?, "
                    "COALESCE(left_seq, (SELECT last_seq FROM discussions WHERE id = ?)))) "
                    "WHERE school_id = ? AND discussion_id = ? AND user_id = ? "
                    "RETURNING read_seq",
                    (seq, discussion_id, school_id, discussion_id, user_id),
                )
            ).fetchone()
        if row is None:
            raise NotFound(f"{user_id!r} is not in discussion {discussion_id}")
        return int(row[0])

    async def read_positions(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> dict[UserId, int]:
        rows = await self._all(
            "SELECT user_id, read_seq FROM participants "
            "WHERE school_id = ? AND discussion_id = ?", (school_id, discussion_id))
        return {UserId(r[0]): int(r[1]) for r in rows}

    async def visible_seq(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId
    ) -> int | None:
        row = await self._one(
            "SELECT COALESCE(p.left_seq, d.last_seq) FROM participants p "
            "JOIN discussions d ON d.id = p.discussion_id "
            "WHERE p.school_id = ? AND p.discussion_id = ? AND p.user_id = ?",
            (school_id, discussion_id, user_id),
        )
        return None if row is None else int(row[0])

    async def recent_starts(self, school_id: SchoolId, user_id: UserId, *, since: datetime,
                            limit: int) -> list[datetime]:
        rows = await self._all(
            "SELECT at FROM (SELECT created_at AS at FROM discussions "
            "WHERE school_id = ? AND created_by = ? AND created_at > ? "
            "UNION ALL SELECT created_at FROM held WHERE school_id = ? AND sender = ? "
            "AND discussion_id IS NULL AND created_at > ?) ORDER BY at DESC LIMIT ?",
            (school_id, user_id, ts(since), school_id, user_id, ts(since), limit))
        return [dt(r[0]) for r in rows]

    async def hold(
        self,
        school_id: SchoolId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        discussion_id: DiscussionId | None,
        subject: str | None,
        recipients: Sequence[UserId],
        now: datetime,
        release_at: datetime,
    ) -> tuple[HeldMessage, bool]:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO held (school_id, sender, client_id, discussion_id, subject, "
                "recipients, body, created_at, release_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (school_id, sender, client_id) DO NOTHING",
                (school_id, sender, client_id, discussion_id, subject,
                 json.dumps(list(recipients)), body, ts(now), ts(release_at)),
            )
            new = cursor.rowcount == 1
            row = await (
                await db.execute(f"SELECT {_HELD} FROM held "
                                 "WHERE school_id = ? AND sender = ? AND client_id = ?",
                                 (school_id, sender, client_id))
            ).fetchone()
        assert row is not None
        return _held(row), new

    async def claim_due(self, now: datetime, *, limit: int = 100) -> list[HeldMessage]:
        # Every node asks every second: look first, so that an empty answer takes no
        # write lock away from the appender's commits.
        if not await self._all("SELECT 1 FROM held WHERE release_at <= ? LIMIT 1", (ts(now),)):
            return []
        stale = ts(now - timedelta(minutes=1))
        async with self._transaction() as db:
            rows = await (
                await db.execute(
                    f"UPDATE held SET claimed_at = ? WHERE id IN (SELECT id FROM held "
                    "WHERE release_at <= ? AND (claimed_at IS NULL OR claimed_at < ?) "
                    f"ORDER BY id LIMIT ?) RETURNING {_HELD}",
                    (ts(now), ts(now), stale, limit),
                )
            ).fetchall()
        return sorted((_held(r) for r in rows), key=lambda h: h.id)

    async def release_held(self, held_id: int, *, later: datetime | None = None) -> None:
        async with self._transaction() as db:
            if later is None:
                await db.execute("DELETE FROM held WHERE id = ?", (held_id,))
            else:
                await db.execute("UPDATE held SET release_at = ?, claimed_at = NULL "
                                 "WHERE id = ?", (ts(later), held_id))

    async def schools_holding(self, now: datetime) -> list[SchoolId]:
        rows = await self._all(
            "SELECT school_id FROM held WHERE release_at > ? UNION "
            "SELECT school_id FROM broadcasts WHERE status = 'scheduled' "
            "AND held_for_hours = 1 AND publish_at > ?", (ts(now), ts(now)))
        return [SchoolId(r[0]) for r in rows]

    async def release_for_opening(self, school_id: SchoolId, now: datetime) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE held SET release_at = ? "
                             "WHERE school_id = ? AND release_at > ?",
                             (ts(now), school_id, ts(now)))
            await db.execute("UPDATE broadcasts SET publish_at = ? WHERE school_id = ? "
                             "AND status = 'scheduled' AND held_for_hours = 1 "
                             "AND publish_at > ?", (ts(now), school_id, ts(now)))

    async def messages_after(
        self, school_id: SchoolId, discussion_id: DiscussionId, after_seq: int, *,
        upto: int | None = None, limit: int = 1000, newest: bool = False
    ) -> list[StoredMessage]:
        order = "DESC" if newest else "ASC"
        rows = list(await self._all(
            f"SELECT {_MESSAGE} FROM messages "
            "WHERE school_id = ? AND discussion_id = ? AND seq > ? AND seq <= ? "
            f"ORDER BY seq {order} LIMIT ?",
            (school_id, discussion_id, after_seq, upto if upto is not None else 2**62, limit),
        ))
        if newest:
            rows.reverse()
        return [_message(discussion_id, r) for r in rows]


# ---------------------------------------------------------------------- helpers

_MESSAGE = "seq, sender, client_id, body, created_at, hidden_from"

# "Not hidden from the reader ?": NULL (nobody hidden, the usual case) short-circuits.
_NOT_HIDDEN = ("(hidden_from IS NULL OR NOT EXISTS "
               "(SELECT 1 FROM json_each(hidden_from) WHERE value = ?))")


async def _changed_or_missing(db: aiosqlite.Connection, school_id: SchoolId,
                              discussion_id: DiscussionId) -> NoReturn:
    """A write conditional on the membership version matched nothing: say why."""
    row = await (await db.execute("SELECT 1 FROM discussions WHERE school_id = ? AND id = ?",
                                  (school_id, discussion_id))).fetchone()
    if row is None:
        raise NotFound(f"no discussion {discussion_id}")
    raise MembersChanged(f"the members of discussion {discussion_id} changed")


async def _hide_earlier(db: aiosqlite.Connection, discussion_id: DiscussionId, user: UserId,
                        since: int, upto: int, readable: Collection[UserId]) -> None:
    """Add ``user`` to the ``hidden_from`` of the messages in ``(since, upto]`` whose
    author is not in ``readable`` (kept a sorted JSON list, as the appender writes it)."""
    rows = await (await db.execute(
        "SELECT seq, hidden_from FROM messages WHERE discussion_id = ? AND seq > ? "
        "AND seq <= ? AND sender NOT IN (SELECT value FROM json_each(?))",
        (discussion_id, since, upto, json.dumps(sorted(readable))),
    )).fetchall()
    await db.executemany(
        "UPDATE messages SET hidden_from = ? WHERE discussion_id = ? AND seq = ?",
        [(hidden_json(hidden_set(r[1]) | {user}), discussion_id, int(r[0])) for r in rows])


# The first message of the discussion a creator started with a client id (by the
# discussions_by_start index): retries and racing starts are answered with it.
_STARTED = ("SELECT d.id, m.body, m.created_at FROM discussions d "
            "JOIN messages m ON m.discussion_id = d.id AND m.seq = 1 "
            "WHERE d.school_id = ? AND d.created_by = ? AND d.start_client_id = ?")


def _started(r: Any, creator: UserId, client_id: str) -> StoredMessage:
    return StoredMessage(DiscussionId(r[0]), 1, creator, client_id, r[1], dt(r[2]))


def _message(d: DiscussionId, r: Any) -> StoredMessage:
    """A :class:`StoredMessage` from a row of the ``_MESSAGE`` columns."""
    return StoredMessage(d, int(r[0]), UserId(r[1]), r[2], r[3], dt(r[4]), hidden_set(r[5]))

_HELD = ("id, school_id, sender, client_id, discussion_id, subject, recipients, body, "
         "created_at, release_at")


def _held(r: Any) -> HeldMessage:
    return HeldMessage(int(r[0]), SchoolId(r[1]), UserId(r[2]), r[3],
                       None if r[4] is None else DiscussionId(r[4]), r[5],
                       tuple(UserId(u) for u in json.loads(r[6] or "[]")), r[7], dt(r[8]),
                       dt(r[9]))



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



async def _replace_rows(
    db: aiosqlite.Connection,
    table: str,
    school_id: SchoolId,
    columns: list[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Upsert ``rows`` and deactivate the school's other rows of ``table`` (never delete)."""
    await db.execute(f"UPDATE {table} SET active = 0 WHERE school_id = ?", (school_id,))
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    await db.executemany(
        f"INSERT INTO {table} (school_id, {cols}, active) VALUES (?, {marks}, 1) "
        f"ON CONFLICT (school_id, id) DO UPDATE SET {updates}, active = 1",
        [(school_id, *row) for row in rows],
    )


async def _audit(
    db: aiosqlite.Connection,
    school_id: SchoolId,
    actor: str,
    now: datetime,
    changes: list[tuple[str, Any, Any]],
) -> list[AuditEntry]:
    entries = []
    for field, old, new in changes:
        cursor = await db.execute(
            "INSERT INTO audit (school_id, at, actor, field, old, new) VALUES (?, ?, ?, ?, ?, ?)",
            (school_id, ts(now), actor, field, json.dumps(old), json.dumps(new)),
        )
        assert cursor.lastrowid is not None
        entries.append(AuditEntry(cursor.lastrowid, school_id, now, actor, field, old, new))
    return entries
