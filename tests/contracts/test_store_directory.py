"""The DirectoryStore contract (server/store/contract.py), on SQLite and PostgreSQL:
deployment metadata, schools as imported, settings and preferences with their audit."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from server.directory import parse_directory
from server.errors import NotFound
from server.model import ProfileId, Relation, SchoolId, SchoolSettings, UserId, UserPreferences
from server.store import Store
from tests.conftest import SCHOOL_DAY
from tests.contracts.conftest import OpenStore
from tests.contracts.stores import E1, E2, HUGO, MOULIN, P1, P2, T1, at
from tests.schools import school_doc

pytestmark = pytest.mark.anyio


class TestMeta:
    async def test_set_get_and_replace(self, store: Store):
        assert await store.get_meta("deployment") is None
        await store.set_meta("deployment", "académie de Lyon")
        assert await store.get_meta("deployment") == "académie de Lyon"
        await store.set_meta("deployment", "académie de Grenoble")
        assert await store.get_meta("deployment") == "académie de Grenoble"
        assert await store.get_meta("other") is None


class TestImport:
    async def test_load_returns_what_was_imported(self, store: Store):
        directory = parse_directory(school_doc())
        report = await store.import_directory(directory, actor="t", now=SCHOOL_DAY)
        assert (report.school_id, report.created) == (HUGO, True)
        assert (report.users_added, report.users_updated, report.users_deactivated) == (
            len(directory.users), 0, 0)
        state = await store.load_school(HUGO)
        assert state.directory == directory
        assert state.settings == SchoolSettings(timezone="Europe/Paris")
        assert state.version == report.version
        assert await store.school_version(HUGO) == report.version

    async def test_parent_relations_are_kept(self, store: Store):
        """What a parent is to each child (issue 11), as the directory says, and the
        default for a link it does not describe; a re-import replaces them."""
        doc = school_doc()
        p1 = next(u for u in doc["users"] if u["id"] == "p1")
        p1["children"] = ["e1", "e2"]
        p1["relations"] = {"e2": "Mère"}
        directory = parse_directory(doc)
        await store.import_directory(directory, actor="t", now=SCHOOL_DAY)
        state = await store.load_school(HUGO)
        assert state.directory == directory
        parent = state.directory.users[P1]
        assert parent.relations == ((E2, Relation.MOTHER),)
        assert (parent.relation_to(E1), parent.relation_to(E2)) == (
            Relation.GUARDIAN, Relation.MOTHER)
        p1["relations"] = {"e1": "father"}
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
        parent = (await store.load_school(HUGO)).directory.users[P1]
        assert parent.relations == ((E1, Relation.FATHER),)

    async def test_schools_are_separate(self, schools: Store):
        assert await schools.list_schools() == [HUGO, MOULIN]
        hugo, moulin = await schools.load_school(HUGO), await schools.load_school(MOULIN)
        assert hugo.directory.users[T1].last_name == "Martin"
        assert moulin.directory.users[T1].last_name == "Martin-Moulin"
        assert moulin.settings.timezone == "America/Martinique"

    async def test_no_schools_yet(self, store: Store):
        assert await store.list_schools() == []

    async def test_unknown_school(self, schools: Store):
        with pytest.raises(NotFound):
            await schools.load_school(SchoolId("nowhere"))
        with pytest.raises(NotFound):
            await schools.school_version(SchoolId("nowhere"))

    async def test_reimport_updates_without_losing_discussions(self, schools: Store):
        members = await schools.create_discussion(HUGO, T1, "Sortie", [E1, E2], now=at(0))
        await schools.append_message(HUGO, members.id, T1, "c1", "Bonjour", now=at(0))
        await schools.update_preferences(HUGO, P2, UserPreferences(parent_messaging_opt_in=True),
                                         actor="p2", now=at(0))
        before = await schools.load_school(HUGO)

        doc = copy.deepcopy(school_doc())
        doc["users"] = [u for u in doc["users"] if u["id"] != "e2"]  # e2 left the school
        for u in doc["users"]:
            if u["id"] == "p2":
                u["children"] = ["e1"]
            if u["id"] == "t1":
                u["teaches"] = ["2A", "2B"]
        report = await schools.import_directory(parse_directory(doc), actor="t", now=at(1))

        assert (report.created, report.users_added, report.users_deactivated) == (False, 0, 1)
        assert report.users_updated == len(doc["users"])
        after = await schools.load_school(HUGO)
        assert after.version == report.version > before.version
        assert after.directory_version == before.directory_version + 1
        assert E2 not in after.directory.users
        assert after.directory.users[T1].teaches == {"2A", "2B"}
        assert after.preferences_of(P2).parent_messaging_opt_in
        # The discussion, its participants (e2 included, for history) and messages survive.
        kept = await schools.members(HUGO, members.id)
        assert [p.user_id for p in kept.participants] == [T1, E1, E2]
        assert [m.body for m in await schools.messages(HUGO, members.id)] == ["Bonjour"]
        # e2 coming back is reactivated, not duplicated.
        again = await schools.import_directory(parse_directory(school_doc()), actor="t",
                                               now=at(2))
        assert (again.users_added, again.users_deactivated) == (0, 0)  # known: updated
        assert again.users_updated == len(school_doc()["users"])
        assert E2 in (await schools.load_school(HUGO)).directory.users

    async def test_removed_profile_cannot_stay_switched_off(self, schools: Store):
        off = SchoolSettings(disabled_profiles=frozenset({ProfileId("parents")}))
        await schools.update_settings(HUGO, off, actor="a1", now=at(0))
        doc = school_doc()
        doc["profiles"] = [p for p in doc["profiles"] if p["id"] != "parents"]
        doc["users"] = [u for u in doc["users"] if u["role"] != "parent"]
        await schools.import_directory(parse_directory(doc), actor="t", now=at(1))
        state = await schools.load_school(HUGO)
        assert state.settings.disabled_profiles == frozenset()


    async def test_a_user_whose_role_changed_starts_from_its_defaults(self, schools: Store):
        await schools.update_preferences(HUGO, E1, UserPreferences(can_initiate=False),
                                         actor="a1", now=at(0))
        await schools.update_preferences(HUGO, P2, UserPreferences(parent_messaging_opt_in=True),
                                         actor="p2", now=at(0))
        doc = school_doc()
        for u in doc["users"]:
            if u["id"] == "e1":  # e1 is now a member of staff
                u.update(role="staff", profile="staff")
                del u["class"]
        doc["users"] = [u for u in doc["users"] if u["id"] != "p1"]  # p1's child left
        await schools.import_directory(parse_directory(doc), actor="t", now=at(1))
        state = await schools.load_school(HUGO)
        assert state.preferences_of(E1) == UserPreferences()
        assert state.preferences_of(P2).parent_messaging_opt_in  # same role: kept

    async def test_classes_and_profiles_left_out_are_gone(self, schools: Store):
        doc = school_doc()
        doc["classes"] = [c for c in doc["classes"] if c["id"] != "2B"]
        doc["users"] = [u for u in doc["users"]
                        if u.get("class") != "2B" and u["id"] not in ("t2", "p3")]
        await schools.import_directory(parse_directory(doc), actor="t", now=at(1))
        state = await schools.load_school(HUGO)
        assert list(state.directory.classes) == ["2A"]
        assert list(state.directory.profiles) == ["teachers", "staff", "students", "parents"]
        assert (await schools.load_school(MOULIN)).directory.classes.keys() == {"2A", "2B"}
        # And back again.
        await schools.import_directory(parse_directory(school_doc()), actor="t", now=at(2))
        assert list((await schools.load_school(HUGO)).directory.classes) == ["2A", "2B"]


class TestSettingsAndAudit:
    async def test_each_changed_field_is_audited(self, schools: Store):
        state = await schools.load_school(HUGO)
        new = SchoolSettings(discussions_enabled=False, parent_messaging_enabled=True,
                             disabled_profiles=frozenset({ProfileId("students")}))
        entries = await schools.update_settings(HUGO, new, actor="a1",
                                                now=SCHOOL_DAY + timedelta(minutes=5))
        assert {(e.field, e.old, e.new) for e in entries} == {
            ("discussions_enabled", True, False),
            ("parent_messaging_enabled", False, True),
            ("profiles.students.discussions_enabled", True, False),
        }
        assert all(e.actor == "a1" and e.at == SCHOOL_DAY + timedelta(minutes=5)
                   and e.school_id == HUGO for e in entries)
        after = await schools.load_school(HUGO)
        assert after.settings == new
        assert after.version == state.version + 1
        assert await schools.school_version(HUGO) == after.version
        log = await schools.audit_log(HUGO)
        assert [e.id for e in log] == sorted((e.id for e in entries), reverse=True)
        assert {(e.field, e.old, e.new, e.actor, e.at) for e in log} == {
            (e.field, e.old, e.new, e.actor, e.at) for e in entries}
        assert await schools.audit_log(MOULIN) == []

    async def test_no_change_records_nothing(self, schools: Store):
        state = await schools.load_school(HUGO)
        assert await schools.update_settings(HUGO, state.settings, actor="a1", now=at(0)) == []
        assert (await schools.load_school(HUGO)).version == state.version
        with pytest.raises(NotFound):
            await schools.update_settings(SchoolId("nowhere"), state.settings, actor="a1",
                                          now=at(0))

    async def test_preferences_audited_per_user(self, schools: Store):
        version = await schools.school_version(HUGO)
        entries = await schools.update_preferences(
            HUGO, E1, UserPreferences(can_initiate=False), actor="a1", now=at(0))
        assert [(e.field, e.old, e.new) for e in entries] == [
            ("users.e1.can_initiate", True, False)]
        assert not (await schools.load_school(HUGO)).preferences_of(E1).can_initiate
        assert (await schools.load_school(MOULIN)).preferences_of(E1).can_initiate
        assert await schools.school_version(HUGO) == version + 1
        assert await schools.update_preferences(
            HUGO, E1, UserPreferences(can_initiate=False), actor="a1", now=at(1)) == []
        with pytest.raises(NotFound):
            await schools.update_preferences(HUGO, UserId("nobody"), UserPreferences(),
                                             actor="a1", now=at(0))

    async def test_audit_paging(self, schools: Store):
        for i in range(5):
            prefs = UserPreferences(can_initiate=i % 2 == 1)
            await schools.update_preferences(HUGO, E1, prefs, actor="a1", now=at(i))
        first = await schools.audit_log(HUGO, limit=3)
        rest = await schools.audit_log(HUGO, before=first[-1].id, limit=3)
        assert len(first) == 3
        assert len(rest) == 2
        assert [e.id for e in first + rest] == sorted({e.id for e in first + rest},
                                                      reverse=True)
        assert [e.at for e in first + rest] == [at(4), at(3), at(2), at(1), at(0)]


class TestReload:
    async def test_settings_change_reuses_the_loaded_directory(self, schools: Store):
        first = await schools.load_school(HUGO)
        await schools.update_settings(HUGO, SchoolSettings(timezone="America/Martinique"),
                                      actor="a1", now=at(0))
        await schools.update_preferences(HUGO, P1,
                                         UserPreferences(parent_messaging_opt_in=True),
                                         actor="p1", now=at(0))
        again = await schools.load_school(HUGO, known=first)
        fresh = await schools.load_school(HUGO)
        assert again == fresh
        assert again.directory.users is first.directory.users  # not read again
        assert again.directory.timezone == "America/Martinique"

    async def test_import_reloads_the_directory(self, schools: Store):
        first = await schools.load_school(HUGO)
        doc = school_doc()
        doc["users"][0]["first_name"] = "Claire-Marie"
        await schools.import_directory(parse_directory(doc), actor="t", now=at(0))
        again = await schools.load_school(HUGO, known=first)
        assert again.directory_version == first.directory_version + 1
        assert again.directory.users[T1].first_name == "Claire-Marie"
        assert again == await schools.load_school(HUGO)

    async def test_a_state_of_another_school_is_not_reused(self, schools: Store):
        moulin = await schools.load_school(MOULIN)
        hugo = await schools.load_school(HUGO, known=moulin)
        assert hugo == await schools.load_school(HUGO)
        assert hugo.directory.school.id == HUGO

    async def test_another_node_sees_the_change(self, schools: Store, open_more: OpenStore):
        other = await open_more()
        seen = await other.load_school(HUGO)
        await schools.update_preferences(HUGO, E1, UserPreferences(can_initiate=False),
                                         actor="a1", now=at(0))
        assert await other.school_version(HUGO) == seen.version + 1
        assert not (await other.load_school(HUGO, known=seen)).preferences_of(E1).can_initiate
