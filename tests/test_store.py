"""SqliteStore against a real SQLite file: migrations, import, settings, audit, discussions."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from server.directory import parse_directory
from server.errors import MembersChanged, NotFound
from server.model import (
    DiscussionId,
    ProfileId,
    SchoolId,
    SchoolSettings,
    UserId,
    UserPreferences,
)
from server.store import SqliteStore
from tests.conftest import SCHOOL_DAY
from tests.schools import other_school_doc, school_doc

pytestmark = pytest.mark.anyio

HUGO = SchoolId("hugo")
MOULIN = SchoolId("moulin")


async def _two_schools(store: SqliteStore) -> None:
    await store.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
    await store.import_directory(parse_directory(other_school_doc()), actor="t", now=SCHOOL_DAY)


# The highest NNNN of the shipped server/store/migrations/NNNN_name.sql files.
LATEST_MIGRATION = max(int(p.name[:4]) for p in (Path(__file__).resolve().parent.parent
                                                  / "server" / "store" / "migrations").glob(
    "[0-9][0-9][0-9][0-9]_*.sql"))


class TestMigrations:
    async def test_schema_is_versioned_and_reopening_is_idempotent(self, tmp_path: Path):
        path = str(tmp_path / "m.db")
        for _ in range(2):
            st = SqliteStore(path)
            await st.open()
            assert await st.schema_version() == LATEST_MIGRATION
            await st.close()

    async def test_wal_mode(self, store: SqliteStore):
        row = await (await store.db.execute("PRAGMA journal_mode")).fetchone()
        assert row is not None
        assert row[0] == "wal"


class TestImport:
    async def test_load_returns_what_was_imported(self, store: SqliteStore):
        directory = parse_directory(school_doc())
        report = await store.import_directory(directory, actor="t", now=SCHOOL_DAY)
        assert report.created
        assert report.users_added == len(directory.users)
        state = await store.load_school(HUGO)
        assert state.directory == directory
        assert state.settings == SchoolSettings(timezone="Europe/Paris")
        assert state.version == report.version

    async def test_schools_are_separate(self, store: SqliteStore):
        await _two_schools(store)
        assert await store.list_schools() == [HUGO, MOULIN]
        hugo, moulin = await store.load_school(HUGO), await store.load_school(MOULIN)
        assert hugo.directory.users[UserId("t1")].last_name == "Martin"
        assert moulin.directory.users[UserId("t1")].last_name == "Martin-Moulin"
        assert moulin.settings.timezone == "America/Martinique"

    async def test_unknown_school(self, store: SqliteStore):
        with pytest.raises(NotFound):
            await store.load_school(SchoolId("nowhere"))

    async def test_reimport_updates_without_losing_discussions(self, store: SqliteStore):
        await _two_schools(store)
        members = await store.create_discussion(HUGO, UserId("t1"), "Sortie",
                                                [UserId("e1"), UserId("e2")], now=SCHOOL_DAY)
        await store.append_message(HUGO, members.id, UserId("t1"), "c1", "Bonjour",
                                   now=SCHOOL_DAY)
        await store.update_preferences(HUGO, UserId("p2"),
                                       UserPreferences(parent_messaging_opt_in=True),
                                       actor="p2", now=SCHOOL_DAY)
        before = await store.load_school(HUGO)

        doc = copy.deepcopy(school_doc())
        doc["users"] = [u for u in doc["users"] if u["id"] != "e2"]  # e2 left the school
        for u in doc["users"]:
            if u["id"] == "p2":
                u["children"] = ["e1"]
            if u["id"] == "t1":
                u["teaches"] = ["2A", "2B"]
        report = await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)

        assert (report.created, report.users_added, report.users_deactivated) == (False, 0, 1)
        after = await store.load_school(HUGO)
        assert after.version > before.version
        assert UserId("e2") not in after.directory.users
        assert after.directory.users[UserId("t1")].teaches == {"2A", "2B"}
        assert after.preferences_of(UserId("p2")).parent_messaging_opt_in
        # The discussion, its participants (e2 included, for history) and messages survive.
        kept = await store.members(HUGO, members.id)
        assert [p.user_id for p in kept.participants] == ["t1", "e1", "e2"]
        assert [m.body for m in await store.messages(HUGO, members.id)] == ["Bonjour"]
        # e2 coming back is reactivated, not duplicated.
        await store.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        assert UserId("e2") in (await store.load_school(HUGO)).directory.users

    async def test_removed_profile_cannot_stay_switched_off(self, store: SqliteStore):
        await _two_schools(store)
        state = await store.load_school(HUGO)
        off = SchoolSettings(disabled_profiles=frozenset({ProfileId("parents")}))
        await store.update_settings(HUGO, off, actor="a1", now=SCHOOL_DAY)
        doc = school_doc()
        doc["profiles"] = [p for p in doc["profiles"] if p["id"] != "parents"]
        doc["users"] = [u for u in doc["users"] if u["role"] != "parent"]
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
        state = await store.load_school(HUGO)
        assert state.settings.disabled_profiles == frozenset()


class TestSettingsAndAudit:
    async def test_each_changed_field_is_audited(self, store: SqliteStore):
        await _two_schools(store)
        state = await store.load_school(HUGO)
        new = SchoolSettings(discussions_enabled=False, parent_messaging_enabled=True,
                             disabled_profiles=frozenset({ProfileId("students")}))
        entries = await store.update_settings(HUGO, new, actor="a1",
                                              now=SCHOOL_DAY + timedelta(minutes=5))
        assert {(e.field, e.old, e.new) for e in entries} == {
            ("discussions_enabled", True, False),
            ("parent_messaging_enabled", False, True),
            ("profiles.students.discussions_enabled", True, False),
        }
        assert all(e.actor == "a1" and e.at == SCHOOL_DAY + timedelta(minutes=5)
                   for e in entries)
        after = await store.load_school(HUGO)
        assert after.settings == new
        assert after.version == state.version + 1
        log = await store.audit_log(HUGO)
        assert [e.id for e in log] == sorted((e.id for e in entries), reverse=True)
        assert await store.audit_log(MOULIN) == []

    async def test_no_change_records_nothing(self, store: SqliteStore):
        await _two_schools(store)
        state = await store.load_school(HUGO)
        assert await store.update_settings(HUGO, state.settings, actor="a1",
                                           now=SCHOOL_DAY) == []
        assert (await store.load_school(HUGO)).version == state.version

    async def test_preferences_audited_per_user(self, store: SqliteStore):
        await _two_schools(store)
        entries = await store.update_preferences(
            HUGO, UserId("e1"), UserPreferences(can_initiate=False), actor="a1", now=SCHOOL_DAY)
        assert [(e.field, e.old, e.new) for e in entries] == [
            ("users.e1.can_initiate", True, False)]
        assert not (await store.load_school(HUGO)).preferences_of(UserId("e1")).can_initiate
        assert (await store.load_school(MOULIN)).preferences_of(UserId("e1")).can_initiate

    async def test_audit_paging(self, store: SqliteStore):
        await _two_schools(store)
        for i in range(5):
            prefs = UserPreferences(can_initiate=i % 2 == 1)
            await store.update_preferences(HUGO, UserId("e1"), prefs, actor="a1",
                                           now=SCHOOL_DAY)
        first = await store.audit_log(HUGO, limit=3)
        rest = await store.audit_log(HUGO, before=first[-1].id, limit=3)
        assert len(first) == 3
        assert len(rest) == 2
        assert [e.id for e in first + rest] == sorted({e.id for e in first + rest},
                                                      reverse=True)


class TestDiscussions:
    async def test_create_members_and_leave(self, store: SqliteStore):
        await _two_schools(store)
        m = await store.create_discussion(HUGO, UserId("t1"), "Devoirs",
                                          [UserId("e1"), UserId("e1"), UserId("e2")],
                                          now=SCHOOL_DAY)
        assert [(p.user_id, p.invited_by) for p in m.participants] == [
            ("t1", None), ("e1", "t1"), ("e2", "t1")]
        left = await store.leave(HUGO, m.id, UserId("t1"), now=SCHOOL_DAY)
        assert left.version == m.version + 1
        assert [p.user_id for p in left.present()] == ["e1", "e2"]
        with pytest.raises(NotFound):
            await store.leave(HUGO, m.id, UserId("t1"), now=SCHOOL_DAY)
        back = await store.add_participant(HUGO, m.id, UserId("t1"), invited_by=UserId("s1"),
                                           now=SCHOOL_DAY)
        assert back.get(UserId("t1")) is not None
        assert back.version == left.version + 1

    async def test_messages_are_gap_free_and_idempotent(self, store: SqliteStore):
        await _two_schools(store)
        m = await store.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1")],
                                          now=SCHOOL_DAY)
        seqs = []
        for i in range(5):
            msg, new = await store.append_message(HUGO, m.id, UserId("e1"), f"c{i}", f"m{i}",
                                                  now=SCHOOL_DAY)
            assert new
            seqs.append(msg.seq)
        retry, new = await store.append_message(HUGO, m.id, UserId("e1"), "c2", "other text",
                                                now=SCHOOL_DAY)
        assert not new
        assert retry.seq == 3
        assert retry.body == "m2"
        assert seqs == [1, 2, 3, 4, 5]
        page = await store.messages(HUGO, m.id, limit=2)
        assert [x.seq for x in page] == [5, 4]
        older = await store.messages(HUGO, m.id, before_seq=4, limit=10)
        assert [x.seq for x in older] == [3, 2, 1]
        assert (await store.get_discussion(HUGO, m.id)).last_seq == 5

    async def test_other_school_cannot_reach_a_discussion(self, store: SqliteStore):
        await _two_schools(store)
        m = await store.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1")],
                                          now=SCHOOL_DAY)
        with pytest.raises(NotFound):
            await store.members(MOULIN, m.id)
        with pytest.raises(NotFound):
            await store.append_message(MOULIN, m.id, UserId("t1"), "x", "y", now=SCHOOL_DAY)
        assert await store.messages(MOULIN, m.id) == []
        assert await store.discussions_of(MOULIN, UserId("t1")) == []
        assert [d.id for d in await store.discussions_of(HUGO, UserId("e1"))] == [m.id]

    async def test_unknown_discussion(self, store: SqliteStore):
        await _two_schools(store)
        with pytest.raises(NotFound):
            await store.get_discussion(HUGO, DiscussionId(999))


class TestReload:
    async def test_settings_change_reuses_the_loaded_directory(self, store: SqliteStore):
        await _two_schools(store)
        first = await store.load_school(HUGO)
        await store.update_settings(HUGO, SchoolSettings(timezone="America/Martinique"),
                                    actor="a1", now=SCHOOL_DAY)
        await store.update_preferences(HUGO, UserId("p1"),
                                       UserPreferences(parent_messaging_opt_in=True),
                                       actor="p1", now=SCHOOL_DAY)
        again = await store.load_school(HUGO, known=first)
        fresh = await store.load_school(HUGO)
        assert again == fresh
        assert again.directory.users is first.directory.users  # not read again
        assert again.directory.timezone == "America/Martinique"

    async def test_import_reloads_the_directory(self, store: SqliteStore):
        await _two_schools(store)
        first = await store.load_school(HUGO)
        doc = school_doc()
        doc["users"][0]["first_name"] = "Claire-Marie"
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
        again = await store.load_school(HUGO, known=first)
        assert again.directory_version == first.directory_version + 1
        assert again.directory.users[UserId("t1")].first_name == "Claire-Marie"
        assert again == await store.load_school(HUGO)


class TestAppender:
    async def test_concurrent_appends_are_gap_free_and_idempotent(self, store: SqliteStore):
        await _two_schools(store)
        m = await store.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1")],
                                          now=SCHOOL_DAY)
        other = await store.create_discussion(HUGO, UserId("t1"), "T", [UserId("e2")],
                                              now=SCHOOL_DAY)
        calls = [store.append_message(HUGO, d.id, UserId("t1"), f"c{i % 150}", f"m{i}",
                                      now=SCHOOL_DAY)
                 for i in range(300) for d in (m, other)]
        results = await asyncio.gather(*calls)
        for d in (m, other):
            stored = await store.messages(HUGO, d.id, limit=1000)
            assert [x.seq for x in stored] == list(range(150, 0, -1))  # 150 distinct ids
        assert sum(1 for _, new in results if new) == 300
        with pytest.raises(NotFound):
            await store.append_message(HUGO, DiscussionId(999), UserId("t1"), "x", "y",
                                       now=SCHOOL_DAY)
        ok, new = await store.append_message(HUGO, m.id, UserId("t1"), "c-after", "z",
                                             now=SCHOOL_DAY)
        assert (ok.seq, new) == (151, True)  # one bad append does not spoil the others


class TestArrivingLater:
    """docs/policy.md, "People who arrive later": the store's part (the rule itself is
    the gatekeeper's, tested in tests/gatekeeper/test_g7_invite.py)."""

    @pytest.fixture(params=["file", "memory"])
    async def either(self, request: pytest.FixtureRequest,
                     store: SqliteStore) -> AsyncIterator[SqliteStore]:
        """A file store (appends go through the appender) and a ``:memory:`` one (not)."""
        if request.param == "file":
            yield store
            return
        st = SqliteStore(":memory:")
        await st.open()
        try:
            yield st
        finally:
            await st.close()

    async def test_earlier_messages_of_authors_not_readable_are_hidden(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("e1"), "S", [UserId("t1")],
                                       now=SCHOOL_DAY, first=("c0", "Bonjour madame"))
        await st.append_message(HUGO, m.id, UserId("t1"), "c1", "Oui ?", now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("e1"), "c2", "x", now=SCHOOL_DAY,
                                hidden_from=[UserId("zz")])
        joined = await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                          now=SCHOOL_DAY, members_version=m.version,
                                          readable_authors=[UserId("t1"), UserId("e2")])
        assert joined.version == m.version + 1
        seen = {x.seq: x.hidden_from for x in await st.messages(HUGO, m.id)}
        assert seen == {1: {"e2"}, 2: set(), 3: {"e2", "zz"}}
        assert [x.seq for x in await st.messages(HUGO, m.id, reader=UserId("e2"))] == [2]
        row = await (await st.db.execute(
            "SELECT hidden_from FROM messages WHERE discussion_id = ? AND seq = 3",
            (m.id,))).fetchone()
        assert row is not None
        assert row[0] == '["e2", "zz"]'  # still one sorted JSON list

    async def test_coming_back_hides_only_what_was_said_while_away(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1"), UserId("e2")],
                                       now=SCHOOL_DAY, first=("c0", "m1"))
        await st.append_message(HUGO, m.id, UserId("e1"), "c1", "m2", now=SCHOOL_DAY)
        gone = await st.leave(HUGO, m.id, UserId("e2"), now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("e1"), "c2", "m3", now=SCHOOL_DAY)
        await st.append_message(HUGO, m.id, UserId("t1"), "c3", "m4", now=SCHOOL_DAY)
        await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                 now=SCHOOL_DAY, members_version=gone.version,
                                 readable_authors=[UserId("t1"), UserId("e2")])
        # m2 was said while she was there (decided when it was posted); m3 while away.
        seen = [x.seq for x in await st.messages(HUGO, m.id, reader=UserId("e2"))]
        assert seen == [4, 2, 1]

    async def test_writes_checked_against_other_members_are_refused(
            self, either: SqliteStore):
        st = either
        await _two_schools(st)
        m = await st.create_discussion(HUGO, UserId("t1"), "S", [UserId("e1")],
                                       now=SCHOOL_DAY, first=("c0", "m1"))
        await st.add_participant(HUGO, m.id, UserId("e2"), invited_by=UserId("t1"),
                                 now=SCHOOL_DAY)
        # A post decided before the invitation is not stored on that decision.
        with pytest.raises(MembersChanged):
            await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x", now=SCHOOL_DAY,
                                    members_version=m.version)
        with pytest.raises(MembersChanged):
            await st.add_participant(HUGO, m.id, UserId("p1"), invited_by=UserId("t1"),
                                     now=SCHOOL_DAY, members_version=m.version,
                                     readable_authors=[])
        now = await st.members(HUGO, m.id)
        assert [p.user_id for p in now.participants] == ["t1", "e1", "e2"]
        assert (await st.get_discussion(HUGO, m.id)).last_seq == 1
        # Decided against the members as they are: stored; a retry is still a duplicate.
        msg, new = await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x",
                                           now=SCHOOL_DAY, members_version=now.version)
        assert (msg.seq, new) == (2, True)
        again, new = await st.append_message(HUGO, m.id, UserId("e1"), "c1", "x",
                                             now=SCHOOL_DAY, members_version=m.version)
        assert (again.seq, new) == (2, False)
        with pytest.raises(NotFound):
            await st.append_message(HUGO, DiscussionId(999), UserId("e1"), "c9", "x",
                                    now=SCHOOL_DAY, members_version=1)
