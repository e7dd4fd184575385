"""The directory, settings and audit of :class:`~server.store.postgres.PostgresStore`.

A mixin over the store's private helpers (see
:class:`~server.store.postgres_broadcasts.PostgresBroadcasts` for what they do),
with the behaviour of :class:`~server.store.sqlite.SqliteStore`: an import upserts
and deactivates, never deletes; every settings or preference change bumps the
school's version and records one audit entry per changed field, in the same
transaction. Two nodes importing or changing the same school at once are ordered
by the lock on its ``schools`` row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..model import (
    ClassId,
    Directory,
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
from .base import AuditEntry, ImportReport

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[Record]

__all__ = ["PostgresDirectory"]


class PostgresDirectory:
    """Meta, schools, directory, settings, preferences and audit for PostgresStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[Connection]: ...
        def _snapshot(self) -> AbstractAsyncContextManager[Connection]: ...
        async def _fetch(self, sql: str, *args: Any) -> list[Record]: ...
        async def _fetchrow(self, sql: str, *args: Any) -> Record | None: ...

    # ------------------------------------------------------------------ meta

    async def get_meta(self, key: str) -> str | None:
        row = await self._fetchrow("SELECT value FROM meta WHERE key = $1", key)
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)

    # ------------------------------------------------------------------ schools

    async def list_schools(self) -> list[SchoolId]:
        return [SchoolId(r[0]) for r in await self._fetch("SELECT id FROM schools ORDER BY id")]

    async def school_version(self, school_id: SchoolId) -> int:
        row = await self._fetchrow("SELECT version FROM schools WHERE id = $1", school_id)
        if row is None:
            raise NotFound(f"no school {school_id!r}")
        return int(row[0])

    async def load_school(
        self, school_id: SchoolId, *, known: SchoolState | None = None
    ) -> SchoolState:
        # One snapshot: the version read is the version of the rows read.
        async with self._snapshot() as db:
            row = await db.fetchrow(
                "SELECT name, settings, version, directory_version FROM schools WHERE id = $1",
                school_id)
            if row is None:
                raise NotFound(f"no school {school_id!r}")
            name, settings_json, version, directory_version = row
            settings = settings_from_json(json.loads(settings_json))
            if (known is not None and known.directory.school.id == school_id
                    and known.directory_version == directory_version):
                # Only settings or preferences moved: the directory rows are unchanged.
                changed = {
                    UserId(r[0]): preferences_from_json(json.loads(r[2]), Role(r[1]))
                    for r in await db.fetch(
                        "SELECT id, role, preferences FROM users WHERE school_id = $1 "
                        "AND active AND preferences IS NOT NULL", school_id)
                }
                settings = without_unknown_profiles(settings, known.directory.profiles)
                directory = known.directory
                if directory.timezone != settings.timezone:
                    directory = replace(directory, timezone=settings.timezone)
                return SchoolState(directory, settings, changed, int(version),
                                   int(directory_version))
            profiles = {
                ProfileId(r[0]): Profile(ProfileId(r[0]), r[1])
                for r in await db.fetch("SELECT id, name FROM profiles WHERE school_id = $1 "
                                        "AND active ORDER BY rowid", school_id)
            }
            classes = {
                ClassId(r[0]): SchoolClass(ClassId(r[0]), r[1], r[2])
                for r in await db.fetch("SELECT id, name, level FROM classes "
                                        "WHERE school_id = $1 AND active ORDER BY rowid",
                                        school_id)
            }
            user_rows = await db.fetch(
                "SELECT id, role, first_name, last_name, profile, class_id, children, "
                "delegate_of, teaches, admin, preferences, relations FROM users "
                "WHERE school_id = $1 AND active ORDER BY rowid", school_id)
        users: dict[UserId, User] = {}
        preferences: dict[UserId, UserPreferences] = {}
        for r in user_rows:
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
        directory = Directory(school=School(school_id, name), timezone=settings.timezone,
                              profiles=profiles, classes=classes, users=users)
        return SchoolState(directory, settings, preferences, int(version),
                           int(directory_version))

    async def import_directory(
        self, directory: Directory, *, actor: str, now: datetime
    ) -> ImportReport:
        sid = directory.school.id
        async with self._transaction() as db:
            settings = (SchoolSettings() if directory.timezone is None
                        else SchoolSettings(timezone=directory.timezone))
            created = await db.fetchval(
                "INSERT INTO schools (id, name, settings, version, created_at) "
                "VALUES ($1, $2, $3, 1, $4) ON CONFLICT (id) DO NOTHING RETURNING true",
                sid, directory.school.name,
                json.dumps(settings_to_json(settings, directory.profiles)), now) is not None
            if not created:
                # Locks the school's row: imports and settings changes of this school queue
                # (NO KEY: discussions and audit rows referencing it need not wait).
                row = await db.fetchrow("SELECT settings FROM schools WHERE id = $1 "
                                        "FOR NO KEY UPDATE",
                                        sid)
                assert row is not None
                old = settings_from_json(json.loads(row[0]))
                if directory.timezone is not None and old.timezone != directory.timezone:
                    new = replace(old, timezone=directory.timezone)
                    await _write_settings(db, sid, old, new, list(directory.profiles),
                                          actor=actor, now=now)
                await db.execute(
                    "UPDATE schools SET name = $1, version = version + 1, "
                    "directory_version = directory_version + 1 WHERE id = $2",
                    directory.school.name, sid)
            await _replace_rows(db, "profiles", sid, ["id", "name"],
                                [(p.id, p.name) for p in directory.profiles.values()])
            await _replace_rows(db, "classes", sid, ["id", "name", "level"],
                                [(c.id, c.name, c.level) for c in directory.classes.values()])
            existing = {r[0]: bool(r[1]) for r in await db.fetch(
                "SELECT id, active FROM users WHERE school_id = $1", sid)}
            await db.executemany(
                "INSERT INTO users (school_id, id, role, first_name, last_name, profile, "
                "class_id, children, delegate_of, teaches, admin, relations, active) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, true) "
                "ON CONFLICT (school_id, id) DO UPDATE SET role = excluded.role, "
                "first_name = excluded.first_name, last_name = excluded.last_name, "
                "profile = excluded.profile, class_id = excluded.class_id, "
                "children = excluded.children, delegate_of = excluded.delegate_of, "
                "teaches = excluded.teaches, admin = excluded.admin, "
                "relations = excluded.relations, active = true, "
                # A user whose role changed starts again from that role's defaults.
                "preferences = CASE WHEN users.role = excluded.role THEN users.preferences "
                "ELSE NULL END",
                [(sid, u.id, u.role.value, u.first_name, u.last_name, u.profile, u.class_id,
                  json.dumps(list(u.children)), json.dumps(sorted(u.delegate_of)),
                  json.dumps(sorted(u.teaches)), u.admin, relations_to_json(u))
                 for u in directory.users.values()])
            gone = [uid for uid, active in existing.items()
                    if active and uid not in directory.users]
            if gone:
                await db.execute("UPDATE users SET active = false "
                                 "WHERE school_id = $1 AND id = ANY($2::text[])", sid, gone)
            version = await db.fetchval("SELECT version FROM schools WHERE id = $1", sid)
        added = sum(1 for uid in directory.users if uid not in existing)
        return ImportReport(school_id=sid, created=created, users_added=added,
                            users_updated=len(directory.users) - added,
                            users_deactivated=len(gone), version=int(version))

    async def update_settings(
        self, school_id: SchoolId, settings: SchoolSettings, *, actor: str, now: datetime
    ) -> list[AuditEntry]:
        async with self._transaction() as db:
            row = await db.fetchrow("SELECT settings FROM schools WHERE id = $1 "
                                        "FOR NO KEY UPDATE",
                                    school_id)
            if row is None:
                raise NotFound(f"no school {school_id!r}")
            old = settings_from_json(json.loads(row[0]))
            profiles = [r[0] for r in await db.fetch(
                "SELECT id FROM profiles WHERE school_id = $1 AND active ORDER BY rowid",
                school_id)]
            entries = await _write_settings(db, school_id, old, settings, profiles,
                                            actor=actor, now=now)
            if entries:
                await db.execute("UPDATE schools SET version = version + 1 WHERE id = $1",
                                 school_id)
            return entries

    async def update_preferences(
        self, school_id: SchoolId, user_id: UserId, preferences: UserPreferences, *,
        actor: str, now: datetime,
    ) -> list[AuditEntry]:
        async with self._transaction() as db:
            # The school's row first, as imports lock it: no two writers wait on each other.
            await db.execute("SELECT 1 FROM schools WHERE id = $1 FOR NO KEY UPDATE",
                             school_id)
            row = await db.fetchrow(
                "SELECT role, preferences FROM users WHERE school_id = $1 AND id = $2 "
                "AND active", school_id, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            role = Role(row[0])
            old = (preferences_from_json(json.loads(row[1]), role)
                   if row[1] is not None else UserPreferences())
            new_doc = preferences_to_json(preferences, role)
            changes = diff(flatten(preferences_to_json(old, role), f"users.{user_id}."),
                           flatten(new_doc, f"users.{user_id}."))
            if not changes:
                return []
            await db.execute("UPDATE users SET preferences = $1 WHERE school_id = $2 AND id = $3",
                             json.dumps(new_doc), school_id, user_id)
            await db.execute("UPDATE schools SET version = version + 1 WHERE id = $1",
                             school_id)
            return await _audit(db, school_id, actor, now, changes)

    async def audit_log(
        self, school_id: SchoolId, *, before: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        rows = await self._fetch(
            "SELECT id, at, actor, field, old, new FROM audit WHERE school_id = $1 "
            "AND id < $2 ORDER BY id DESC LIMIT $3",
            school_id, before if before is not None else 2**62, limit)
        return [AuditEntry(int(r[0]), school_id, r[1], r[2], r[3],
                           None if r[4] is None else json.loads(r[4]),
                           None if r[5] is None else json.loads(r[5])) for r in rows]


async def _write_settings(
    db: Connection, school_id: SchoolId, old: SchoolSettings, new: SchoolSettings,
    profiles: Sequence[str], *, actor: str, now: datetime,
) -> list[AuditEntry]:
    pids = [ProfileId(p) for p in profiles]
    new_doc = settings_to_json(new, pids)
    changes = diff(flatten(settings_to_json(old, pids)), flatten(new_doc))
    if not changes:
        return []
    await db.execute("UPDATE schools SET settings = $1 WHERE id = $2",
                     json.dumps(new_doc), school_id)
    return await _audit(db, school_id, actor, now, changes)



async def _replace_rows(db: Connection, table: str, school_id: SchoolId, columns: list[str],
                        rows: list[tuple[Any, ...]]) -> None:
    """Upsert ``rows`` and deactivate the school's other rows of ``table`` (never delete);
    an upserted row keeps its ``rowid``, so its place in the school's order."""
    await db.execute(f"UPDATE {table} SET active = false WHERE school_id = $1", school_id)
    cols = ", ".join(columns)
    marks = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    await db.executemany(
        f"INSERT INTO {table} (school_id, {cols}, active) VALUES ($1, {marks}, true) "
        f"ON CONFLICT (school_id, id) DO UPDATE SET {updates}, active = true",
        [(school_id, *row) for row in rows])


async def _audit(db: Connection, school_id: SchoolId, actor: str, now: datetime,
                 changes: list[tuple[str, Any, Any]]) -> list[AuditEntry]:
    entries = []
    for field, old, new in changes:
        entry_id = await db.fetchval(
            "INSERT INTO audit (school_id, at, actor, field, old, new) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            school_id, now, actor, field, json.dumps(old), json.dumps(new))
        entries.append(AuditEntry(int(entry_id), school_id, now, actor, field, old, new))
    return entries
