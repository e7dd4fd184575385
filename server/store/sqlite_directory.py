"""The directory, settings and audit of :class:`~server.store.sqlite.SqliteStore`.

A mixin over the store's ``_transaction``, ``_one`` and ``_all`` (see
:mod:`server.store.sqlite`). An import upserts and deactivates, never deletes; every
settings or preference change bumps the school's version and records one audit
entry per changed field, in the same ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

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
from .sqlite_sessions import end_deactivated
from .times import dt, ts

__all__ = ["SqliteDirectory"]


class SqliteDirectory:
    """Meta, schools, directory, settings, preferences and audit for SqliteStore."""

    if TYPE_CHECKING:
        def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
        async def _one(self, sql: str, args: Sequence[Any]) -> Any: ...
        async def _all(self, sql: str, args: Sequence[Any]) -> Iterable[Any]: ...

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
