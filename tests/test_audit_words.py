"""The audit log says what each change is about in structured words (docs/api.md,
"Audit log"): the setting without ids, the profile or person concerned by name, the
classes a value lists, the actor's name. A client turns them into sentences."""

from __future__ import annotations

from typing import Any

from server.auditwords import SETTINGS, describe
from server.model import (
    ClassId,
    Directory,
    Profile,
    ProfileId,
    Role,
    School,
    SchoolClass,
    SchoolId,
    User,
    UserId,
)
from tests.conftest import LiveServer


def by_field(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["field"]: e for e in items}


def test_the_audit_log_names_what_changed(live_server: LiveServer) -> None:
    with live_server.client("a1") as admin, live_server.client("t1") as teacher:
        assert admin.patch("/api/settings", json={
            "parent_messaging_enabled": True, "hours": {"start": "08:00"},
            "profiles": {"parents": {"discussions_enabled": False}},
        }).status_code == 200
        assert admin.patch("/api/users/e1/preferences",
                           json={"can_initiate": False}).status_code == 200
        changed = teacher.patch("/api/me/preferences", json={
            "accepts": {"students": {"classes": ["2A"]}}}).json()["changes"]
        assert [c["setting"] for c in changed] == ["user.accepts.students.classes"]
        log = by_field(admin.get("/api/audit").json()["items"])
    school = log["parent_messaging_enabled"]
    assert (school["setting"], school["old"], school["new"]) == (
        "parent_messaging_enabled", False, True)
    assert school["actor_name"] == "Jean Durand"
    assert "user" not in school
    assert "profile" not in school
    assert log["hours.start"]["setting"] == "hours.start"
    profile = log["profiles.parents.discussions_enabled"]
    assert profile["setting"] == "profile.discussions_enabled"
    assert profile["profile"] == {"id": "parents", "name": "Responsables"}
    student = log["users.e1.can_initiate"]
    assert student["setting"] == "user.can_initiate"
    assert student["user"] == {"id": "e1", "name": "Léa Petit", "role": "student"}
    accepts = log["users.t1.accepts.students.classes"]
    assert accepts["setting"] == "user.accepts.students.classes"
    assert accepts["user"]["name"] == "Claire Martin"
    assert (accepts["old"], accepts["new"]) == (None, ["2A"])
    assert accepts["classes"] == {"2A": "Seconde A"}
    assert accepts["actor_name"] == "Claire Martin"
    assert {e["setting"] for e in log.values()} <= SETTINGS


def test_ids_with_dots_and_unknown_fields() -> None:
    directory = Directory(
        School(SchoolId("s"), "S"), "Europe/Paris",
        {ProfileId("p.x"): Profile(ProfileId("p.x"), "Profil X")},
        {ClassId("6.A"): SchoolClass(ClassId("6.A"), "6e A")},
        {UserId("u.1"): User(UserId("u.1"), Role.TEACHER, "Ana", "Diaz", ProfileId("p.x"))})
    assert describe("users.u.1.accepts.parents.classes", ["6.A"], None, "import",
                    directory) == {
        "actor_name": None, "setting": "user.accepts.parents.classes",
        "user": {"id": "u.1", "name": "Ana Diaz", "role": "teacher"},
        "classes": {"6.A": "6e A"}}
    assert describe("profiles.p.x.discussions_enabled", True, False, "u.1", directory)[
        "profile"] == {"id": "p.x", "name": "Profil X"}
    assert describe("colour", "red", "blue", "u.1", directory) == {
        "actor_name": "Ana Diaz", "setting": "other"}
